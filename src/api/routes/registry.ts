import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { beginStream, writeJsonLine } from '../streaming.js';
import { type Query, qInt, qString } from '../query.js';
import { InvalidParameterError, NotFoundError, errorMessage } from '../../errors.js';
import { decodeAuthHeader, toAuthConfig } from '../../registry/auth-config.js';
import { parsePlatform } from '../../registry/platform.js';
import type { RegistryService } from '../../registry/registry-service.js';

/** A progress stream whose headers go out with the first message: errors before it are plain HTTP errors. */
class LazyStream {
  private res: ServerResponse | undefined;

  constructor(private readonly reply: FastifyReply) {}

  get started(): boolean {
    return this.res !== undefined;
  }

  readonly emit = (m: Record<string, unknown>): void => {
    this.res ??= beginStream(this.reply, 'application/json');
    if (!this.res.destroyed && !this.res.writableEnded) writeJsonLine(this.res, m);
  };

  fail(e: unknown): void {
    const message = errorMessage(e);
    this.emit({ errorDetail: { message }, error: message });
  }

  end(): void {
    this.res?.end();
  }
}

/** POST /images/create?fromImage=&tag=&platform=: the registry's pull, its progress as a JSON stream. */
export async function servePull(registry: RegistryService, request: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply): Promise<void> {
  const q = request.query;
  const fromImage = qString(q, 'fromImage') ?? '';
  const tag = qString(q, 'tag');
  const platformStr = qString(q, 'platform');
  const platform = platformStr !== undefined && platformStr !== '' ? parsePlatform(platformStr) : undefined;
  const auth = decodeAuthHeader(request.headers['x-registry-auth']);
  const stream = new LazyStream(reply);
  try {
    await registry.pull(fromImage, tag, auth, platform, stream.emit);
  } catch (e) {
    if (!stream.started) throw e;
    request.log.info({ err: errorMessage(e), image: fromImage }, 'pull failed');
    stream.fail(e);
  }
  stream.end();
}

/** POST /images/{name}/push?tag=: the registry's push as a JSON stream. Failures after the first line are in-stream. */
export async function servePush(registry: RegistryService, request: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply, name: string): Promise<void> {
  const q = request.query;
  const job = registry.preparePush(name, qString(q, 'tag'));
  const auth = decodeAuthHeader(request.headers['x-registry-auth']);
  const stream = new LazyStream(reply);
  try {
    await job.run(auth, stream.emit);
  } catch (e) {
    request.log.info({ err: errorMessage(e), image: name }, 'push failed');
    stream.fail(e);
  }
  stream.end();
}

/** POST /auth, GET /distribution/{name}/json, GET /images/search. */
export async function registryRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { registry } = services;

  app.post('/auth', async (request) => {
    if (request.body === undefined || request.body === null) throw new InvalidParameterError('missing authentication body');
    return registry.login(toAuthConfig(request.body));
  });

  app.get('/distribution/*', async (request) => {
    const rest = (request.params as { '*': string })['*'];
    if (!rest.endsWith('/json')) throw new NotFoundError('page not found');
    return registry.inspect(rest.slice(0, -'/json'.length), decodeAuthHeader(request.headers['x-registry-auth']));
  });

  app.get<{ Querystring: Query }>('/images/search', async (request) => {
    const q = request.query;
    return registry.search(qString(q, 'term') ?? '', qInt(q, 'limit'), qString(q, 'filters'), decodeAuthHeader(request.headers['x-registry-auth']));
  });
}
