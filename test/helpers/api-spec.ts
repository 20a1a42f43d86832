import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

const SPEC_PATH = fileURLToPath(new URL('../../api-spec/berth.yaml', import.meta.url));
const METHODS = ['get', 'head', 'post', 'put', 'delete'] as const;

interface MediaType {
  schema?: Record<string, unknown>;
}
interface Operation {
  operationId?: string;
  responses?: Record<string, { content?: Record<string, MediaType> }>;
  'x-hijack'?: boolean;
  'x-test-query'?: string;
  'x-test-status'?: number[];
}
export interface BerthSpec {
  paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>>;
  components: { schemas: Record<string, Record<string, unknown>> };
}

export function loadBerthSpec(): BerthSpec {
  return parse(readFileSync(SPEC_PATH, 'utf8')) as BerthSpec;
}

export interface SpecRoute {
  method: string;
  path: string;
  op: Operation;
}

export function specRoutes(spec = loadBerthSpec()): SpecRoute[] {
  const out: SpecRoute[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const m of METHODS) {
      const op = item[m];
      if (op) out.push({ method: m.toUpperCase(), path, op });
    }
  }
  return out;
}

let ajv: Ajv2020 | undefined;
function validator(): Ajv2020 {
  if (!ajv) {
    ajv = new Ajv2020({ strict: false, allErrors: true });
    ajv.addSchema({ $id: 'berth', components: loadBerthSpec().components });
  }
  return ajv;
}

/** Validates a JSON response body against the schema the spec documents for that route and status. */
export function validateResponse(method: string, pathTemplate: string, status: number, body: unknown): string[] {
  const spec = loadBerthSpec();
  const op = spec.paths[pathTemplate]?.[method.toLowerCase() as (typeof METHODS)[number]];
  if (!op) return [`${method} ${pathTemplate} is not documented in api-spec/berth.yaml`];
  const response = op.responses?.[String(status)];
  if (!response) return [`${method} ${pathTemplate} does not document status ${status}`];
  const schema = response.content?.['application/json']?.schema;
  if (!schema) return [];
  const ref = typeof schema.$ref === 'string' ? `berth${schema.$ref}` : undefined;
  // Inline schemas point into the document's components: resolve them against the registered spec.
  const inline = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"berth#/components/')) as Record<string, unknown>;
  const validate = ref ? validator().getSchema(ref) : validator().compile(inline);
  if (!validate) return [`schema ${ref} not found`];
  if (validate(body)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
