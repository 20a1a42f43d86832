import { readFileSync } from 'node:fs';

/**
 * The kernel drops a signal sent to the init of a PID namespace (a container's PID 1) when that process has no
 * handler for it, instead of keeping it pending: a stop signal that arrives while PID 1 is still a shell about to
 * exec its program (`sh -c top`), or a program not yet past its signal setup, is lost, and the stop waits its whole
 * grace period before SIGKILL. The kubelet stops a container right after starting it (a pod deleted as it comes
 * up; critest's stop specs), so the CRI stop watches for that case: when the stop signal would be dropped, it is
 * sent again as soon as PID 1 catches it, within the grace period. A process that never catches it is killed at
 * the end of the grace period, as before.
 */

/** What /proc says of a process's signal dispositions, and its identity (start time). */
interface ProcSignals {
  /** Field 22 of /proc/<pid>/stat: tells a reused PID from the process seen first. */
  startTime: string;
  /** Init of its PID namespace (the last NSpid is 1). */
  nsInit: boolean;
  /** SigCgt: the signals it has a handler for, bit n-1 for signal n. */
  caught: bigint;
}

export function procSignals(pid: number): ProcSignals | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
    const nspid = field('NSpid').split(/\s+/);
    return { startTime, nsInit: nspid.length > 1 && nspid[nspid.length - 1] === '1', caught: BigInt(`0x${field('SigCgt') || '0'}`) };
  } catch {
    return undefined; // gone
  }
}

export function catches(p: ProcSignals, sig: number): boolean {
  return ((p.caught >> BigInt(sig - 1)) & 1n) === 1n;
}

/**
 * Starts watching `pid` (a container's PID 1) before its stop signal is sent: if the signal would be dropped now,
 * `resend` is called once PID 1 catches it (polled every `intervalMs`), unless `cancel` (the stop finished) or
 * `graceMs` comes first. Returns undefined when there is nothing to watch (the signal will be delivered, or the
 * process is not a namespace init, or is gone).
 */
export function redeliverWhenCaught(
  pid: number,
  sig: number,
  graceMs: number,
  resend: () => Promise<void>,
  intervalMs = 50,
): { cancel: () => void } | undefined {
  const first = procSignals(pid);
  if (!first || !first.nsInit || catches(first, sig) || sig === 9 || graceMs <= 0) return undefined;
  const deadline = Date.now() + graceMs;
  const timer = setInterval(() => {
    const now = procSignals(pid);
    if (!now || now.startTime !== first.startTime || Date.now() >= deadline) {
      clearInterval(timer);
      return;
    }
    if (catches(now, sig)) {
      clearInterval(timer);
      void resend();
    }
  }, intervalMs);
  timer.unref();
  return { cancel: () => clearInterval(timer) };
}
