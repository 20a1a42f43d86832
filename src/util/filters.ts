import { InvalidParameterError } from '../errors.js';

/**
 * Docker's `filters` query parameter: URL-decoded JSON, either `{"key":{"value":true}}`
 * or the legacy `{"key":["value"]}`. Keys map to the set of accepted values.
 */
export class Filters {
  private constructor(private readonly map: ReadonlyMap<string, readonly string[]>) {}

  static readonly empty = new Filters(new Map());

  static parse(raw: string | undefined, allowedKeys?: readonly string[]): Filters {
    if (raw === undefined || raw === '') return Filters.empty;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (e) {
      throw new InvalidParameterError(`invalid filter: ${(e as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new InvalidParameterError('invalid filter: expected a JSON object');
    }
    const map = new Map<string, string[]>();
    for (const [key, value] of Object.entries(json)) {
      let values: string[];
      if (Array.isArray(value)) {
        values = value.map(String);
      } else if (typeof value === 'object' && value !== null) {
        values = Object.entries(value)
          .filter(([, on]) => on === true)
          .map(([v]) => v);
      } else {
        throw new InvalidParameterError(`invalid filter '${key}'`);
      }
      if (allowedKeys && !allowedKeys.includes(key)) {
        throw new InvalidParameterError(`invalid filter '${key}'`);
      }
      map.set(key, values);
    }
    return new Filters(map);
  }

  has(key: string): boolean {
    return (this.map.get(key)?.length ?? 0) > 0;
  }

  get(key: string): readonly string[] {
    return this.map.get(key) ?? [];
  }

  keys(): string[] {
    return [...this.map.keys()].filter((k) => this.has(k));
  }

  /** True when `key` is unset or one of its values equals `value`. */
  matches(key: string, value: string | undefined): boolean {
    if (!this.has(key)) return true;
    return value !== undefined && this.get(key).includes(value);
  }

  /** True when `key` is unset or any of `values` is accepted. */
  matchesAny(key: string, values: readonly string[]): boolean {
    if (!this.has(key)) return true;
    return values.some((v) => this.get(key).includes(v));
  }

  /** `label` filters: every `k` or `k=v` term must hold for `labels`. */
  matchesLabels(labels: Readonly<Record<string, string>> | undefined, key = 'label'): boolean {
    if (!this.has(key)) return true;
    return this.get(key).every((term) => labelTermHolds(labels ?? {}, term));
  }

  /** A boolean-valued filter such as `dangling=true`; undefined when unset. */
  bool(key: string): boolean | undefined {
    if (!this.has(key)) return undefined;
    const values = this.get(key).map((v) => v.toLowerCase());
    for (const v of values) {
      if (v !== 'true' && v !== 'false' && v !== '1' && v !== '0') {
        throw new InvalidParameterError(`invalid filter '${key}=${v}'`);
      }
    }
    return values.includes('true') || values.includes('1');
  }
}

export function labelTermHolds(labels: Readonly<Record<string, string>>, term: string): boolean {
  const eq = term.indexOf('=');
  if (eq < 0) return Object.prototype.hasOwnProperty.call(labels, term);
  const k = term.slice(0, eq);
  const v = term.slice(eq + 1);
  return Object.prototype.hasOwnProperty.call(labels, k) && labels[k] === v;
}
