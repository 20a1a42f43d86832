import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { BerthError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { BERTH_VERSION, API_VERSION } from '../version.js';

/**
 * What every answer carries, whichever way it leaves: Fastify replies (the onRequest hook), hijacked 101s and
 * errors written on a hijacked socket (hijack.ts) share these headers and the one error renderer below.
 */
export const STANDARD_HEADERS: Readonly<Record<string, string>> = {
  'api-version': API_VERSION,
  'docker-experimental': 'false',
  ostype: 'linux',
  server: `Berth/${BERTH_VERSION} (linux)`,
};

/** STANDARD_HEADERS as raw header lines, for responses written on a socket. */
export const STANDARD_HEADER_LINES = Object.entries(STANDARD_HEADERS)
  .map(([k, v]) => `${k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase())}: ${v}\r\n`)
  .join('');

/** Status for anything thrown on the request path: our errors carry it, Fastify's 4xx keep theirs, the rest are 500. */
export function statusOf(err: unknown): number {
  if (err instanceof BerthError) return err.statusCode;
  const code = (err as FastifyError | undefined)?.statusCode;
  if (typeof code === 'number' && code >= 400 && code < 500) return code === 415 ? 400 : code;
  return 500;
}

export interface RenderedError {
  status: number;
  body: { message: string };
}

/** The one place an error becomes Docker's `{"message": ...}` with its status; 5xx are logged as failures. */
export function renderError(err: unknown, log: Logger, context: Record<string, unknown>): RenderedError {
  const status = statusOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (status >= 500) log.error({ err, ...context }, 'request failed');
  else log.debug({ ...context, status, message }, 'request refused');
  return { status, body: { message } };
}

/** A rendered error as a complete HTTP/1.1 response, for a socket no HTTP server writes to any more. */
export function rawErrorResponse({ status, body }: RenderedError): string {
  const json = `${JSON.stringify(body)}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n${STANDARD_HEADER_LINES}Connection: close\r\n\r\n${json}`
  );
}

export function installErrorHandling(app: FastifyInstance, log: Logger): void {
  app.setErrorHandler((err, request, reply) => {
    const { status, body } = renderError(err, log, { reqId: request.id, url: request.url });
    void reply.code(status).type('application/json').send(body);
  });
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).type('application/json').send({ message: 'page not found' });
  });
}
