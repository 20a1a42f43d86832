import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { beginStream, writeJsonLine } from '../streaming.js';
import { type Query, qBool, qString, qStrings } from '../query.js';
import { InvalidParameterError, NotFoundError, NotImplementedError, errorMessage } from '../../errors.js';
import { importImage } from '../../images/image-import.js';
import { servePull, servePush } from './registry.js';
import { effectiveVersion, versionAtLeast } from '../api-version.js';

/** Lets the request body run out so the client reads our answer instead of a reset. */
function drainBody(request: FastifyRequest): void {
  request.raw.unpipe();
  if (!request.raw.readableEnded) request.raw.resume();
}

/**
 * The upload as a stream the consumer may destroy on failure without destroying the request (and with it
 * the socket the answer must go out on).
 */
function uploadStream(request: FastifyRequest): PassThrough {
  const body = new PassThrough();
  request.raw.on('error', (e) => body.destroy(e));
  request.raw.pipe(body);
  return body;
}

/** Docker's `changes` parameter: repeated, one Dockerfile instruction each. */
function changesParam(q: Query): string[] {
  return qStrings(q, 'changes').filter((c) => c.trim() !== '');
}

/**
 * /images/*: names carry `/` and `:`, so the name routes are one wildcard per method, dispatched by suffix
 * (`/json`, `/history`, `/get`, `/tag`, `/push`). Static routes (json, load, create, prune, get) win over it.
 */
export async function imageRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { images } = services;

  app.get<{ Querystring: Query }>('/images/json', async (request) => {
    const q = request.query;
    return images.service.list({
      all: qBool(q, 'all'),
      filters: qString(q, 'filters') ?? filterFromLegacy(q),
      digests: qBool(q, 'digests'),
      sharedSize: qBool(q, 'shared-size'),
      // dockerd: the parameter exists from API 1.47; older requests never get the field.
      manifests: qBool(q, 'manifests') && versionAtLeast(effectiveVersion(request.apiVersion), '1.47'),
    });
  });

  app.post<{ Querystring: Query }>('/images/load', { config: { rawBody: true } }, async (request, reply) => {
    const q = request.query;
    const quiet = qBool(q, 'quiet');
    const res = beginStream(reply, 'application/json');
    try {
      await images.loader.load(uploadStream(request), quiet, (m) => writeJsonLine(res, m));
    } catch (e) {
      request.log.info({ err: errorMessage(e) }, 'image load failed');
      const message = errorMessage(e);
      writeJsonLine(res, { errorDetail: { message }, error: message });
      drainBody(request);
    }
    res.end();
  });

  app.post<{ Querystring: Query }>('/images/create', { config: { rawBody: true } }, async (request, reply) => {
    const q = request.query;
    const fromSrc = qString(q, 'fromSrc');
    const fromImage = qString(q, 'fromImage');
    if (fromSrc !== undefined && fromSrc !== '') {
      if (fromSrc !== '-') {
        drainBody(request);
        throw new NotImplementedError('importing from a URL is not supported yet; pipe the archive to `docker import -`');
      }
      let id: string;
      try {
        id = await importImage(images.service, uploadStream(request), {
          repo: qString(q, 'repo'),
          tag: qString(q, 'tag'),
          changes: changesParam(q),
          message: qString(q, 'message'),
          platform: qString(q, 'platform'),
        });
      } catch (e) {
        drainBody(request);
        throw e;
      }
      const res = beginStream(reply, 'application/json');
      writeJsonLine(res, { status: id });
      res.end();
      return;
    }
    drainBody(request);
    if (fromImage !== undefined && fromImage !== '') {
      return servePull(services.registry, request, reply);
    }
    throw new InvalidParameterError('one of fromSrc or fromImage must be set');
  });

  app.post<{ Querystring: Query }>('/images/prune', async (request) => {
    const q = request.query;
    return images.service.prune(qString(q, 'filters'));
  });

  app.get<{ Querystring: Query }>('/images/get', async (request, reply) => {
    const q = request.query;
    const names = qStrings(q, 'names');
    await save(reply, names);
  });

  async function save(reply: FastifyReply, names: string[]): Promise<void> {
    if (names.length === 0) throw new InvalidParameterError('no images specified');
    const selected = images.service.expandForSave(names);
    // The tar writer (tar-stream and its streams) loads with the first save, not at every daemon start.
    const { saveImages } = await import('../../images/image-save.js');
    const res = beginStream(reply, 'application/x-tar');
    try {
      await saveImages(images.service, selected, res);
    } catch (e) {
      reply.log.error({ err: e }, 'image save failed');
      res.destroy(e as Error);
    }
  }

  app.get('/images/*', async (request, reply) => {
    const rest = (request.params as { '*': string })['*'];
    if (rest.endsWith('/json')) return images.service.inspect(rest.slice(0, -'/json'.length));
    if (rest.endsWith('/history')) return images.service.history(rest.slice(0, -'/history'.length));
    if (rest.endsWith('/get')) return save(reply, [rest.slice(0, -'/get'.length)]);
    throw new NotFoundError('page not found');
  });

  app.post<{ Querystring: Query }>('/images/*', async (request, reply) => {
    const rest = (request.params as { '*': string })['*'];
    const q = request.query;
    if (rest.endsWith('/tag')) {
      const repo = qString(q, 'repo') ?? '';
      images.service.tag(rest.slice(0, -'/tag'.length), repo, qString(q, 'tag'));
      void reply.code(201).send();
      return;
    }
    if (rest.endsWith('/push')) {
      return servePush(services.registry, request, reply, rest.slice(0, -'/push'.length));
    }
    throw new NotFoundError('page not found');
  });

  app.delete<{ Querystring: Query }>('/images/*', async (request) => {
    const name = (request.params as { '*': string })['*'];
    const q = request.query;
    return images.service.remove(name, { force: qBool(q, 'force'), noprune: qBool(q, 'noprune') });
  });
}

/** The pre-1.25 `filter=<reference>` parameter of GET /images/json. */
function filterFromLegacy(q: Query): string | undefined {
  const f = qString(q, 'filter');
  return f ? JSON.stringify({ reference: { [f]: true } }) : undefined;
}
