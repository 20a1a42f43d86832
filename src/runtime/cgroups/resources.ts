// OCI runtime-spec `linux.resources` (the subset Berth applies), the host's cgroup capabilities
// (Docker's sysinfo) and the raw counters a cgroup reports (Docker's stats JSON is made from them in containers/).

/** OCI `linux.resources.devices[]` entry. `type` absent or 'a' = all devices; major/minor absent or −1 = `*`. */
export interface LinuxDeviceCgroup {
  allow: boolean;
  type?: 'a' | 'b' | 'c' | undefined;
  major?: number | undefined;
  minor?: number | undefined;
  access?: string | undefined;
}

/** OCI `linux.devices[]` entry: a node the runtime creates inside the container. */
export interface LinuxDevice {
  path: string;
  type: 'b' | 'c' | 'u' | 'p';
  major: number;
  minor: number;
  fileMode?: number | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
}

export interface LinuxMemory {
  /** Bytes; −1 = unlimited. */
  limit?: number | undefined;
  /** Soft limit (v1 memory.soft_limit_in_bytes, v2 memory.low). */
  reservation?: number | undefined;
  /** memory+swap, as Docker passes it through (v1 memsw); −1 = unlimited. */
  swap?: number | undefined;
  kernel?: number | undefined;
  kernelTCP?: number | undefined;
  swappiness?: number | undefined;
  disableOOMKiller?: boolean | undefined;
}

export interface LinuxCPU {
  shares?: number | undefined;
  quota?: number | undefined;
  period?: number | undefined;
  realtimeRuntime?: number | undefined;
  realtimePeriod?: number | undefined;
  cpus?: string | undefined;
  mems?: string | undefined;
}

export interface LinuxPids {
  /** > 0 a limit, < 0 unlimited (`max`), 0 leave as is. */
  limit: number;
}

export interface LinuxWeightDevice {
  major: number;
  minor: number;
  weight?: number | undefined;
  leafWeight?: number | undefined;
}

export interface LinuxThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

export interface LinuxBlockIO {
  weight?: number | undefined;
  leafWeight?: number | undefined;
  weightDevice?: LinuxWeightDevice[] | undefined;
  throttleReadBpsDevice?: LinuxThrottleDevice[] | undefined;
  throttleWriteBpsDevice?: LinuxThrottleDevice[] | undefined;
  throttleReadIOPSDevice?: LinuxThrottleDevice[] | undefined;
  throttleWriteIOPSDevice?: LinuxThrottleDevice[] | undefined;
}

/** OCI `linux.resources` (hugepageLimits, network, rdma, unified are not applied by Berth). */
export interface LinuxResources {
  devices?: LinuxDeviceCgroup[] | undefined;
  memory?: LinuxMemory | undefined;
  cpu?: LinuxCPU | undefined;
  pids?: LinuxPids | undefined;
  blockIO?: LinuxBlockIO | undefined;
}

/** What the host's cgroups can do; the input to Docker-style validation (moby `pkg/sysinfo`). */
export interface CgroupSysInfo {
  memoryLimit: boolean;
  swapLimit: boolean;
  memoryReservation: boolean;
  oomKillDisable: boolean;
  memorySwappiness: boolean;
  kernelMemory: boolean;
  kernelMemoryTCP: boolean;
  cpuShares: boolean;
  cpuCfs: boolean;
  cpuRealtime: boolean;
  cpuset: boolean;
  /** Available CPUs / memory nodes, cpuset list syntax ("0-3,6"). */
  cpus: string;
  mems: string;
  blkioWeight: boolean;
  blkioWeightDevice: boolean;
  blkioReadBpsDevice: boolean;
  blkioWriteBpsDevice: boolean;
  blkioReadIOpsDevice: boolean;
  blkioWriteIOpsDevice: boolean;
  pidsLimit: boolean;
  /** Device rules can be enforced (v1 devices controller; v2: an eBPF program, unless the kernel refuses it). */
  devices: boolean;
  freezer: boolean;
}

/** Docker's `BlkioStatEntry`. */
export interface BlkioStatEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/**
 * What a cgroup's files say, in nanoseconds, bytes and counts, for the layers above to present (Docker's stats
 * JSON in src/containers/stats.ts, the CRI's stats). No policy here: limits are as the kernel has them
 * (Infinity for "max").
 */
export interface CgroupCounters {
  cpu: {
    usageNs: number;
    /** cgroup v1 only. */
    perCpuNs?: number[];
    kernelNs: number;
    userNs: number;
    periods: number;
    throttledPeriods: number;
    throttledNs: number;
  };
  memory: {
    usage?: number;
    /** cgroup v1 only. */
    maxUsage?: number;
    /** cgroup v1 only. */
    failcnt?: number;
    /** Infinity when unlimited; absent without the memory controller. */
    limit?: number;
    /** memory.stat (v1 keys: cache, rss, total_inactive_file…; v2 keys: anon, file, inactive_file…). */
    stat: Record<string, number>;
  };
  pids: {
    current?: number;
    /** Infinity when unlimited; absent without the pids controller. */
    limit?: number;
  };
  /**
   * Block I/O. v1: the blkio files, the CFQ/BFQ-era recursive ones when they carry data, else the throttle
   * layer's two (the others empty), as containerd reads them. v2: io.stat's byte counts per device.
   */
  io:
    | {
        version: '1';
        serviceBytes: BlkioStatEntry[];
        serviced: BlkioStatEntry[];
        queued: BlkioStatEntry[];
        serviceTime: BlkioStatEntry[];
        waitTime: BlkioStatEntry[];
        merged: BlkioStatEntry[];
        time: BlkioStatEntry[];
        sectors: BlkioStatEntry[];
      }
    | { version: '2'; devices: { major: number; minor: number; rbytes: number; wbytes: number }[] };
}

/**
 * Docker's warning texts (moby `daemon/daemon_unix.go verifyPlatformContainerResources`), used both by the
 * HostConfig validation and by the cgroup backends when a file the host lacks has to be skipped.
 */
export const CgroupWarnings = {
  memoryLimit:
    'Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.',
  swapLimit:
    'Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.',
  memorySwappiness:
    'Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.',
  memoryReservation:
    'Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.',
  kernelMemory:
    'Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.',
  kernelMemoryTCP:
    'Your kernel does not support kernel memory TCP limit capabilities or the cgroup is not mounted. Limitation discarded.',
  oomKillDisable: 'Your kernel does not support OomKillDisable. OomKillDisable discarded.',
  oomKillDisableNoLimit:
    'OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.',
  pidsLimit: 'Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.',
  cpuShares: 'Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.',
  cpuCfs: 'Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.',
  cpuRealtime: 'Your kernel does not support CPU real-time scheduler. CPU real-time period/runtime discarded.',
  cpuRealtimePeriod: 'Your kernel does not support CPU real-time scheduler. CPU real-time period discarded.',
  cpuRealtimeRuntime: 'Your kernel does not support CPU real-time scheduler. CPU real-time runtime discarded.',
  cpuPercent: 'linux does not support CPU percent. Percent discarded.',
  cpuCount: 'linux does not support CPU count. Count discarded.',
  cpuset: 'Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.',
  blkioWeight: 'Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.',
  blkioWeightDevice:
    'Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.',
  blkioReadBpsDevice:
    'Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded.',
  blkioWriteBpsDevice:
    'Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded.',
  blkioReadIOpsDevice:
    'Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded.',
  blkioWriteIOpsDevice:
    'Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded.',
  devices: 'The devices cgroup controller is not mounted. Device access rules discarded.',
  devicesV2:
    'Your kernel does not support cgroup v2 device programs (eBPF BPF_PROG_TYPE_CGROUP_DEVICE). Device access rules discarded.',
} as const;
