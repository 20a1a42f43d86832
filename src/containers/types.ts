import type { ContainerConfigJson } from '../images/image-config.js';
import type { OciIdMapping } from '../runtime/oci-spec.js';
import type { ContainerMount } from '../volumes/container-mounts.js';

/** The container `Config` as Docker's API carries it (create body, inspect). */
export interface ContainerConfig extends ContainerConfigJson {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: string[] | null;
  Labels: Record<string, string>;
  StopTimeout?: number;
}

export interface RestartPolicy {
  Name: '' | 'no' | 'always' | 'unless-stopped' | 'on-failure';
  MaximumRetryCount: number;
}

export interface LogConfig {
  Type: string;
  Config: Record<string, string>;
}

/** HostConfig as sent by clients; fields Berth acts on are typed, the rest is kept for inspect. */
export interface HostConfig {
  Binds?: string[] | null;
  ContainerIDFile?: string;
  LogConfig?: LogConfig;
  NetworkMode?: string;
  PortBindings?: Record<string, { HostIp?: string; HostPort?: string }[] | null> | null;
  RestartPolicy?: RestartPolicy;
  AutoRemove?: boolean;
  VolumeDriver?: string;
  VolumesFrom?: string[] | null;
  ConsoleSize?: [number, number] | null;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  CgroupnsMode?: string;
  Dns?: string[] | null;
  DnsOptions?: string[] | null;
  DnsSearch?: string[] | null;
  ExtraHosts?: string[] | null;
  GroupAdd?: string[] | null;
  IpcMode?: string;
  Links?: string[] | null;
  OomScoreAdj?: number;
  PidMode?: string;
  Privileged?: boolean;
  PublishAllPorts?: boolean;
  ReadonlyRootfs?: boolean;
  SecurityOpt?: string[] | null;
  Tmpfs?: Record<string, string> | null;
  UTSMode?: string;
  UsernsMode?: string;
  ShmSize?: number;
  Sysctls?: Record<string, string> | null;
  Runtime?: string;
  Init?: boolean | null;
  Mounts?: Record<string, unknown>[] | null;
  MaskedPaths?: string[] | null;
  ReadonlyPaths?: string[] | null;
  Ulimits?: { Name: string; Soft: number; Hard: number }[] | null;
  Devices?: { PathOnHost: string; PathInContainer: string; CgroupPermissions?: string }[] | null;
  DeviceCgroupRules?: string[] | null;
  [k: string]: unknown;
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface HealthLogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

/** What is recorded of a container's state (persisted); the flags of ContainerState follow from Status. */
export interface RecordedState {
  Status: ContainerStatus;
  OOMKilled: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  Health?: { Status: string; FailingStreak: number; Log: HealthLogEntry[] };
}

/**
 * A container's state as readers see it: the recorded fields and the flags derived from Status by state.ts
 * (never set on their own). Running: a process runs (running or paused); inspect shows dockerd's Running, which
 * is also true while restarting.
 */
export interface ContainerState extends RecordedState {
  readonly Running: boolean;
  readonly Paused: boolean;
  readonly Restarting: boolean;
  readonly Dead: boolean;
}

/** Everything Berth keeps about a container (persisted as one JSON record). */
export interface ContainerRecord {
  id: string;
  /** Without the leading "/". */
  name: string;
  created: string;
  imageId: string;
  path: string;
  args: string[];
  config: ContainerConfig;
  hostConfig: HostConfig;
  networkingConfig: { EndpointsConfig?: Record<string, Record<string, unknown>> | null };
  state: ContainerState;
  restartCount: number;
  mounts: ContainerMount[];
  /** The image's top chain ID: its layers are the container's lower dirs. */
  chainId: string | null;
  hasBeenStarted: boolean;
  /** `docker stop` was asked: restart policies other than always do not apply. */
  manuallyStopped: boolean;
  driver: string;
  /** CRI containers and pod sandboxes: what the CRI layer (src/cri) keeps about them; absent for Docker's. */
  cri?: CriAttachment;
}

/** A container as the metadata store keeps it: the state without its derived flags. */
export type StoredContainer = Omit<ContainerRecord, 'state'> & { state: RecordedState };

/** A read-only view of a value: what ContainerService hands out (it is the only writer of container state). */
export type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends (...args: never[]) => unknown
    ? T
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

/** A container as every module but ContainerService sees it. */
export type ContainerView = DeepReadonly<ContainerRecord>;

/** A private, mutable deep copy of a read-only value (to build something new from it). */
export function copyOf<T>(v: DeepReadonly<T>): T {
  return structuredClone(v) as T;
}

/** Set once at create by src/cri; the container service only reads logPath from it. */
export interface CriAttachment {
  kind: 'sandbox' | 'container';
  /** The kubelet's log file, written in the CRI format (empty: json-file in the container directory). */
  logPath: string;
  /** CRI-owned data (metadata, annotations, pod config), opaque to the container service. */
  data: Record<string, unknown>;
  /** A pod with its own user namespace (docs/cri.md): read by the launcher. */
  userns?: PodUserns;
}

/**
 * A pod's user namespace (the CRI's NamespaceMode POD) with the kubelet's id maps. The pod's holder makes it (and
 * the pod's other namespaces inside it); `join` names that holder in each of the pod's containers.
 */
export interface PodUserns {
  uidMappings: OciIdMapping[];
  gidMappings: OciIdMapping[];
  join?: string;
  /** Container paths of the binds idmapped to the user namespace (the kubelet asks with the CRI Mount's mappings). */
  idmapped?: string[];
}
