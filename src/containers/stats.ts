// GET /containers/{id}/stats: Docker's ContainerStatsResponse from the container's cgroup, the host's
// /proc/stat and the container's network namespace (/proc/<init pid>/net/dev shows the pid's netns).
//
// A one-shot answer never samples for a second as dockerd does: precpu_stats comes from the previous sample of
// that container when one is recent (a stream, or an earlier call), otherwise from a short 100 ms sample
// (or none at all with one-shot=true, as dockerd).

import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { CgroupManager, CgroupStats } from '../runtime/cgroups/index.js';
import { readSystemCpu } from '../runtime/cgroups/index.js';
import { emptyBlkio } from '../runtime/cgroups/docker-stats.js';
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

export interface CpuStats {
  cpu_usage: CgroupStats['cpu_stats']['cpu_usage'];
  system_cpu_usage?: number;
  online_cpus?: number;
  throttling_data: CgroupStats['cpu_stats']['throttling_data'];
}

export interface StatsSample {
  read: string;
  readNano: bigint;
  cpu_stats: CpuStats;
  memory_stats: CgroupStats['memory_stats'] | Record<string, never>;
  pids_stats: CgroupStats['pids_stats'];
  blkio_stats: CgroupStats['blkio_stats'];
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

  constructor(private readonly cgroups: CgroupManager) {}

  /** One sample of a running container (its cgroup, the host CPU counters, its network). */
  async sample(c: ContainerView): Promise<StatsSample> {
    const readNano = nowNano();
    const [cg, sys, net] = await Promise.all([
      this.cgroups.open(cgroupPathOf(c)).stats(),
      readSystemCpu(),
      c.state.Pid > 0 && (c.hostConfig.NetworkMode ?? 'bridge') !== 'host'
        ? readFile(`/proc/${c.state.Pid}/net/dev`, 'utf8').then(parseNetDev, () => undefined)
        : Promise.resolve(undefined),
    ]);
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
