import type { FastifyInstance } from 'fastify';
import { RequestSchemas } from './request-schemas.js';

/**
 * Every route gets its request schemas from Docker's spec as it is added (routes registered later by any plugin
 * included), validated by ajv through Fastify's validator compiler; a body Go would not decode is a 400 with Go's
 * decoder message. Routes that read their body as a stream (rawBody) get no body schema.
 */
export function installRequestSchemas(app: FastifyInstance, schemas: RequestSchemas = new RequestSchemas()): void {
  app.setValidatorCompiler(({ schema, httpPart, method, url }) => schemas.compile(schema as Record<string, unknown>, httpPart, method, url));
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
