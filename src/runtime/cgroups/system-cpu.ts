// Host-wide CPU figures Docker puts beside the cgroup's own in stats: cpu_stats.system_cpu_usage and online_cpus.

import { readFile } from 'node:fs/promises';

/** USER_HZ on Linux. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * From /proc/stat, as dockerd computes them: system_cpu_usage = the first seven fields of the `cpu` line
 * (user … softirq) in nanoseconds; online_cpus = the number of `cpuN` lines.
 */
export function parseProcStat(text: string): { systemCpuUsage: number; onlineCpus: number } {
  let systemCpuUsage = 0;
  let onlineCpus = 0;
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    const key = parts[0];
    if (key === 'cpu') {
      if (parts.length < 8) throw new Error('invalid number of cpu fields');
      const ticks = parts.slice(1, 8).reduce((sum, v) => sum + Number(v), 0);
      systemCpuUsage = (ticks * 1e9) / CLOCK_TICKS_PER_SECOND;
    } else if (key !== undefined && /^cpu\d+$/.test(key)) {
      onlineCpus++;
    }
  }
  return { systemCpuUsage, onlineCpus };
}

export async function readSystemCpu(procStat = '/proc/stat'): Promise<{ systemCpuUsage: number; onlineCpus: number }> {
  return parseProcStat(await readFile(procStat, 'utf8'));
}
