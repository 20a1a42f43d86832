// GET /containers/{id}/stats: Docker's ContainerStatsResponse from the container's cgroup, the host's
// /proc/stat and the container's network namespace (/proc/<init pid>/net/dev shows the pid's netns).
//
// A one-shot answer never samples for a second as dockerd does: precpu_stats comes from the previous sample of
// that container when one is recent (a stream, or an earlier call), otherwise from a short 100 ms sample
// (or none at all with one-shot=true, as dockerd).

import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import os from 'node:os';
import type { BlkioStatEntry, CgroupCounters, CgroupManager } from '../runtime/cgroups/index.js';
import { readSystemCpu } from '../runtime/cgroups/index.js';
import { nowNano, rfc3339Nano } from '../util/time.js';
import type { ContainerView } from './types.js';
import { cgroupPathOf } from './paths.js';

export interface NetworkStats {
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

// Docker's stats shape made from a cgroup's raw counters (Cgroup.counters()): the one place that knows Docker's keys.
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

export interface StatsSample {
  read: string;
  readNano: bigint;
  cpu_stats: CpuStats;
  memory_stats: MemoryStats | Record<string, never>;
  pids_stats: DockerCgroupStats['pids_stats'];
  blkio_stats: BlkioStats;
  networks?: Record<string, NetworkStats>;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';
/** How old a previous sample may be to serve as precpu_stats of a one-shot answer. */
const PREVIOUS_MAX_AGE_NS = 10_000_000_000n;
const SHORT_SAMPLE_MS = 100;


function emptyCpu(): CpuStats {
  return { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
}

/** /proc/net/dev → Docker's networks map (loopback left out, as dockerd). */
export function parseNetDev(text: string): Record<string, NetworkStats> {
  const out: Record<string, NetworkStats> = {};
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === '' || name === 'lo') continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (f.length < 16) continue;
    out[name] = {
      rx_bytes: f[0] ?? 0,
      rx_packets: f[1] ?? 0,
      rx_errors: f[2] ?? 0,
      rx_dropped: f[3] ?? 0,
      tx_bytes: f[8] ?? 0,
      tx_packets: f[9] ?? 0,
      tx_errors: f[10] ?? 0,
      tx_dropped: f[11] ?? 0,
    };
  }
  return out;
}

export class StatsCollector {
  private readonly previous = new Map<string, StatsSample>();

  constructor(
    private readonly cgroups: CgroupManager,
    /** Bytes of host memory: memory_stats.limit is capped at it (as dockerd does). */
    private readonly hostMemory = os.totalmem(),
  ) {}

  /** One sample of a running container (its cgroup, the host CPU counters, its network). */
  async sample(c: ContainerView): Promise<StatsSample> {
    const readNano = nowNano();
    const [counters, sys, net] = await Promise.all([
      this.cgroups.open(cgroupPathOf(c)).counters(),
      readSystemCpu(),
      c.state.Pid > 0 && (c.hostConfig.NetworkMode ?? 'bridge') !== 'host'
        ? readFile(`/proc/${c.state.Pid}/net/dev`, 'utf8').then(parseNetDev, () => undefined)
        : Promise.resolve(undefined),
    ]);
    const cg = dockerCgroupStats(counters, this.hostMemory);
    const s: StatsSample = {
      read: rfc3339Nano(readNano),
      readNano,
      cpu_stats: { ...cg.cpu_stats, system_cpu_usage: sys.systemCpuUsage, online_cpus: sys.onlineCpus },
      memory_stats: cg.memory_stats,
      pids_stats: cg.pids_stats,
      blkio_stats: cg.blkio_stats,
      ...(net ? { networks: net } : {}),
    };
    this.previous.set(c.id, s);
    return s;
  }

  forget(id: string): void {
    this.previous.delete(id);
  }

  /** The zero answer for a container that is not running (dockerd sends one too). */
  static stopped(c: ContainerView): Record<string, unknown> {
    return {
      read: ZERO_TIME,
      preread: ZERO_TIME,
      pids_stats: {},
      blkio_stats: emptyBlkio(),
      num_procs: 0,
      storage_stats: {},
      cpu_stats: emptyCpu(),
      precpu_stats: emptyCpu(),
      memory_stats: {},
      name: `/${c.name}`,
      id: c.id,
    };
  }

  static render(c: ContainerView, cur: StatsSample, pre: StatsSample | undefined): Record<string, unknown> {
    return {
      read: cur.read,
      preread: pre?.read ?? ZERO_TIME,
      pids_stats: cur.pids_stats,
      blkio_stats: cur.blkio_stats,
      num_procs: 0,
      storage_stats: {},
      cpu_stats: cur.cpu_stats,
      precpu_stats: pre?.cpu_stats ?? emptyCpu(),
      memory_stats: cur.memory_stats,
      name: `/${c.name}`,
      id: c.id,
      ...(cur.networks ? { networks: cur.networks } : {}),
    };
  }

  /** stream=false: one answer at once; precpu from a recent sample, or a 100 ms one (none with oneShot). */
  async once(c: ContainerView, oneShot: boolean): Promise<Record<string, unknown>> {
    if (!c.state.Running) return StatsCollector.stopped(c);
    let pre = this.previous.get(c.id);
    if (pre && nowNano() - pre.readNano > PREVIOUS_MAX_AGE_NS) pre = undefined;
    if (!pre && !oneShot) {
      pre = await this.sample(c);
      await delay(SHORT_SAMPLE_MS);
    }
    const cur = await this.sample(c);
    return StatsCollector.render(c, cur, oneShot ? undefined : pre);
  }

  /** stream=true: one answer per second until `signal` aborts; the first one at once. */
  async *stream(c: ContainerView, isRunning: () => boolean, signal: AbortSignal): AsyncGenerator<Record<string, unknown>> {
    let pre: StatsSample | undefined = this.previous.get(c.id);
    while (!signal.aborted) {
      if (!isRunning()) {
        yield StatsCollector.stopped(c);
        pre = undefined;
      } else {
        let cur: StatsSample | undefined;
        try {
          cur = await this.sample(c);
        } catch {
          cur = undefined;
        }
        yield cur ? StatsCollector.render(c, cur, pre) : StatsCollector.stopped(c);
        pre = cur;
      }
      await delay(1000, undefined, { signal }).catch(() => undefined);
    }
  }
}
