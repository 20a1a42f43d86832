import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { beginStream } from '../streaming.js';
import { type Query, qBool, qString, qStrings } from '../query.js';
import { BerthError, InvalidParameterError, errorMessage } from '../../errors.js';
import { ArchiveOps } from '../../containers/archive.js';
import type { UpdateBody } from '../../containers/container-ops.js';
import type { ContainerConfigJson } from '../../images/image-config.js';

type IdParams = { id: string };

const PATH_STAT_HEADER = 'x-docker-container-path-stat';

/** The upload as a stream that can be destroyed on failure without destroying the request's socket. */
function uploadStream(request: FastifyRequest): PassThrough {
  const body = new PassThrough();
  request.raw.on('error', (e) => body.destroy(e));
  request.raw.pipe(body);
  return body;
}

function drainBody(request: FastifyRequest): void {
  request.raw.unpipe();
  if (!request.raw.readableEnded) request.raw.resume();
}

function requirePath(q: Query): string {
  const p = qString(q, 'path');
  if (p === undefined || p === '') throw new InvalidParameterError('Path cannot be empty');
  return p;
}

/** Containers API part 2: cp, diff, export, commit, top, stats, pause/unpause, update, rename, prune. */
export async function containerOpsRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { containerOps: ops } = services;
  // --- docker cp

  app.head<{ Params: IdParams; Querystring: Query }>('/containers/:id/archive', async (request, reply) => {
    let stat;
    try {
      stat = await ops.statPath(request.params.id, requirePath(request.query));
    } catch (e) {
      // A HEAD answer has no body: the status alone (no JSON content type announcing a message that never comes).
      if (e instanceof BerthError) {
        void reply.code(e.statusCode).send();
        return;
      }
      throw e;
    }
    void reply.header(PATH_STAT_HEADER, ArchiveOps.encodeStat(stat)).code(200).send();
  });

  app.get<{ Params: IdParams; Querystring: Query }>('/containers/:id/archive', async (request, reply) => {
    const { stat, tar } = await ops.getArchive(request.params.id, requirePath(request.query));
    void reply.header(PATH_STAT_HEADER, ArchiveOps.encodeStat(stat));
    const res = beginStream(reply, 'application/x-tar');
    try {
      await pipeline(Readable.from(tar), res);
    } catch (e) {
      request.log.info({ err: errorMessage(e) }, 'archive stream ended early');
      res.destroy();
    }
  });

  app.put<{ Params: IdParams; Querystring: Query }>('/containers/:id/archive', { config: { rawBody: true } }, async (request, reply) => {
    const q = request.query;
    let body: PassThrough | undefined;
    try {
      const path = requirePath(q);
      body = uploadStream(request);
      await ops.putArchive(request.params.id, path, body, {
        noOverwriteDirNonDir: qBool(q, 'noOverwriteDirNonDir'),
        copyUIDGID: qBool(q, 'copyUIDGID'),
      });
    } catch (e) {
      body?.destroy();
      drainBody(request);
      throw e;
    }
    void reply.code(200).send();
  });

  // --- diff, export, commit

  app.get<{ Params: IdParams }>('/containers/:id/changes', async (request, reply) => {
    void reply.header('content-type', 'application/json');
    return JSON.stringify(ops.changes(request.params.id));
  });

  app.get<{ Params: IdParams }>('/containers/:id/export', async (request, reply) => {
    const tar = ops.export(request.params.id);
    const res = beginStream(reply, 'application/octet-stream');
    try {
      await pipeline(Readable.from(tar), res);
    } catch (e) {
      request.log.info({ err: errorMessage(e) }, 'export stream ended early');
      res.destroy();
    }
  });

  app.post<{ Querystring: Query }>('/commit', async (request, reply) => {
    const q = request.query;
    const container = qString(q, 'container');
    ops.requireContainer(container);
    const body = request.body as ContainerConfigJson | undefined;
    if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
      throw new InvalidParameterError('invalid JSON: expected a container config object');
    }
    const repo = qString(q, 'repo');
    const tag = qString(q, 'tag');
    const comment = qString(q, 'comment');
    const author = qString(q, 'author');
    const id = await ops.commit(container as string, {
      ...(repo ? { repo } : {}),
      ...(tag ? { tag } : {}),
      ...(comment ? { comment } : {}),
      ...(author ? { author } : {}),
      changes: qStrings(q, 'changes').filter((c) => c.trim() !== ''),
      ...(body ? { config: body } : {}),
      pause: qBool(q, 'pause', true),
    });
    void reply.code(201).send({ Id: id });
  });

  // --- top, stats

  app.get<{ Params: IdParams; Querystring: Query }>('/containers/:id/top', async (request) => ops.top(request.params.id, qString(request.query, 'ps_args')));

  app.get<{ Params: IdParams; Querystring: Query }>('/containers/:id/stats', async (request, reply) => {
    const q = request.query;
    const stream = qBool(q, 'stream', true);
    const oneShot = qBool(q, 'one-shot');
    if (oneShot && stream) throw new InvalidParameterError('cannot have stream=true and one-shot=true');
    if (!stream) {
      void reply.header('content-type', 'application/json');
      return JSON.stringify(await ops.statsOnce(request.params.id, oneShot));
    }
    const ac = new AbortController();
    const gen = ops.statsStream(request.params.id, ac.signal);
    const res = beginStream(reply, 'application/json');
    const abort = (): void => ac.abort();
    request.raw.on('close', abort);
    res.on('close', abort);
    app.shutdownSignal.addEventListener('abort', abort, { once: true });
    try {
      for await (const s of gen) {
        if (res.destroyed) break;
        res.write(`${JSON.stringify(s)}\n`);
      }
    } catch (e) {
      request.log.warn({ err: errorMessage(e) }, 'stats stream failed');
    } finally {
      app.shutdownSignal.removeEventListener('abort', abort);
      res.end();
    }
    return undefined;
  });

  // --- pause, update, rename, prune

  app.post<{ Params: IdParams }>('/containers/:id/pause', async (request, reply) => {
    await ops.pause(request.params.id);
    void reply.code(204).send();
  });

  app.post<{ Params: IdParams }>('/containers/:id/unpause', async (request, reply) => {
    await ops.unpause(request.params.id);
    void reply.code(204).send();
  });

  app.post<{ Params: IdParams }>('/containers/:id/update', async (request) => {
    const body = (request.body ?? {}) as UpdateBody;
    if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidParameterError('invalid JSON: expected an object');
    return ops.update(request.params.id, body);
  });

  app.post<{ Params: IdParams; Querystring: Query }>('/containers/:id/rename', async (request, reply) => {
    await ops.rename(request.params.id, qString(request.query, 'name'));
    void reply.code(204).send();
  });

  app.post<{ Querystring: Query }>('/containers/prune', async (request) => ops.prune(qString(request.query, 'filters')));
}
