import { InvalidParameterError } from '../errors.js';

let lastNano = 0n;

/**
 * Nanoseconds since the epoch, as BigInt (Docker's timeNano). The wall clock has
 * milliseconds only, so hrtime fills in below them; that fraction wraps on its own
 * schedule, so the sum could step back by up to 1 ms between two calls. It never
 * returns less than before, so events, logs and "until" filters stay ordered.
 */
export function nowNano(): bigint {
  const now = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
  lastNano = now > lastNano ? now : lastNano + 1n;
  return lastNano;
}

const DURATION_UNITS_NS: Record<string, bigint> = {
  ns: 1n, us: 1_000n, µs: 1_000n, μs: 1_000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n,
};

/** Go's time.ParseDuration ("10m", "1h30m", "1.5h", "-2s", "0"); nanoseconds, or undefined when it is not one. */
export function parseGoDuration(s: string): bigint | undefined {
  const m = /^([+-]?)(.*)$/.exec(s.trim());
  const sign = m?.[1] === '-' ? -1n : 1n;
  const body = m?.[2] ?? '';
  if (body === '0') return 0n;
  if (!/^(\d*\.?\d+|\d+\.)(ns|us|µs|μs|ms|s|m|h)((\d*\.?\d+|\d+\.)(ns|us|µs|μs|ms|s|m|h))*$/.test(body)) return undefined;
  let total = 0n;
  for (const part of body.matchAll(/(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/g)) {
    const unit = DURATION_UNITS_NS[part[3] as string] ?? 0n;
    const frac = part[2] ?? '';
    total += BigInt(part[1] || '0') * unit + (frac === '' ? 0n : (BigInt(frac) * unit) / 10n ** BigInt(frac.length));
  }
  return sign * total;
}

/**
 * Docker's timestamp parameter and `until`/`since` filter value (timetypes.GetTimestamp): a Go duration before now
 * (`24h`, `10m`), unix seconds with optional fraction (`1700000000.123456789`), or an RFC 3339 date. Nanoseconds.
 */
export function parseTimestampParam(name: string, value: string): bigint {
  const v = value.trim();
  const d = v === '0' ? undefined : parseGoDuration(v);
  if (d !== undefined) return nowNano() - d;
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
