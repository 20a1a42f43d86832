import { InvalidParameterError } from '../errors.js';

export type Query = Record<string, string | string[] | undefined>;

/** The last value of a query parameter (Go's form.Get takes the first; the CLI never repeats these). */
export function qString(q: Query, name: string): string | undefined {
  const v = q[name];
  return Array.isArray(v) ? v[0] : v;
}

export function qStrings(q: Query, name: string): string[] {
  const v = q[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** dockerd's BoolValue: "", 0, no, false, none are false; anything else is true. */
export function qBool(q: Query, name: string, dflt = false): boolean {
  const v = qString(q, name);
  if (v === undefined) return dflt;
  return !['', '0', 'no', 'false', 'none'].includes(v.trim().toLowerCase());
}

export function qInt(q: Query, name: string, dflt?: number): number | undefined {
  const v = qString(q, name);
  if (v === undefined || v === '') return dflt;
  // Beyond 2^53 a number no longer holds the integer asked for (Go's Atoi would take up to 2^63; none is meaningful).
  if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v))) throw new InvalidParameterError(`invalid value for ${name}: ${v}`);
  return Number(v);
}
