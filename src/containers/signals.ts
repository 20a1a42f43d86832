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
