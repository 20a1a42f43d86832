/**
 * A small property-based request generator driven by Berth's own OpenAPI description (api-spec/berth.yaml):
 * for an operation it draws path parameters, query strings and bodies that mostly follow the schemas and
 * sometimes break them (wrong types, odd strings, garbage JSON), from a seeded PRNG so a failure replays.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = Record<string, unknown>;

/** mulberry32: small, fast, good enough for test inputs. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)] as T;
  }
}

const ODD_STRINGS = ['', ' ', '0', '-1', '1', 'true', 'null', '{}', '[]', '..', '../../etc/passwd', '/', '%00', 'a:b:c', 'ü😀', '\t\n', 'x'.repeat(300), '-', '*'];
const ODD_NUMBERS = [0, -1, 1, 2 ** 31, -(2 ** 31), 2 ** 53, 1.5, -0.5, 1e30];

export class SchemaFuzzer {
  constructor(
    private readonly rng: Rng,
    private readonly components: Record<string, Record<string, Schema>>,
    /** Realistic strings to prefer: names of objects that exist in the daemon under test. */
    private readonly known: readonly string[],
    /** Properties whose value should usually be one of these (an existing image for `Image`), so bodies get past lookups. */
    private readonly hints: Readonly<Record<string, readonly string[]>> = {},
  ) {}

  private resolve(s: Schema): Schema {
    let cur = s;
    for (let i = 0; i < 10 && typeof cur.$ref === 'string'; i++) {
      // '#/components/schemas/X' (berth.yaml) or '#/definitions/X' (Docker's spec)
      const parts = cur.$ref.split('/');
      const name = parts.pop() ?? '';
      const kind = parts.pop() ?? '';
      cur = (this.components[kind]?.[name] as Schema | undefined) ?? {};
    }
    return cur;
  }

  string(): string {
    const r = this.rng.next();
    if (r < 0.4) return this.rng.pick(this.known);
    if (r < 0.7) return this.rng.pick(ODD_STRINGS);
    const n = this.rng.int(1, 12);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.rng.int(0x21, 0x7e));
    return s;
  }

  /** Any JSON value at all: what a schema-breaking client sends. */
  anything(depth = 0): Json {
    const r = this.rng.int(0, depth > 2 ? 4 : 6);
    switch (r) {
      case 0:
        return null;
      case 1:
        return this.rng.chance(0.5);
      case 2:
        return this.rng.pick(ODD_NUMBERS);
      case 3:
      case 4:
        return this.string();
      case 5:
        return Array.from({ length: this.rng.int(0, 3) }, () => this.anything(depth + 1));
      default: {
        const o: Record<string, Json> = {};
        for (let i = this.rng.int(0, 3); i > 0; i--) o[this.string()] = this.anything(depth + 1);
        return o;
      }
    }
  }

  /** A value for `schema`: well-typed most of the time, `breakRate` of the time anything at all. */
  value(schema: Schema | undefined, depth = 0, breakRate = 0.12): Json {
    if (!schema || depth > 5) return this.anything(depth);
    if (this.rng.chance(breakRate)) return this.anything(depth);
    const s = this.resolve(schema);
    for (const key of ['oneOf', 'anyOf'] as const) {
      const alts = s[key] as Schema[] | undefined;
      if (Array.isArray(alts) && alts.length > 0) return this.value(this.rng.pick(alts), depth + 1, breakRate);
    }
    if (Array.isArray(s.allOf)) {
      const merged: Record<string, Json> = {};
      for (const part of s.allOf as Schema[]) {
        const v = this.value(part, depth + 1, 0);
        if (v && typeof v === 'object' && !Array.isArray(v)) Object.assign(merged, v);
      }
      return merged;
    }
    if (Array.isArray(s.enum) && s.enum.length > 0 && this.rng.chance(0.8)) return this.rng.pick(s.enum as Json[]);
    let type = s.type;
    if (Array.isArray(type)) type = this.rng.pick(type as string[]);
    if (type === undefined) type = s.properties ? 'object' : s.items ? 'array' : undefined;
    switch (type) {
      case 'null':
        return null;
      case 'boolean':
        return this.rng.chance(0.5);
      case 'integer':
        return this.rng.chance(0.7) ? this.rng.int(-2, 600) : Math.trunc(this.rng.pick(ODD_NUMBERS));
      case 'number':
        return this.rng.chance(0.7) ? this.rng.int(0, 600) : this.rng.pick(ODD_NUMBERS);
      case 'string':
        return this.string();
      case 'array':
        return Array.from({ length: this.rng.int(0, 3) }, () => this.value(s.items as Schema | undefined, depth + 1, breakRate));
      case 'object': {
        const o: Record<string, Json> = {};
        const props = (s.properties ?? {}) as Record<string, Schema>;
        for (const [k, ps] of Object.entries(props)) {
          const hint = this.hints[k];
          if (hint && this.rng.chance(0.8)) o[k] = this.rng.pick(hint);
          else if (this.rng.chance(depth === 0 ? 0.25 : 0.2)) o[k] = this.value(ps, depth + 1, breakRate);
        }
        if (s.additionalProperties && typeof s.additionalProperties === 'object') {
          for (let i = this.rng.int(0, 2); i > 0; i--) o[this.string()] = this.value(s.additionalProperties as Schema, depth + 1, breakRate);
        }
        return o;
      }
      default:
        return this.anything(depth);
    }
  }

  /** A query-string value for a parameter schema. */
  queryValue(schema: Schema | undefined): string {
    const s = schema ? this.resolve(schema) : {};
    if (this.rng.chance(0.15)) return this.string();
    switch (s.type) {
      case 'boolean':
        return this.rng.pick(['1', '0', 'true', 'false', 'yes', '']);
      case 'integer':
      case 'number':
        return String(this.rng.chance(0.8) ? this.rng.int(-1, 30) : this.rng.pick(ODD_NUMBERS));
      default:
        // filters and other JSON-in-a-string parameters: sometimes a map of lists, sometimes not.
        if (this.rng.chance(0.3)) return JSON.stringify({ [this.rng.pick(['label', 'name', 'id', 'dangling', 'until', 'status'])]: [this.string()] });
        if (this.rng.chance(0.1)) return JSON.stringify(this.anything());
        return this.string();
    }
  }
}
