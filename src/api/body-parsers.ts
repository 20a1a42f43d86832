import type { FastifyInstance, FastifyRequest } from 'fastify';
import { InvalidParameterError } from '../errors.js';

function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InvalidParameterError(`invalid JSON: ${(e as Error).message}`);
  }
}

/**
 * JSON bodies are parsed (an empty one is no body, as dockerd allows); routes marked rawBody get the
 * stream untouched; other types are accepted only when they hold JSON (some clients omit the type).
 */
export function installBodyParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser('*', (request: FastifyRequest, payload, done) => {
    // An unknown path answers 404 "page not found" whatever it carries (a build context to POST /build), not a type error.
    if (request.routeOptions.config.rawBody || request.is404) {
      done(null, undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    payload.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 16 * 1024 * 1024) chunks.push(c);
    });
    payload.on('error', (e) => done(e, undefined));
    payload.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') {
        done(null, undefined);
        return;
      }
      try {
        done(null, parseJsonBody(text));
      } catch {
        const type = request.headers['content-type'] ?? '';
        done(new InvalidParameterError(`unsupported Content-Type header (${type}): must be 'application/json'`), undefined);
      }
    });
  });
}
