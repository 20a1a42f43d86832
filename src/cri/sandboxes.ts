import { hostname as osHostname } from 'node:os';
import { InvalidParameterError, NotFoundError, errorMessage } from '../errors.js';
import type { ContainerService } from '../containers/container-service.js';
import type { ContainerView, HostConfig } from '../containers/types.js';
import type { ImageService } from '../images/image-service.js';
import type { Logger } from '../util/logger.js';
import { nowNano } from '../util/time.js';
import type { CniManager, PortMapping } from './cni.js';
import { msg, msgList, nanosOfTime, num, str, strList, strMap, type Msg } from './messages.js';
import { ensurePauseImage } from './pause-image.js';
import { bindHolderNetns, podUserns } from './pod-userns.js';
import type { CriNri } from './nri-hooks.js';
import { newContainerId } from '../containers/create-request.js';
import { findByIdOrPrefix, selectByFilter } from './select.js';
import { onceUntilFailure } from '../util/once-until-failure.js';

/** Docker labels that mark CRI objects (docker ps --filter label=io.berth.cri.type=container). */
export const CRI_TYPE_LABEL = 'io.berth.cri.type';
export const CRI_SANDBOX_LABEL = 'io.berth.cri.sandbox-id';

/** CRI NamespaceMode names as the proto-loader delivers them. */
export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

export interface SandboxData {
  metadata: Msg;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  hostname: string;
  logDirectory: string;
  runtimeHandler: string;
  namespaces: { network: NamespaceMode; pid: NamespaceMode; ipc: NamespaceMode; targetId: string };
  cgroupParent: string;
  /** The pod-level LinuxContainerResources the kubelet gave (RunPodSandbox, then UpdatePodSandboxResources), for NRI. */
  overhead?: Msg;
  resources?: Msg;
  createdAt: string;
  ips?: string[];
  /** CNI set up and not torn down yet. */
  networkUp?: boolean;
}

/** The CRI UserNamespace a sandbox or pod container runs with (NODE: the host's). */
export function usernsOptions(c: ContainerView): Msg {
  const u = c.cri?.userns;
  if (!u) return { mode: 'NODE', uids: [], gids: [] };
  const ids = (l: typeof u.uidMappings): Msg[] => l.map((m) => ({ container_id: m.containerID, host_id: m.hostID, length: m.size }));
  return { mode: 'POD', uids: ids(u.uidMappings), gids: ids(u.gidMappings) };
}

/** Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*: anything else in a pod or container name becomes '-'. */
export function dockerSafe(s: string): string {
  return s.replace(/[^a-zA-Z0-9_.-]/g, '-');
}

function nsMode(v: unknown): NamespaceMode {
  return v === 'CONTAINER' || v === 'NODE' || v === 'TARGET' ? v : 'POD';
}

export function sandboxData(c: ContainerView): SandboxData {
  return (c.cri?.data ?? {}) as unknown as SandboxData;
}

/**
 * Pod sandboxes. Each pod has a holder process — `/pause --pause` (berth-init) in Berth's local pause
 * image — run as an ordinary Berth container with network mode "none": its network namespace (a persistent
 * netns file of the network service) is what CNI configures, its IPC/UTS (and, with a shared process namespace,
 * PID) namespaces are the pod's, and the app containers join them by the container: modes. A holder process
 * is needed because a PID namespace dies with its init and a UTS/IPC namespace has no file to keep it without
 * one; a pause process keeps all of them with the same code path Docker's container: modes already use.
 */
export class SandboxService {
  /** Sandboxes being set up: not visible to the CRI until their RunPodSandbox (NRI included) is done. */
  private readonly pending = new Set<string>();

  constructor(
    private readonly containers: ContainerService,
    private readonly images: ImageService,
    private readonly cni: CniManager,
    private readonly initPath: string,
    private readonly log: Logger,
    private readonly nri?: CriNri,
  ) {}

  private readonly pause = onceUntilFailure(() => ensurePauseImage(this.images, this.initPath));

  /** A sandbox by full ID or unique prefix (CRI objects only: Docker containers are not sandboxes). */
  find(id: string): ContainerView | undefined {
    return findByIdOrPrefix(this.list(), id);
  }

  get(id: string): ContainerView {
    const c = this.find(id);
    if (!c) throw new NotFoundError(`pod sandbox "${id}" not found`);
    return c;
  }

  list(): ContainerView[] {
    return this.containers.all().filter((c) => c.cri?.kind === 'sandbox' && !this.pending.has(c.id));
  }

  ready(c: ContainerView): boolean {
    return c.state.Running && sandboxData(c).networkUp !== false;
  }

  /** The CRI state name of a sandbox. */
  state(c: ContainerView): 'SANDBOX_READY' | 'SANDBOX_NOTREADY' {
    return this.ready(c) ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY';
  }

  async run(req: Msg): Promise<Msg> {
    const config = msg(req.config);
    const md = msg(config.metadata);
    const name = str(md.name);
    const namespace = str(md.namespace);
    const uid = str(md.uid);
    if (name === '') throw new InvalidParameterError('sandbox config must include metadata.name');
    const attempt = num(md.attempt);
    const linux = msg(config.linux);
    const sc = msg(linux.security_context);
    const nso = msg(sc.namespace_options);
    const namespaces = { network: nsMode(nso.network), pid: nsMode(nso.pid), ipc: nsMode(nso.ipc), targetId: str(nso.target_id) };
    const hostNet = namespaces.network === 'NODE';
    const userns = podUserns(nso);
    const dns = msg(config.dns_config);
    const labels = strMap(config.labels);
    const annotations = strMap(config.annotations);
    const hostname = str(config.hostname);
    const cgroupParent = str(linux.cgroup_parent);
    const image = await this.pause();

    const hc: HostConfig = {
      NetworkMode: hostNet ? 'host' : 'none',
      IpcMode: namespaces.ipc === 'NODE' ? 'host' : 'shareable',
      PidMode: namespaces.pid === 'NODE' ? 'host' : '',
      ...(hostNet ? { UTSMode: 'host' } : {}),
      Dns: strList(dns.servers),
      DnsSearch: strList(dns.searches),
      DnsOptions: strList(dns.options),
      Sysctls: strMap(linux.sysctls),
      ...(cgroupParent !== '' ? { CgroupParent: cgroupParent } : {}),
      // the holder needs no privileges at all
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ...(sc.readonly_rootfs === true ? { ReadonlyRootfs: true } : {}),
    };
    const data: SandboxData = {
      metadata: { name, uid, namespace, attempt },
      labels,
      annotations,
      hostname,
      logDirectory: str(config.log_directory),
      runtimeHandler: str(req.runtime_handler),
      namespaces,
      cgroupParent,
      ...(linux.overhead ? { overhead: msg(linux.overhead) } : {}),
      ...(linux.resources ? { resources: msg(linux.resources) } : {}),
      createdAt: nowNano().toString(),
      networkUp: false,
    };
    const id = newContainerId();
    this.pending.add(id);
    // a plugin that connects meanwhile gets this pod in its synchronization or as the RunPodSandbox event
    const unblockSync = this.nri ? await this.nri.blockSync() : undefined;
    try {
      await this.create(id, config, hostNet, name, namespace, uid, image, hc, data, labels, hostname, attempt, userns);
    } finally {
      this.pending.delete(id);
      unblockSync?.();
    }
    this.log.info({ id, pod: `${namespace}/${name}` }, 'pod sandbox running');
    return { pod_sandbox_id: id };
  }

  private async create(id: string, config: Msg, hostNet: boolean, name: string, namespace: string, uid: string, image: string, hc: HostConfig, data: SandboxData, labels: Record<string, string>, hostname: string, attempt: number, userns: ReturnType<typeof podUserns>): Promise<void> {
    await this.containers.create({
      id,
      name: `k8s_POD_${dockerSafe(name)}_${dockerSafe(namespace)}_${dockerSafe(uid)}_${attempt}`,
      body: {
        Image: image,
        // no hostname: the node's, as a new UTS namespace starts with it (containerd)
        ...(hostNet ? {} : { Hostname: hostname || osHostname() }),
        Labels: {
          ...labels,
          [CRI_TYPE_LABEL]: 'sandbox',
          'io.kubernetes.pod.name': name,
          'io.kubernetes.pod.namespace': namespace,
          'io.kubernetes.pod.uid': uid,
        },
        HostConfig: hc,
      },
      cri: { kind: 'sandbox', logPath: '', data: data as unknown as Record<string, unknown>, ...(userns ? { userns } : {}) },
    });
    try {
      await this.containers.start(id, 'cri');
      if (!hostNet) {
        const c = this.containers.get(id);
        const netns = this.netnsOf(c);
        if (userns) await bindHolderNetns(netns, c.state.Pid, this.log);
        const ports: PortMapping[] = msgList(config.port_mappings)
          .filter((p) => num(p.host_port) > 0)
          .map((p) => ({
            hostPort: num(p.host_port),
            containerPort: num(p.container_port),
            protocol: (str(p.protocol) || 'TCP').toLowerCase() as PortMapping['protocol'],
            ...(str(p.host_ip) !== '' ? { hostIP: str(p.host_ip) } : {}),
          }));
        const r = await this.cni.setUp({
          containerId: id,
          netns,
          ifName: 'eth0',
          args: { K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name, K8S_POD_INFRA_CONTAINER_ID: id, K8S_POD_UID: uid },
          portMappings: ports,
        });
        this.containers.setCriData(id, { ips: r.ips, networkUp: true });
      } else {
        this.containers.setCriData(id, { networkUp: true });
      }
      // NRI plugins see the pod set up (network included) before the CRI does; a plugin's error fails the run
      await this.nri?.runPodSandbox(this.containers.get(id));
    } catch (e) {
      // A failure after ADD (the sandbox gone meanwhile) still owes the network its DEL; without an ADD there is none.
      await this.cni.tearDown(id).catch((err: unknown) => this.log.warn({ id, err: errorMessage(err) }, 'CNI teardown of a sandbox that failed to start'));
      await this.containers.remove(id, { force: true, by: 'cri' }).catch((err: unknown) => this.log.warn({ id, err: errorMessage(err) }, 'removing a sandbox that failed to start'));
      throw e;
    }
  }

  /** Stops the pod: its containers first (kill), then its network, then the holder. Idempotent. */
  async stop(id: string, stopContainers: (sandboxId: string) => Promise<void>): Promise<void> {
    const c = this.find(id);
    if (!c) return; // containerd answers success for an unknown sandbox on stop
    const wasReady = this.ready(c);
    await stopContainers(c.id);
    // NRI: once, with the pod's containers stopped and its network still there
    if (wasReady) await this.nri?.stopPodSandbox(c);
    if (sandboxData(c).networkUp) {
      const netns = this.netnsOf(c);
      await this.cni.tearDown(c.id, netns);
      this.containers.setCriData(c.id, { networkUp: false });
    }
    if (c.state.Running) await this.containers.stop(c.id, { timeout: 0, by: 'cri' });
  }

  async remove(id: string, removeContainers: (sandboxId: string) => Promise<void>): Promise<void> {
    const c = this.find(id);
    if (!c) return;
    await this.stop(c.id, removeContainers);
    await this.containers.remove(c.id, { force: true, by: 'cri' });
    await this.nri?.removePodSandbox(c);
  }

  /** The sandbox's network namespace path, from the network service (empty when the holder is not running). */
  private netnsOf(c: ContainerView): string {
    return this.containers.networkSettings(c).SandboxKey;
  }

  status(c: ContainerView, verbose: boolean): Msg {
    const d = sandboxData(c);
    const [ip = '', ...more] = d.ips ?? [];
    const status = {
      id: c.id,
      metadata: d.metadata,
      state: this.state(c),
      created_at: d.createdAt,
      network: { ip, additional_ips: more.map((x) => ({ ip: x })) },
      linux: {
        namespaces: {
          options: { network: d.namespaces.network, pid: d.namespaces.pid, ipc: d.namespaces.ipc, target_id: d.namespaces.targetId, userns_options: usernsOptions(c) },
        },
      },
      labels: d.labels,
      annotations: d.annotations,
      runtime_handler: d.runtimeHandler,
    };
    const info: Record<string, string> = {};
    if (verbose) {
      info.info = JSON.stringify({
        pid: c.state.Pid,
        image: c.imageId,
        netns: this.netnsOf(c),
        cgroupParent: d.cgroupParent,
        ...(d.overhead ? { overhead: d.overhead } : {}),
        ...(d.resources ? { resources: d.resources } : {}),
        startedAt: c.state.StartedAt,
      });
    }
    return { status, info, containers_statuses: [], timestamp: nowNano().toString() };
  }

  listItem(c: ContainerView): Msg {
    const d = sandboxData(c);
    return {
      id: c.id,
      metadata: d.metadata,
      state: this.state(c),
      created_at: d.createdAt,
      labels: d.labels,
      annotations: d.annotations,
      runtime_handler: d.runtimeHandler,
    };
  }

  /** The sandboxes a PodSandboxFilter (or PodSandboxStatsFilter) selects. */
  select(filter: unknown): ContainerView[] {
    return selectByFilter(this.list(), filter, (c) => ({ state: this.state(c), labels: sandboxData(c).labels }));
  }

  async listSandboxes(req: Msg): Promise<Msg> {
    return { items: this.select(req.filter).map((c) => this.listItem(c)) };
  }

  /** The started time of the holder, for status (nanoseconds). */
  startedAt(c: ContainerView): string {
    return nanosOfTime(c.state.StartedAt);
  }
}
