// Docker's stats shape (the cgroup part of ContainerStatsResponse) made from a cgroup's raw counters: the one
// place that knows Docker's keys. It belongs to src/containers/stats.ts (the runtime reports counters, the layer
// above presents them) and moves there once src/cri reads Cgroup.counters() instead of Cgroup.stats().

import type { BlkioStatEntry, CgroupCounters } from './resources.js';

export interface CpuStats {
  cpu_usage: {
    total_usage: number;
    /** cgroup v1 only. */
    percpu_usage?: number[];
    usage_in_kernelmode: number;
    usage_in_usermode: number;
  };
  system_cpu_usage?: number;
  online_cpus?: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

export interface MemoryStats {
  usage?: number;
  /** cgroup v1 only. */
  max_usage?: number;
  /** cgroup v1 only. */
  failcnt?: number;
  /** The cgroup's limit, capped at the host's memory (as dockerd does). */
  limit?: number;
  stats: Record<string, number>;
}

export interface BlkioStats {
  io_service_bytes_recursive: BlkioStatEntry[] | null;
  /** cgroup v1 only (null on v2). */
  io_serviced_recursive: BlkioStatEntry[] | null;
  io_queue_recursive: BlkioStatEntry[] | null;
  io_service_time_recursive: BlkioStatEntry[] | null;
  io_wait_time_recursive: BlkioStatEntry[] | null;
  io_merged_recursive: BlkioStatEntry[] | null;
  io_time_recursive: BlkioStatEntry[] | null;
  sectors_recursive: BlkioStatEntry[] | null;
}

/** The cgroup part of Docker's ContainerStatsResponse (the host CPU figures, names and networks are added by the collector). */
export interface DockerCgroupStats {
  cpu_stats: CpuStats;
  memory_stats: MemoryStats;
  pids_stats: { current?: number; /** 0 = no limit. */ limit?: number };
  blkio_stats: BlkioStats;
}

/** A cgroup's raw counters as Docker's stats JSON shows them: memory limit capped at `hostMemory`, "max" pids as 0. */
export function dockerCgroupStats(c: CgroupCounters, hostMemory: number): DockerCgroupStats {
  const m = c.memory;
  return {
    cpu_stats: {
      cpu_usage: {
        total_usage: c.cpu.usageNs,
        ...(c.cpu.perCpuNs ? { percpu_usage: c.cpu.perCpuNs } : {}),
        usage_in_kernelmode: c.cpu.kernelNs,
        usage_in_usermode: c.cpu.userNs,
      },
      throttling_data: { periods: c.cpu.periods, throttled_periods: c.cpu.throttledPeriods, throttled_time: c.cpu.throttledNs },
    },
    memory_stats: {
      ...(m.usage !== undefined ? { usage: m.usage } : {}),
      ...(m.maxUsage !== undefined ? { max_usage: m.maxUsage } : {}),
      ...(m.failcnt !== undefined ? { failcnt: m.failcnt } : {}),
      ...(m.limit !== undefined ? { limit: Math.min(m.limit, hostMemory) } : {}),
      stats: m.stat,
    },
    pids_stats: {
      ...(c.pids.current !== undefined ? { current: c.pids.current } : {}),
      ...(c.pids.limit !== undefined ? { limit: Number.isFinite(c.pids.limit) ? c.pids.limit : 0 } : {}),
    },
    blkio_stats:
      c.io.version === '1'
        ? {
            io_service_bytes_recursive: c.io.serviceBytes,
            io_serviced_recursive: c.io.serviced,
            io_queue_recursive: c.io.queued,
            io_service_time_recursive: c.io.serviceTime,
            io_wait_time_recursive: c.io.waitTime,
            io_merged_recursive: c.io.merged,
            io_time_recursive: c.io.time,
            sectors_recursive: c.io.sectors,
          }
        : {
            ...emptyBlkio(),
            io_service_bytes_recursive: c.io.devices.flatMap((d) => [
              { major: d.major, minor: d.minor, op: 'read', value: d.rbytes },
              { major: d.major, minor: d.minor, op: 'write', value: d.wbytes },
            ]),
          },
  };
}

/** blkio_stats with every list null (cgroup v2 has only the byte counts; a stopped container has none). */
export function emptyBlkio(): BlkioStats {
  return {
    io_service_bytes_recursive: null,
    io_serviced_recursive: null,
    io_queue_recursive: null,
    io_service_time_recursive: null,
    io_wait_time_recursive: null,
    io_merged_recursive: null,
    io_time_recursive: null,
    sectors_recursive: null,
  };
}
