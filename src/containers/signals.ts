import { constants } from 'node:os';
import { InvalidParameterError } from '../errors.js';

const SIGNALS = constants.signals as Record<string, number>;

/** A signal given by name (`TERM`, `SIGTERM`, `sigterm`) or number, as `docker kill -s` accepts it. */
export function signalNumber(s: string): number {
  const v = s.trim();
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    if (n < 1 || n > 64) throw new InvalidParameterError(`Invalid signal: ${s}`);
    return n;
  }
  const name = v.toUpperCase().startsWith('SIG') ? v.toUpperCase() : `SIG${v.toUpperCase()}`;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name) ?? /^SIGRTMAX(?:-(\d+))?$/.exec(name);
  if (rt) return name.startsWith('SIGRTMIN') ? 34 + Number(rt[1] ?? 0) : 64 - Number(rt[1] ?? 0);
  const n = SIGNALS[name];
  if (n === undefined) throw new InvalidParameterError(`Invalid signal: ${s}`);
  return n;
}

/** Resolves when `p` settles or after `ms`, whichever comes first (true: `p` did). */
export function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([p.then(() => true), timeout]).finally(() => clearTimeout(timer));
}

/**
 * dockerd's stop sequence: the stop signal, then SIGKILL when the process has not ended within `timeout` seconds
 * (a negative timeout waits for ever); SIGKILL itself waits at most 30 s for the end. `send` failures are ignored
 * (the process may be gone already).
 */
export async function stopSequence(o: { signal: number; timeout: number; stopped: Promise<void>; send(sig: number): Promise<void> }): Promise<void> {
  if (o.signal !== 9) {
    await o.send(o.signal).catch(() => undefined);
    if (o.timeout < 0) {
      await o.stopped;
      return;
    }
    if (await within(o.stopped, o.timeout * 1000)) return;
  }
  await o.send(9).catch(() => undefined);
  await within(o.stopped, 30_000);
}
