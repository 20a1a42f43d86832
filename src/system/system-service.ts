import { randomUUID } from 'node:crypto';
import type { DaemonConfig } from '../config.js';
import type { MetaRepo } from '../metadata/meta-repo.js';
import type { HostFacts } from './host-facts.js';
import { API_VERSION, BERTH_VERSION, MIN_API_VERSION } from '../version.js';

/** Figures other services contribute to /info (and /system/df later); each is optional until its service exists. */
export interface SystemSources {
  containerCounts?: () => { total: number; running: number; paused: number; stopped: number };
  imageCount?: () => number;
  storageDriver: () => { name: string; status: [string, string][] };
  warnings?: () => string[];
  listenerCount?: () => number;
}

const BUILD_TIME = new Date().toISOString();

/** /version and /info. */
export class SystemService {
  readonly daemonId: string;

  constructor(
    private readonly config: DaemonConfig,
    private readonly host: HostFacts,
    meta: MetaRepo,
    private readonly sources: SystemSources,
  ) {
    this.daemonId = meta.getOrCreate('daemon-id', () => randomUUID());
  }

  version(): Record<string, unknown> {
    const h = this.host;
    const details = {
      ApiVersion: API_VERSION,
      Arch: h.goArch,
      BuildTime: BUILD_TIME,
      Experimental: 'false',
      GitCommit: '',
      GoVersion: `node ${process.version}`,
      KernelVersion: h.kernelVersion,
      MinAPIVersion: MIN_API_VERSION,
      Os: 'linux',
    };
    return {
      Platform: { Name: 'Berth' },
      Components: [
        { Name: 'Engine', Version: BERTH_VERSION, Details: details },
        { Name: 'berth-shim', Version: BERTH_VERSION, Details: { GitCommit: '' } },
      ],
      Version: BERTH_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: '',
      GoVersion: `node ${process.version}`,
      Os: 'linux',
      Arch: h.goArch,
      KernelVersion: h.kernelVersion,
      Experimental: false,
      BuildTime: BUILD_TIME,
    };
  }

  info(): Record<string, unknown> {
    const h = this.host;
    const c = this.sources.containerCounts?.() ?? { total: 0, running: 0, paused: 0, stopped: 0 };
    const driver = this.sources.storageDriver();
    const v2 = h.cgroupVersion === '2';
    const securityOptions = ['name=seccomp,profile=builtin'];
    if (v2) securityOptions.push('name=cgroupns');
    return {
      ID: this.daemonId,
      Containers: c.total,
      ContainersRunning: c.running,
      ContainersPaused: c.paused,
      ContainersStopped: c.stopped,
      Images: this.sources.imageCount?.() ?? 0,
      Driver: driver.name,
      DriverStatus: driver.status,
      DockerRootDir: this.config.dataRoot,
      Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'null'], Authorization: null, Log: ['json-file', 'local'] },
      MemoryLimit: true,
      SwapLimit: true,
      KernelMemoryTCP: false,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      OomKillDisable: !v2,
      IPv4Forwarding: true,
      Debug: this.config.logLevel === 'debug' || this.config.logLevel === 'trace',
      NFd: 0,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: this.config.logDriver,
      CgroupDriver: 'cgroupfs',
      CgroupVersion: h.cgroupVersion,
      NEventsListener: this.sources.listenerCount?.() ?? 0,
      KernelVersion: h.kernelVersion,
      OperatingSystem: h.operatingSystem,
      OSVersion: h.osVersion,
      OSType: 'linux',
      Architecture: h.architecture,
      NCPU: h.ncpu,
      MemTotal: h.memTotal,
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: registryConfig(this.config.registryMirrors, this.config.insecureRegistries),
      GenericResources: null,
      HttpProxy: process.env.HTTP_PROXY ?? process.env.http_proxy ?? '',
      HttpsProxy: process.env.HTTPS_PROXY ?? process.env.https_proxy ?? '',
      NoProxy: process.env.NO_PROXY ?? process.env.no_proxy ?? '',
      Name: h.hostname,
      Labels: this.config.labels,
      ExperimentalBuild: false,
      ServerVersion: BERTH_VERSION,
      // Berth's shim runs every container; it answers to dockerd's runtime names.
      Runtimes: { 'io.containerd.runc.v2': { path: 'berth-shim' }, runc: { path: 'berth-shim' } },
      DefaultRuntime: 'runc',
      Swarm: {
        NodeID: '',
        NodeAddr: '',
        LocalNodeState: 'inactive',
        ControlAvailable: false,
        Error: '',
        RemoteManagers: null,
      },
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: 'berth-init',
      ContainerdCommit: { ID: '' },
      RuncCommit: { ID: '' },
      InitCommit: { ID: '' },
      SecurityOptions: securityOptions,
      DefaultAddressPools: this.config.defaultAddressPools.map((p) => ({ Base: p.base, Size: p.size })),
      CDISpecDirs: [],
      Warnings: this.sources.warnings?.() ?? [],
    };
  }
}

/** docker info's RegistryConfig as dockerd builds it: insecure CIDRs apart, insecure registries as index entries. */
function registryConfig(mirrors: readonly string[], insecure: readonly string[]): Record<string, unknown> {
  const cidrs = ['::1/128', '127.0.0.0/8'];
  const index: Record<string, unknown> = {
    'docker.io': { Name: 'docker.io', Mirrors: mirrors, Secure: true, Official: true },
  };
  for (const r of insecure) {
    if (/\/\d+$/.test(r)) {
      if (!cidrs.includes(r)) cidrs.push(r);
    } else {
      const name = r.replace(/^[a-z]+:\/\//, '');
      index[name] = { Name: name, Mirrors: [], Secure: false, Official: false };
    }
  }
  return { InsecureRegistryCIDRs: cidrs, IndexConfigs: index, Mirrors: mirrors };
}
