import type { FastifyInstance, FastifySchemaCompiler, FastifyServerOptions } from 'fastify';
import type { RequestSchemas } from './request-schemas.js';

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type ValidatorFactory = NonNullable<CompilersFactory['buildValidator']>;
type SerializerFactory = NonNullable<CompilersFactory['buildSerializer']>;

/**
 * Fastify's compilers, given at construction: otherwise Fastify builds its default ones (@fastify/ajv-compiler
 * with ajv and ajv-formats, fast-json-stringify), which load at start (~1.4 MB of heap) and which Berth never
 * uses: request validators are its own (below) and no route declares a response schema.
 */
export function requestCompilers(schemas: RequestSchemas): CompilersFactory {
  const validator: FastifySchemaCompiler<Record<string, unknown>> = ({ schema, httpPart, method, url }) => schemas.compile(schema, httpPart, method, url);
  const serializer = (): ((data: unknown) => string) => (data) => JSON.stringify(data);
  // Fastify types the factories as its default compilers' (Ajv's, fast-json-stringify's); what it calls them
  // for is any schema compiler, as setValidatorCompiler takes.
  return { buildValidator: (() => validator) as unknown as ValidatorFactory, buildSerializer: (() => serializer) as unknown as SerializerFactory };
}

/**
 * Every route gets its request schemas from Docker's spec as it is added (routes registered later by any plugin
 * included), validated by ajv through the validator compiler of requestCompilers; a body Go would not decode is a
 * 400 with Go's decoder message. Routes that read their body as a stream (rawBody) get no body schema.
 */
export function installRequestSchemas(app: FastifyInstance, schemas: RequestSchemas): void {
  app.setSchemaErrorFormatter((errors, dataVar) => schemas.formatError(errors, dataVar));
  app.addHook('onRoute', (route) => {
    if (route.schema !== undefined) return;
    const method = Array.isArray(route.method) ? route.method[0] : route.method;
    if (typeof method !== 'string') return;
    const found = schemas.forRoute(method, route.url);
    if (!found) return;
    const { body, ...rest } = found;
    const rawBody = (route.config as { rawBody?: boolean } | undefined)?.rawBody === true;
    route.schema = body && !rawBody ? { ...rest, body } : rest;
  });
}
