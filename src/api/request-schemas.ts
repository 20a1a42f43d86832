import { readFileSync } from 'node:fs';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { InvalidParameterError } from '../errors.js';
import { packagePath, packageRequire } from '../package-root.js';

/**
 * Request schemas for every route, derived from Docker's own API description (api-spec/docker-engine-api-v1.50.yaml,
 * the one source): a route's body, querystring and params schemas are looked up by method and path when the route is
 * added (an onRoute hook), so routes added anywhere get them.
 *
 * Bodies are checked as dockerd's Go JSON decoder checks them, not as the spec's prose describes them: types only
 * (a number is not a string, a string is not a list), `null` accepted anywhere (Go decodes it to the zero value),
 * unknown fields ignored, field names matched case-insensitively (renamed to the spec's spelling), no coercion
 * except StrSlice fields (Cmd, Entrypoint, Shell), where a string is a one-element list. Enums, bounds, patterns and `required` are left to the services, which answer them with
 * dockerd's own messages. Query strings and path parameters stay strings (dockerd parses `all=1`, `since=1.5`
 * itself; so do our routes).
 */

const SPEC_PATH = packagePath('api-spec', 'docker-engine-api-v1.50.yaml');
/** The same, as JSON without prose, written to dist/api/ by the build (scripts/api-spec-json.mjs). */
const SPEC_JSON_PATH = packagePath('dist', 'api', 'docker-engine-api-v1.50.json');

// ajv and yaml are loaded when first needed (synchronously: Fastify compiles validators synchronously), so a
// daemon whose routes take no validated input yet keeps neither resident.
const require = packageRequire;

/** The spec as the build left it, or parsed from the YAML (slow: seconds on a busy machine) when not built. */
function loadSpec(): Spec {
  try {
    return JSON.parse(readFileSync(SPEC_JSON_PATH, 'utf8')) as Spec;
  } catch {
    const { parse } = require('yaml') as typeof import('yaml');
    return parse(readFileSync(SPEC_PATH, 'utf8')) as Spec;
  }
}

function newAjv(opts: ConstructorParameters<typeof Ajv>[0]): Ajv {
  const { Ajv: AjvClass } = require('ajv') as typeof import('ajv');
  return new AjvClass(opts);
}
const DEFS_ID = 'docker-v1.50';

type Schema = Record<string, unknown>;

interface SpecParameter {
  name: string;
  in: 'query' | 'path' | 'body' | 'header' | 'formData';
  type?: string;
  schema?: Schema;
}

interface SpecOperation {
  operationId?: string;
  parameters?: SpecParameter[];
}

export interface Spec {
  definitions: Record<string, Schema>;
  paths: Record<string, Record<string, SpecOperation>>;
}

/** Go's StrSlice fields: a JSON string decodes as a one-element list. */
const STRSLICE_FIELDS = new Set(['Cmd', 'Entrypoint', 'Shell']);
/** The spec's structures whose Cmd is a plain []string in Go (exec create), not a StrSlice. */
const PLAIN_CMD_OPERATIONS = new Set(['ContainerExec']);

const DROPPED = new Set([
  'description', 'example', 'title', 'enum', 'default', 'required', 'minimum', 'maximum', 'minItems', 'maxItems',
  'minLength', 'maxLength', 'pattern', 'readOnly', 'discriminator',
]);

/** The spec's schema as Go would decode it (see the file comment). */
function toDecoderSchema(s: unknown, strslice: boolean): unknown {
  if (Array.isArray(s)) return s.map((x) => toDecoderSchema(x, strslice));
  if (typeof s !== 'object' || s === null) return s;
  const out: Schema = {};
  for (const [k, v] of Object.entries(s as Schema)) {
    if (DROPPED.has(k) || k.startsWith('x-')) continue;
    if (k === '$ref' && typeof v === 'string') out.$ref = v.replace(/^#\/definitions\//, `${DEFS_ID}#/definitions/`);
    else if (k === 'type' && typeof v === 'string') {
      out.type = [v, 'null'];
      // Go's integers are at most 64 bits: a number beyond is a decode error, not a value to pass on.
      if (v === 'integer') out.goIntRange = (s as Schema).format === 'uint64' ? 'uint64' : 'int64';
    }
    else if (k === 'properties' && typeof v === 'object' && v !== null) {
      const props: Schema = {};
      for (const [name, ps] of Object.entries(v as Schema)) {
        props[name] = strslice && STRSLICE_FIELDS.has(name) ? { strslice: true } : toDecoderSchema(ps, strslice);
      }
      out.properties = props;
    } else out[k] = toDecoderSchema(v, strslice);
  }
  // A struct: Go's decoder matches field names case-insensitively (docker-py sends CPURealtimePeriod for
  // CpuRealtimePeriod); the keys are renamed to the spec's names first, then checked under them.
  if (out.properties) return { allOf: [{ gofields: Object.keys(out.properties as Schema) }, out] };
  return out;
}

/** fastify route path (`/containers/:id/json`) and spec path (`/containers/{id}/json`) on one shape. */
function pathShape(p: string): string {
  return p.replace(/\{[^}]+\}/g, '{}').replace(/:[A-Za-z0-9_]+/g, '{}').replace(/\*$/, '{}');
}

export interface RouteSchemas {
  body?: Schema;
  querystring?: Schema;
  params?: Schema;
}

interface Operation {
  schemas: RouteSchemas;
  /** Go's name for the body's top-level type, for error messages. */
  bodyName: string;
}

const QUERY_VALUE = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] };

/** Loads the spec once and answers which schemas a route gets. */
export class RequestSchemas {
  private readonly ops = new Map<string, Operation>();
  private definitionsSchema: Schema | undefined;
  /**
   * The spec's definitions, for the first body validation: the decoder schemas of all of them (~350 kB of heap)
   * are made then, not kept by every daemon from its start; read from the spec file again when none was given.
   */
  private readonly specDefinitions: () => Spec['definitions'];
  private bodyAjvInstance: Ajv | undefined;
  private plainAjvInstance: Ajv | undefined;
  private readonly bodyNames = new WeakMap<object, string>();

  constructor(given?: Spec) {
    const spec = given ?? loadSpec();
    this.specDefinitions = given ? () => given.definitions : () => loadSpec().definitions;
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const params = op.parameters ?? [];
        const schemas: RouteSchemas = {};
        const query = params.filter((p) => p.in === 'query');
        if (query.length > 0) {
          schemas.querystring = { type: 'object', properties: Object.fromEntries(query.map((p) => [p.name, QUERY_VALUE])) };
        }
        const pathParams = params.filter((p) => p.in === 'path');
        if (pathParams.length > 0) {
          schemas.params = { type: 'object', properties: Object.fromEntries(pathParams.map((p) => [p.name, { type: 'string' }])) };
        }
        const body = params.find((p) => p.in === 'body');
        let bodyName = op.operationId ?? 'Request';
        // Binary bodies (tar uploads) are read by their routes as streams.
        if (body?.schema && body.schema.format !== 'binary' && body.schema.type !== 'string') {
          const ref = typeof body.schema.$ref === 'string' ? body.schema.$ref.split('/').pop() : undefined;
          bodyName = ref ?? (typeof body.schema.title === 'string' ? body.schema.title : bodyName);
          schemas.body = toDecoderSchema(body.schema, !PLAIN_CMD_OPERATIONS.has(op.operationId ?? '')) as Schema;
        }
        this.ops.set(`${method.toUpperCase()} ${pathShape(path)}`, { schemas, bodyName });
      }
    }
  }

  /** The spec's definitions as Go would decode them (see the file comment), made on first use. */
  get definitions(): Schema {
    if (this.definitionsSchema) return this.definitionsSchema;
    const defs: Schema = {};
    for (const [name, d] of Object.entries(this.specDefinitions())) defs[name] = toDecoderSchema(d, true);
    this.definitionsSchema = { $id: DEFS_ID, definitions: defs };
    return this.definitionsSchema;
  }

  /** The decoder-like ajv for bodies, made on first use. */
  private get bodyAjv(): Ajv {
    if (this.bodyAjvInstance) return this.bodyAjvInstance;
    const ajv = newAjv({ strict: false, validateFormats: false, validateSchema: false, coerceTypes: false, allErrors: false, verbose: true });
    ajv.addKeyword({
      keyword: 'strslice',
      modifying: true,
      errors: true,
      validate: function strslice(_s: unknown, data: unknown, _p: unknown, ctx?: { parentData: Record<string | number, unknown>; parentDataProperty: string | number }): boolean {
        if (typeof data === 'string' && ctx) {
          ctx.parentData[ctx.parentDataProperty] = [data];
          return true;
        }
        if (data === null || (Array.isArray(data) && data.every((x) => typeof x === 'string'))) return true;
        (strslice as unknown as { errors: Partial<ErrorObject>[] }).errors = [{ keyword: 'type', params: { type: 'strslice' } }];
        return false;
      },
    });
    ajv.addKeyword({
      keyword: 'gofields',
      modifying: true,
      schemaType: 'array',
      compile: (names: string[]) => {
        const byFolded = new Map(names.map((n) => [n.toLowerCase(), n]));
        return (data: unknown): boolean => {
          if (typeof data !== 'object' || data === null || Array.isArray(data)) return true;
          const obj = data as Record<string, unknown>;
          for (const key of Object.keys(obj)) {
            const canon = byFolded.get(key.toLowerCase());
            if (canon === undefined || canon === key || canon in obj) continue;
            obj[canon] = obj[key];
            delete obj[key];
          }
          return true;
        };
      },
    });
    ajv.addKeyword({
      keyword: 'goIntRange',
      errors: true,
      validate: function goIntRange(kind: string, data: unknown): boolean {
        // -2^63 itself is left out: as a double it prints as -9223372036854776000, which no int64 parser takes.
        if (typeof data !== 'number' || (kind === 'uint64' ? data >= 0 && data < 2 ** 64 : data > -(2 ** 63) && data < 2 ** 63)) return true;
        (goIntRange as unknown as { errors: Partial<ErrorObject>[] }).errors = [{ keyword: 'type', params: { type: kind, range: true } }];
        return false;
      },
    });
    ajv.addSchema(this.definitions);
    this.bodyAjvInstance = ajv;
    return ajv;
  }

  /** A plain ajv for querystrings and params, made on first use. */
  private get plainAjv(): Ajv {
    this.plainAjvInstance ??= newAjv({ strict: false, validateFormats: false, coerceTypes: false });
    return this.plainAjvInstance;
  }

  /** The schemas for a route, or undefined when the spec has no such operation (Berth's own routes). */
  forRoute(method: string, url: string): RouteSchemas | undefined {
    return this.ops.get(`${method.toUpperCase()} ${pathShape(url)}`)?.schemas;
  }

  private bodyNameFor(method: string, url: string): string {
    return this.ops.get(`${method.toUpperCase()} ${pathShape(url)}`)?.bodyName ?? 'Request';
  }

  /**
   * Fastify's validator compiler: bodies through the decoder-like ajv (an absent body is no body, as dockerd
   * allows), querystrings and params through a plain one.
   */
  compile(schema: Schema, httpPart: string | undefined, method: string, url: string): ValidateFunction | ((data: unknown) => boolean) {
    if (httpPart !== 'body') {
      // Compiled on first use too: ~100 routes' query and path schemas compiled at start cost a daemon start
      // hundreds of milliseconds and their code stays resident.
      let v: ValidateFunction | undefined;
      const plain = (data: unknown): boolean => {
        v ??= this.plainAjv.compile(schema);
        const ok = v(data);
        plain.errors = v.errors;
        return ok;
      };
      plain.errors = undefined as unknown;
      return plain;
    }
    // Compiled on first use: the body schemas pull in much of the spec, and most routes are never called.
    let v: ValidateFunction | undefined;
    const name = this.bodyNameFor(method, url);
    const fn = (data: unknown): boolean => {
      if (data === undefined) return true;
      v ??= this.bodyAjv.compile(schema);
      const ok = v(data);
      fn.errors = v.errors?.map((e) => ({ ...e, data: e.data ?? valueAt(data, e.instancePath), bodyName: name, rootSchema: schema }));
      return ok;
    };
    fn.errors = undefined as unknown;
    return fn;
  }

  /** dockerd's 400 for a body Go could not decode: `json: cannot unmarshal … into Go struct field … of type …`. */
  formatError(errors: readonly (ErrorObject & { bodyName?: string; rootSchema?: Schema })[], dataVar: string): Error {
    const e = errors[0];
    if (!e) return new InvalidParameterError(`invalid ${dataVar}`);
    if (dataVar !== 'body' || e.keyword !== 'type') {
      return new InvalidParameterError(`invalid ${dataVar}: ${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    }
    const segments = e.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const { fields, goType } = this.describe(e.rootSchema ?? {}, segments);
    // A number out of the Go type's range: Go names it with its value (`number 1e+300`).
    const kind = (e.params as { range?: boolean }).range ? `number ${String(e.data)}` : jsonKind(e.data);
    if (fields.length === 0) {
      return new InvalidParameterError(`json: cannot unmarshal ${kind} into Go value of type ${segments.length === 0 ? (e.bodyName ?? goType) : goType}`);
    }
    return new InvalidParameterError(`json: cannot unmarshal ${kind} into Go struct field ${e.bodyName ?? 'Request'}.${fields.join('.')} of type ${goType}`);
  }

  /** Walks the schema along an instance path: the struct fields on the way (Go names them) and the leaf's Go type. */
  private describe(root: Schema, segments: string[]): { fields: string[]; goType: string } {
    const fields: string[] = [];
    let s: Schema | undefined = root;
    for (const seg of segments) {
      s = s ? this.resolve(s) : undefined;
      if (!s) break;
      const prop = this.property(s, seg);
      if (prop) {
        fields.push(seg);
        s = prop;
      } else if (/^\d+$/.test(seg) && s.items) s = s.items as Schema;
      else if (typeof s.additionalProperties === 'object') s = s.additionalProperties as Schema;
      else s = undefined;
    }
    return { fields, goType: s ? this.goType(s) : 'interface {}' };
  }

  private resolve(s: Schema): Schema {
    let cur = s;
    for (let i = 0; i < 10 && typeof cur.$ref === 'string'; i++) {
      const name = cur.$ref.split('/').pop() ?? '';
      cur = ((this.definitions.definitions as Schema)[name] as Schema | undefined) ?? {};
    }
    return cur;
  }

  private property(s: Schema, name: string): Schema | undefined {
    const props = s.properties as Schema | undefined;
    if (props && name in props) return props[name] as Schema;
    for (const branch of (s.allOf as Schema[] | undefined) ?? []) {
      const p = this.property(this.resolve(branch), name);
      if (p) return p;
    }
    return undefined;
  }

  private goType(s: Schema): string {
    if (s.strslice) return 'strslice.StrSlice';
    const ref = typeof s.$ref === 'string' ? s.$ref.split('/').pop() : undefined;
    const r = this.resolve(s);
    const type = Array.isArray(r.type) ? r.type[0] : r.type;
    switch (type) {
      case 'integer':
        return typeof r.format === 'string' && /^u?int\d+$/.test(r.format) ? r.format : 'int';
      case 'number':
        return 'float64';
      case 'string':
        return 'string';
      case 'boolean':
        return 'bool';
      case 'array':
        return `[]${r.items ? this.goType(r.items as Schema) : 'interface {}'}`;
      case 'object':
        if (ref) return ref;
        if (typeof r.additionalProperties === 'object') return `map[string]${this.goType(r.additionalProperties as Schema)}`;
        return 'struct';
      default:
        return ref ?? 'interface {}';
    }
  }
}

/** The value an instance path (`/HostConfig/Binds/0`) points at. */
function valueAt(data: unknown, instancePath: string): unknown {
  let cur = data;
  for (const seg of instancePath.split('/').slice(1)) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[seg.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

/** The JSON kind Go names in decode errors. */
function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  return typeof v; // string, object
}
