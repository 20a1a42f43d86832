import { InvalidParameterError } from '../errors.js';

/** Nanoseconds since the epoch, as BigInt (Docker's timeNano). */
export function nowNano(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}

/**
 * Docker's timestamp parameter (`since`, `until`): unix seconds with optional fraction
 * (`1700000000.123456789`), or an RFC 3339 date. Returns nanoseconds.
 */
export function parseTimestampParam(name: string, value: string): bigint {
  const v = value.trim();
  const m = /^(-?\d+)(?:\.(\d{1,9}))?$/.exec(v);
  if (m) {
    const secs = BigInt(m[1] ?? '0');
    const frac = BigInt((m[2] ?? '').padEnd(9, '0') || '0');
    return secs * 1_000_000_000n + frac;
  }
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new InvalidParameterError(`invalid value for ${name}: ${value}`);
  return BigInt(ms) * 1_000_000n;
}

/** RFC 3339 with nanoseconds, as Docker prints in inspect output. */
export function rfc3339Nano(timeNano: bigint): string {
  const ms = Number(timeNano / 1_000_000n);
  const nanos = (timeNano % 1_000_000_000n).toString().padStart(9, '0');
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${nanos}Z`);
}
