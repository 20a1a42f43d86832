// Helpers for reading CRI request messages as @grpc/proto-loader delivers them (keepCase, defaults, longs as
// strings, enums as names) without trusting their shape.

export type Msg = Record<string, unknown>;

export function msg(v: unknown): Msg {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Msg) : {};
}

export function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** A `bytes` field (KeyValue.value of ContainerConfig.envs) as UTF-8 text; a string passes through. */
export function text(v: unknown): string {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  return str(v);
}

export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v !== '') return Number(v);
  return 0;
}

export function bool(v: unknown): boolean {
  return v === true;
}

export function strList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

export function msgList(v: unknown): Msg[] {
  return Array.isArray(v) ? v.map(msg) : [];
}

export function strMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(msg(v))) if (typeof x === 'string') out[k] = x;
  return out;
}

/** Nanoseconds since the epoch as the int64 string the wire carries. */
export function nanos(ms: number | bigint): string {
  return typeof ms === 'bigint' ? ms.toString() : (BigInt(Math.round(ms)) * 1_000_000n).toString();
}

/** Nanoseconds from an RFC 3339 time with up to 9 fraction digits ('' and the zero time give 0). */
export function nanosOfTime(t: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return '0';
  const secs = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(secs) || secs <= 0) return '0';
  return (BigInt(secs) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'))).toString();
}

/** A map's labels match every key=value of a selector (CRI's label_selector). */
export function labelsMatch(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
