import { readFileSync, writeFileSync } from 'node:fs';

function statusField(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/**
 * Measures how far a process's resident memory rises above where it stood while `action` runs: the kernel's
 * peak (VmHWM) is reset first (clear_refs 5, root only), so the answer is the true peak, not a sample.
 */
export async function peakGrowth<T>(pid: number, action: () => Promise<T>): Promise<{ result: T; growth: number }> {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  const base = statusField(pid, 'VmRSS');
  const result = await action();
  return { result, growth: statusField(pid, 'VmHWM') - base };
}

export const MiB = 1024 * 1024;
