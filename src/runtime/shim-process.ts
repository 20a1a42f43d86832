// A shim or container init named by its pid and its start time (field 22 of /proc/<pid>/stat), so a pid
// that was reused by another process is never taken for it; shim.json records both for the shim and the init.

import { readFileSync } from 'node:fs';

/** What a shim records in shim.json (and exec/<id>/shim.json) once its container init exists. */
export interface ShimInfo {
  shimPid: number;
  shimStart: number;
  initPid: number;
  initStart: number;
}

/** Field 22 of /proc/<pid>/stat, or undefined if the process is gone. */
export function procStartTime(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number, start: number): boolean {
  return pid > 0 && procStartTime(pid) === start;
}
