import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { beginStream, writeJsonLine } from '../streaming.js';
import { type Query, qBool, qInt, qString, qStrings } from '../query.js';
import { effectiveVersion, versionAtLeast } from '../api-version.js';
import { BerthError, InvalidParameterError, NotImplementedError, errorMessage } from '../../errors.js';
import { BuildStepError, type BuildOptions } from '../../build/builder.js';
import { toAuthConfig, type AuthConfig } from '../../registry/auth-config.js';
import { untilNano } from '../../containers/container-ops.js';
import { Filters } from '../../util/filters.js';

function jsonParam<T>(q: Query, name: string, what: string, check: (v: unknown) => v is T): T | undefined {
  const s = qString(q, name);
  if (s === undefined || s === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new InvalidParameterError(`error reading ${what}: ${(e as Error).message}`);
  }
  if (!check(v)) throw new InvalidParameterError(`error reading ${what}: unexpected JSON`);
  return v;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** X-Registry-Config: base64url JSON of registry → AuthConfig; undecodable headers are ignored, as dockerd. */
function authConfigs(header: string | string[] | undefined): Record<string, AuthConfig> {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return {};
  try {
    const v: unknown = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    if (!isObject(v)) return {};
    const out: Record<string, AuthConfig> = {};
    for (const [k, a] of Object.entries(v)) out[k] = toAuthConfig(a);
    return out;
  } catch {
    return {};
  }
}

function buildOptions(q: Query, request: FastifyRequest): BuildOptions {
  const args = jsonParam(q, 'buildargs', 'build args', isObject) ?? {};
  const buildArgs = new Map<string, string | null>();
  for (const [k, v] of Object.entries(args)) buildArgs.set(k, typeof v === 'string' ? v : null);
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(jsonParam(q, 'labels', 'labels', isObject) ?? {})) labels[k] = String(v);
  const int = (name: string): number | undefined => {
    const v = qInt(q, name);
    return v === undefined || Number.isNaN(v) ? undefined : v;
  };
  const forceRm = qBool(q, 'forcerm');
  const rmParam = qString(q, 'rm');
  const opt = <K extends keyof BuildOptions>(k: K, v: BuildOptions[K] | undefined): Partial<BuildOptions> => (v === undefined ? {} : { [k]: v });
  const version = qString(q, 'version');
  if (version === '2') {
    throw new NotImplementedError('BuildKit is not supported by this daemon (Builder-Version 1): build with the classic builder (DOCKER_BUILDKIT=0)');
  }
  if (version !== undefined && version !== '' && version !== '1') throw new InvalidParameterError(`invalid version "${version}"`);
  const sec = qStrings(q, 'securityopt');
  if (sec.length > 0) throw new InvalidParameterError('security options are not supported on linux');
  return {
    dockerfile: qString(q, 'dockerfile') ?? '',
    tags: qStrings(q, 't'),
    noCache: qBool(q, 'nocache'),
    rm: forceRm || rmParam === undefined || rmParam === '' ? true : qBool(q, 'rm'),
    forceRm,
    pull: qBool(q, 'pull'),
    buildArgs,
    labels,
    networkMode: qString(q, 'networkmode') ?? '',
    target: qString(q, 'target') ?? '',
    cacheFrom: jsonParam(q, 'cachefrom', 'cache-from', isStringArray) ?? [],
    ...opt('memory', int('memory')),
    ...opt('memorySwap', int('memswap')),
    ...opt('cpuShares', int('cpushares')),
    ...opt('cpuPeriod', int('cpuperiod')),
    ...opt('cpuQuota', int('cpuquota')),
    ...opt('shmSize', int('shmsize')),
    ...opt('cpuSetCpus', qString(q, 'cpusetcpus') || undefined),
    ...opt('cpuSetMems', qString(q, 'cpusetmems') || undefined),
    ...opt('cgroupParent', qString(q, 'cgroupparent') || undefined),
    extraHosts: qStrings(q, 'extrahosts'),
    platform: versionAtLeast(effectiveVersion(request.apiVersion), '1.32') ? (qString(q, 'platform') ?? '') : '',
    remote: qString(q, 'remote') ?? '',
    authConfigs: authConfigs(request.headers['x-registry-config']),
    wantAux: versionAtLeast(effectiveVersion(request.apiVersion), '1.30'),
  };
}

/** Lets the request body run out so the client reads our answer instead of a reset. */
function drainBody(request: FastifyRequest): void {
  request.raw.unpipe();
  if (!request.raw.readableEnded) request.raw.resume();
}

/** dockerd's FormatError: `{"errorDetail":{"code":N,"message":…},"error":…}`. */
function errorLine(e: unknown): Record<string, unknown> {
  const message = errorMessage(e);
  const code = e instanceof BuildStepError ? e.code : undefined;
  return { errorDetail: { ...(code ? { code } : {}), message }, error: message };
}

/** POST /build, POST /build/prune, and BuildKit's /session and /grpc (refused: Builder-Version is 1). */
export async function buildRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { build } = services;

  app.post<{ Querystring: Query }>('/build', { config: { rawBody: true } }, async (request, reply) => {
    const q = request.query;
    let o: BuildOptions;
    try {
      o = buildOptions(q, request);
    } catch (e) {
      drainBody(request);
      throw e;
    }
    const quiet = qBool(q, 'q');
    let res: ServerResponse | undefined;
    const buffered: Record<string, unknown>[] = [];
    const write = (m: Record<string, unknown>): void => {
      res ??= beginStream(reply, 'application/json');
      if (!res.destroyed && !res.writableEnded) writeJsonLine(res, m);
    };
    const emit = (m: Record<string, unknown>): void => {
      if (quiet) buffered.push(m);
      else write(m);
    };
    const ac = new AbortController();
    let finished = false;
    reply.raw.on('close', () => {
      if (!finished) ac.abort();
    });
    let body: PassThrough | undefined;
    if (o.remote === '') {
      body = new PassThrough();
      request.raw.on('error', (e) => body?.destroy(e));
      request.raw.pipe(body);
    } else drainBody(request);
    try {
      const id = await build.build(body, o, emit, ac.signal);
      if (quiet) write({ stream: `${id}\n` });
    } catch (e) {
      drainBody(request);
      const stepError = e instanceof BuildStepError || !(e instanceof BerthError) || e.statusCode >= 500;
      request.log.info({ err: errorMessage(e) }, 'build failed');
      if (quiet && buffered.length > 0) for (const m of buffered) write(m);
      if (!res && !stepError) {
        finished = true;
        throw e;
      }
      write(errorLine(e));
    } finally {
      finished = true;
    }
    res?.end();
  });

  app.post<{ Querystring: Query }>('/build/prune', async (request) => {
    const q = request.query;
    const f = Filters.parse(qString(q, 'filters'), ['until', 'unused-for', 'id', 'parent', 'type', 'description', 'inuse', 'shared', 'private']);
    const until = f.get('until')[0] ?? f.get('unused-for')[0];
    const keep = qString(q, 'keep-storage') || qString(q, 'reserved-space');
    if (keep !== undefined && keep !== '' && !/^\d+$/.test(keep)) {
      throw new InvalidParameterError(`keep-storage is in bytes and expects an integer, got ${keep}`);
    }
    const r = build.prune({ all: qBool(q, 'all'), ...(until ? { untilNano: untilNano(until) } : {}), keepStorage: keep ? Number(keep) : 0 });
    return { CachesDeleted: r.CachesDeleted ?? [], SpaceReclaimed: r.SpaceReclaimed };
  });

  const refuse = async (request: FastifyRequest, _reply: FastifyReply): Promise<never> => {
    drainBody(request);
    throw new NotImplementedError(
      'BuildKit is not supported by this daemon (Builder-Version 1); use the classic builder: DOCKER_BUILDKIT=0 docker build, or compose with the classic builder',
    );
  };
  app.post('/session', { config: { rawBody: true } }, refuse);
  app.post('/grpc', { config: { rawBody: true } }, refuse);
}
