import type { FastifyError, FastifyInstance } from 'fastify';
import { BerthError } from '../errors.js';
import type { Logger } from '../util/logger.js';

/** Status for anything thrown on the request path: our errors carry it, Fastify's 4xx keep theirs, the rest are 500. */
export function statusOf(err: unknown): number {
  if (err instanceof BerthError) return err.statusCode;
  const code = (err as FastifyError | undefined)?.statusCode;
  if (typeof code === 'number' && code >= 400 && code < 500) return code === 415 ? 400 : code;
  return 500;
}

/** The one place errors become Docker's `{"message": ...}`. */
export function installErrorHandling(app: FastifyInstance, log: Logger): void {
  app.setErrorHandler((err, request, reply) => {
    const status = statusOf(err);
    const message = err instanceof Error ? err.message : String(err);
    if (status >= 500) log.error({ err, reqId: request.id, url: request.url }, 'request failed');
    else log.debug({ reqId: request.id, status, message }, 'request refused');
    void reply.code(status).type('application/json').send({ message });
  });
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).type('application/json').send({ message: 'page not found' });
  });
}
