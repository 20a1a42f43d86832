import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { beginStream } from '../streaming.js';
import { type Query, qBool, qInt, qString } from '../query.js';
import { versionAtLeast } from '../api-version.js';
import { ConflictError, InvalidParameterError, NotFoundError, errorMessage } from '../../errors.js';
import type { CreateRequest } from '../../containers/container-service.js';
import type { WaitCondition } from '../../containers/waiters.js';
import { BatchWriter, parseDetachKeys, serveAttach, serveExec, streamMediaType } from '../attach-stream.js';

type IdParams = { id: string };

export async function containerRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { containers, execs, containerOps } = services;
  const deps = { containers, execs };
  app.post<{ Querystring: Query }>('/containers/create', async (request, reply) => {
    const q = request.query;
    const body = (request.body ?? {}) as CreateRequest['body'];
    if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidParameterError('invalid JSON: expected an object');
    const name = qString(q, 'name');
    const platform = qString(q, 'platform');
    // Before API 1.44 read-only binds were not recursive, and the options choosing it did not exist (dockerd).
    if (!versionAtLeast(request.apiVersion ?? '1.50', '1.44')) {
      for (const m of body.HostConfig?.Mounts ?? []) {
        const bo = (m as { BindOptions?: { ReadOnlyNonRecursive?: boolean; ReadOnlyForceRecursive?: boolean } | null }).BindOptions;
        if (bo?.ReadOnlyForceRecursive) throw new InvalidParameterError('BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer');
        if ((m as { Type?: string }).Type === 'bind' && (m as { ReadOnly?: boolean }).ReadOnly) {
          (m as { BindOptions?: Record<string, unknown> }).BindOptions = { ...(bo ?? {}), ReadOnlyNonRecursive: true };
        }
      }
    }
    const res = await containers.create({ ...(name ? { name } : {}), ...(platform ? { platform } : {}), body });
    void reply.code(201).send(res);
  });

  app.get<{ Querystring: Query }>('/containers/json', async (request) => {
    const q = request.query;
    const limit = qInt(q, 'limit');
    const list = containers.list({
      all: qBool(q, 'all'),
      ...(limit !== undefined ? { limit } : {}),
      size: qBool(q, 'size'),
      ...(qString(q, 'filters') ? { filters: qString(q, 'filters') } : {}),
    });
    // size=1 (docker ps -s, docker-py size=True): SizeRw and SizeRootFs, as dockerd adds them.
    if (!qBool(q, 'size')) return list;
    return Promise.all(list.map(async (e) => ({ ...e, ...(await containerOps.sizes(e.Id as string)) })));
  });

  app.get<{ Params: IdParams; Querystring: Query }>('/containers/:id/json', async (request) => {
    const info = containers.inspect(request.params.id, qBool(request.query, 'size'));
    return qBool(request.query, 'size') ? { ...info, ...(await containerOps.sizes(request.params.id)) } : info;
  });

  app.post<{ Params: IdParams }>('/containers/:id/start', async (request, reply) => {
    const r = await containers.start(request.params.id);
    void reply.code(r === 'already' ? 304 : 204).send();
  });

  const stopOpts = (q: Query): { timeout?: number; signal?: string } => {
    const t = qInt(q, 't');
    const signal = qString(q, 'signal');
    return { ...(t !== undefined ? { timeout: t } : {}), ...(signal ? { signal } : {}) };
  };

  app.post<{ Params: IdParams; Querystring: Query }>('/containers/:id/stop', async (request, reply) => {
    const r = await containers.stop(request.params.id, stopOpts(request.query));
    void reply.code(r === 'already' ? 304 : 204).send();
  });

  app.post<{ Params: IdParams; Querystring: Query }>('/containers/:id/restart', async (request, reply) => {
    await containers.restart(request.params.id, stopOpts(request.query));
    void reply.code(204).send();
  });

  app.post<{ Params: IdParams; Querystring: Query }>('/containers/:id/kill', async (request, reply) => {
    await containers.kill(request.params.id, qString(request.query, 'signal'));
    void reply.code(204).send();
  });

  app.delete<{ Params: IdParams; Querystring: Query }>('/containers/:id', async (request, reply) => {
    const q = request.query;
    if (qBool(q, 'link')) throw new ConflictError('Conflict, cannot remove the default link name of the container');
    const c = containers.get(request.params.id);
    await containers.remove(request.params.id, { force: qBool(q, 'force'), removeVolumes: qBool(q, 'v') });
    execs.forgetContainer(c.id);
    void reply.code(204).send();
  });

  // docker rm --link /<parent>/<alias>: the name carries a slash.
  app.delete<{ Params: { id: string; link: string }; Querystring: Query }>('/containers/:id/:link', async (request, reply) => {
    const { id, link } = request.params;
    if (!qBool(request.query, 'link')) throw new NotFoundError(`No such container: ${id}/${link}`);
    await containers.removeLink(id, link);
    void reply.code(204).send();
  });

  app.post<{ Params: IdParams; Querystring: Query }>('/containers/:id/wait', async (request, reply) => {
    const q = request.query;
    const condition = (qString(q, 'condition') || 'not-running') as WaitCondition;
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) {
      throw new InvalidParameterError(`invalid condition: "${condition}"`);
    }
    const { result } = containers.wait(request.params.id, condition);
    // Headers go out at once: `docker run` calls /start only after they arrive.
    const res = beginStream(reply, 'application/json');
    const r = await Promise.race([
      result,
      once(request.raw, 'close').then(() => undefined),
    ]);
    if (r && !res.destroyed) res.end(`${JSON.stringify(r)}\n`);
    else res.end();
  });

  app.post<{ Params: IdParams; Querystring: Query }>('/containers/:id/resize', async (request, reply) => {
    const q = request.query;
    await containers.resize(request.params.id, qInt(q, 'h', 0) ?? 0, qInt(q, 'w', 0) ?? 0);
    void reply.code(200).send();
  });

  app.get<{ Params: IdParams; Querystring: Query }>('/containers/:id/logs', async (request, reply) => {
    const q = request.query;
    const ac = new AbortController();
    const since = qString(q, 'since');
    const until = qString(q, 'until');
    const tail = qString(q, 'tail');
    const follow = qBool(q, 'follow');
    const { c, batches } = containers.logs(request.params.id, {
      stdout: qBool(q, 'stdout'),
      stderr: qBool(q, 'stderr'),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
      ...(tail !== undefined ? { tail } : {}),
      follow,
      signal: ac.signal,
    });
    const tty = c.config.Tty;
    const timestamps = qBool(q, 'timestamps');
    const res = beginStream(reply, streamMediaType(tty, request.apiVersion ?? '1.50'));
    const abort = (): void => ac.abort();
    request.raw.on('close', abort);
    app.shutdownSignal.addEventListener('abort', abort, { once: true });
    // Entries of one stream share a frame unless following (see BatchWriter).
    const out = new BatchWriter(res, !follow);
    try {
      read: for await (const batch of batches) {
        for (const e of batch) {
          const full = out.add(tty ? undefined : e.stream, e.data, timestamps ? Buffer.from(`${e.time} `) : undefined);
          if (full) await full;
          if (res.destroyed) break read;
        }
      }
    } catch (err) {
      request.log.warn({ err: errorMessage(err) }, 'reading logs failed');
    } finally {
      out.close();
      app.shutdownSignal.removeEventListener('abort', abort);
      res.end();
    }
  });

  // Without Upgrade (some SDKs): a 200 with the raw stream; no stdin.
  app.post<{ Params: IdParams; Querystring: Query }>('/containers/:id/attach', async (request, reply) => {
    await serveAttach(deps, request.params.id, request.query, request.apiVersion ?? '1.50', (mediaType) => {
      const res = beginStream(reply, mediaType);
      return { sink: res, close: () => res.end() };
    });
  });

  // --- exec

  app.post<{ Params: IdParams }>('/containers/:id/exec', async (request, reply) => {
    const body = { ...((request.body ?? {}) as Parameters<typeof execs.create>[1] & { detachKeys?: string }) };
    // Go decodes JSON keys case-insensitively: docker-py sends `detachKeys` from its client config.
    if (body.DetachKeys === undefined && typeof body.detachKeys === 'string') body.DetachKeys = body.detachKeys;
    delete body.detachKeys;
    if (body.DetachKeys) {
      try {
        parseDetachKeys(body.DetachKeys);
      } catch {
        throw new InvalidParameterError(`Invalid escape keys (${body.DetachKeys}) provided`);
      }
    }
    const id = execs.create(request.params.id, body);
    void reply.code(201).send({ Id: id });
  });

  app.get<{ Params: IdParams }>('/exec/:id/json', async (request) => execs.inspect(request.params.id));

  app.post<{ Params: IdParams; Querystring: Query }>('/exec/:id/resize', async (request, reply) => {
    const q = request.query;
    await execs.resize(request.params.id, qInt(q, 'h', 0) ?? 0, qInt(q, 'w', 0) ?? 0);
    void reply.code(200).send();
  });

  // Without Upgrade (testcontainers, dockerode without stdin): dockerd answers 200 with the raw-stream type.
  app.post<{ Params: IdParams }>('/exec/:id/start', async (request, reply) => {
    const body = (request.body ?? {}) as { Detach?: boolean; Tty?: boolean };
    if (body.Detach) {
      const { handle } = await execs.start(request.params.id);
      handle.output.resume();
      void reply.code(200).send();
      return;
    }
    await serveExec(deps, request.params.id, body.Tty === true, () => {
      const res = beginStream(reply, 'application/vnd.docker.raw-stream');
      return { sink: res, close: () => res.end() };
    });
  });
}

