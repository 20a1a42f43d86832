import { dirname, join } from 'node:path';
import type { Dispatcher } from 'undici';
import { request } from './http.js';
import type { DaemonConfig } from '../config.js';
import { BerthError, InvalidParameterError, NotImplementedError, UnauthorizedError } from '../errors.js';
import type { ImageService } from '../images/image-service.js';
import { familiarName, parseReference, withDefaultTag, type ImageReference } from '../images/reference.js';
import { Filters } from '../util/filters.js';
import type { Logger } from '../util/logger.js';
import { credentialsOf, type AuthConfig } from './auth-config.js';
import { RegistryAuth, USER_AGENT } from './auth.js';
import { BlobSources } from './blob-sources.js';
import { MAX_LISTING_BODY_BYTES, readAtMost, sizeText } from './body.js';
import { RepositoryClient } from './client.js';
import { connectRepository, type Emit, type RegistryContext } from './context.js';
import { BlobDownloader } from './downloads.js';
import { connectError, RegistryConnectError, RegistryError } from './errors.js';
import { HUB_INDEX_SERVER, RegistryHosts, type Endpoint } from './hosts.js';
import { Limiter } from './limiter.js';
import { parseManifest } from './manifest.js';
import type { Platform } from './platform.js';
import { assertPullable, finalStatus, pullResolved, resolveImage } from './pull.js';
import { pushRepository, tagsToPush } from './push.js';

export interface RegistryServiceOptions {
  dataRoot: string;
  mirrors: readonly string[];
  insecureRegistries: readonly string[];
  /** certs.d directory (default: next to daemon.json). */
  certsDir: string;
  maxConcurrentDownloads: number;
  maxConcurrentUploads: number;
  monolithicMax?: number;
  chunkSize?: number;
  retryBackoffMs?: number;
}

export interface SearchResult {
  star_count: number;
  is_official: boolean;
  name: string;
  is_automated: boolean;
  description: string;
}

/** daemon.json → service options; certs.d sits beside the config file (/etc/berth/certs.d). */
export function registryOptionsFrom(config: DaemonConfig): RegistryServiceOptions {
  return {
    dataRoot: config.dataRoot,
    mirrors: config.registryMirrors,
    insecureRegistries: config.insecureRegistries,
    certsDir: join(dirname(config.configFile), 'certs.d'),
    maxConcurrentDownloads: config.maxConcurrentDownloads,
    maxConcurrentUploads: config.maxConcurrentUploads,
  };
}

/** Normalises a login server address: Docker Hub aliases → docker.io, else host[:port]. */
export function serverToDomain(server: string | undefined): string {
  const s = (server ?? '').trim();
  if (s === '' || s === HUB_INDEX_SERVER) return 'docker.io';
  const host = s.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  if (['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'].includes(host)) return 'docker.io';
  return host;
}

/**
 * Pull, push, login, distribution inspect and search against registries speaking the distribution API, feeding
 * the images subsystem (content store, layer store, image records).
 */
export class RegistryService {
  readonly ctx: RegistryContext;
  private readonly log: Logger;
  private readonly downloads: Limiter;
  /** Host tables replaced by a reload: pulls in flight may still use them; closed with the service. */
  private readonly retiredHosts: RegistryHosts[] = [];

  constructor(images: ImageService, opts: RegistryServiceOptions, log: Logger) {
    this.log = log.child({ sub: 'registry' });
    const hosts = new RegistryHosts({ mirrors: opts.mirrors, insecureRegistries: opts.insecureRegistries, certsDir: opts.certsDir });
    this.downloads = new Limiter(opts.maxConcurrentDownloads);
    const downloader = new BlobDownloader(
      images.content,
      join(opts.dataRoot, 'registry', 'partial'),
      this.downloads,
      this.log,
      opts.retryBackoffMs !== undefined ? { backoffMs: opts.retryBackoffMs } : {},
    );
    this.ctx = {
      images,
      hosts,
      auth: new RegistryAuth(this.log),
      downloader,
      uploads: new Limiter(opts.maxConcurrentUploads),
      sources: new BlobSources(join(opts.dataRoot, 'registry', 'blob-sources.json'), this.log),
      log: this.log,
      monolithicMax: opts.monolithicMax ?? 64 * 1024 * 1024,
      chunkSize: opts.chunkSize ?? 32 * 1024 * 1024,
      blobUse: new Map(),
      preferred: new Map(),
    };
  }

  /**
   * POST /images/create?fromImage=: everything up to the manifest happens before `begin` is called, so an unknown
   * tag or an unreachable registry is a plain HTTP error; progress follows through `emit`.
   */
  async pull(refStr: string, tag: string | undefined, auth: AuthConfig, platform: Platform | undefined, emit: Emit): Promise<void> {
    let ref = parseReference(refStr);
    if (tag !== undefined && tag !== '') {
      if (/^sha256:/.test(tag)) ref = { ...ref, digest: tag };
      else ref = { ...ref, tag };
    }
    assertPullable(ref);
    if (ref.tag === undefined && ref.digest === undefined) {
      await this.pullAllTags(ref, auth, platform, emit);
      return;
    }
    const resolved = await resolveImage(this.ctx, ref, auth, platform);
    const { upToDate } = await pullResolved(this.ctx, ref, resolved, platform, emit);
    finalStatus(ref, resolved.digest, upToDate, emit);
    this.ctx.images.events.publish('image', 'pull', refName(ref), { name: refName(ref) });
  }

  private async pullAllTags(repo: ImageReference, auth: AuthConfig, platform: Platform | undefined, emit: Emit): Promise<void> {
    const { client, result: tags } = await connectRepository(this.ctx, this.ctx.hosts.endpoints(repo.domain), repo.path, credentialsOf(auth), ['pull'], (c) => c.listTags());
    void client;
    if (tags.length === 0) throw new BerthError(`no tags found in ${familiarName(repo)}`);
    let anyNew = false;
    for (const t of tags.sort()) {
      const ref = { ...repo, tag: t };
      const resolved = await resolveImage(this.ctx, ref, auth, platform);
      const { upToDate } = await pullResolved(this.ctx, ref, resolved, platform, emit);
      emit({ status: `Digest: ${resolved.digest}` });
      anyNew ||= !upToDate;
      this.ctx.images.events.publish('image', 'pull', refName(ref), { name: refName(ref) });
    }
    const name = familiarName(repo);
    emit({ status: anyNew ? `Status: Downloaded newer image for ${name}` : `Status: Image is up to date for ${name}` });
  }

  /** Checks the local tags (404 before any output), then streams the push. */
  preparePush(name: string, tag: string | undefined): { run: (auth: AuthConfig, emit: Emit) => Promise<void> } {
    const { repo, tags } = tagsToPush(this.ctx, name, tag);
    return { run: (auth, emit) => pushRepository(this.ctx, repo, tags, auth, emit) };
  }

  /** POST /auth: validates the credentials against the registry; returns an identity token when it issues one. */
  async login(auth: AuthConfig): Promise<{ IdentityToken: string; Status: string }> {
    const domain = serverToDomain(auth.serveraddress);
    const creds = credentialsOf(auth);
    const endpoints = this.ctx.hosts.endpoints(domain, true);
    let lastErr: unknown;
    for (let i = 0; i < endpoints.length; i++) {
      const ep = endpoints[i] as Endpoint;
      try {
        return await this.loginTo(ep, creds);
      } catch (e) {
        lastErr = e;
        if (!(e instanceof RegistryConnectError) || i === endpoints.length - 1) break;
        this.ctx.auth.forgetPing(ep);
      }
    }
    if (lastErr instanceof RegistryError) throw new UnauthorizedError(lastErr.message, { cause: lastErr });
    throw lastErr;
  }

  private async loginTo(ep: Endpoint, creds: ReturnType<typeof credentialsOf>): Promise<{ IdentityToken: string; Status: string }> {
    const challenges = await this.ctx.auth.ping(ep, true);
    const v2 = `${ep.origin}/v2/`;
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    let authorization: string | undefined;
    let identityToken = '';
    if (bearer && bearer.params.realm) {
      try {
        const t = await this.ctx.auth.fetchToken(ep, bearer, creds, [], true);
        authorization = `Bearer ${t.token}`;
        identityToken = t.refreshToken ?? '';
      } catch (e) {
        if (e instanceof RegistryError) throw new UnauthorizedError(`Get "${v2}": ${e.message}`, { cause: e });
        throw e;
      }
    } else if (challenges.some((c) => c.scheme === 'basic')) {
      authorization = await this.ctx.auth.authorization(ep, creds, []);
      if (authorization === undefined) throw new UnauthorizedError(`Get "${v2}": no basic auth credentials`);
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(v2, { method: 'GET', dispatcher: ep.dispatcher, headers: { 'user-agent': USER_AGENT, ...(authorization ? { authorization } : {}) } });
    } catch (e) {
      throw connectError('GET', v2, e);
    }
    await res.body.dump();
    if (res.statusCode !== 200) {
      throw new UnauthorizedError(`login attempt to ${v2} failed with status: ${res.statusCode} ${res.statusCode === 401 ? 'Unauthorized' : ''}`.trim());
    }
    return { IdentityToken: identityToken, Status: 'Login Succeeded' };
  }

  /** GET /distribution/{name}/json */
  async inspect(name: string, auth: AuthConfig): Promise<Record<string, unknown>> {
    let ref: ImageReference;
    try {
      ref = withDefaultTag(parseReference(name));
    } catch (e) {
      if (/^(?:sha256:)?[a-f0-9]{64}$/.test(name)) throw new BerthError('no manifest found for full image ID');
      throw e;
    }
    const reference = ref.digest ?? (ref.tag as string);
    const { client, result } = await connectRepository(this.ctx, this.ctx.hosts.endpoints(ref.domain), ref.path, credentialsOf(auth), ['pull'], (c) =>
      c.getManifest(reference),
    ).catch((e: unknown) => {
      if (e instanceof RegistryError && (e.has('MANIFEST_UNKNOWN') || e.has('NAME_UNKNOWN') || e.status === 404)) {
        throw new BerthError(e.message, { cause: e });
      }
      throw e;
    });
    const m = parseManifest(result.bytes, result.contentType);
    const platforms: Record<string, unknown>[] = [];
    if (m.kind === 'index') {
      for (const d of m.manifests) {
        if (d.platform) platforms.push({ architecture: d.platform.architecture, os: d.platform.os, ...(d.platform.variant ? { variant: d.platform.variant } : {}) });
      }
    } else {
      try {
        const cfg = JSON.parse((await client.getBlobBuffer(m.config.digest, 8 * 1024 * 1024)).toString('utf8')) as Record<string, unknown>;
        if (cfg.os || cfg.architecture) {
          platforms.push({
            architecture: String(cfg.architecture ?? ''),
            os: String(cfg.os ?? ''),
            ...(typeof cfg.variant === 'string' ? { variant: cfg.variant } : {}),
          });
        }
      } catch (e) {
        this.log.debug({ err: (e as Error).message }, 'distribution inspect could not read the config');
      }
    }
    return {
      Descriptor: { mediaType: m.mediaType, digest: result.digest, size: result.bytes.length },
      Platforms: platforms,
    };
  }

  /** GET /images/search: the registry's v1 search API (Docker Hub's index); a clear error where there is none. */
  async search(term: string, limit: number | undefined, filters: string | undefined, auth: AuthConfig): Promise<SearchResult[]> {
    if (term === '') throw new InvalidParameterError('term is required');
    const f = Filters.parse(filters, ['is-automated', 'is-official', 'stars']);
    const n = limit ?? 25;
    if (n < 1 || n > 100) throw new InvalidParameterError(`limit ${n} is outside the range of [1, 100]`);
    let domain = 'docker.io';
    let q = term;
    const i = term.indexOf('/');
    if (i > 0) {
      const first = term.slice(0, i);
      if (first.includes('.') || first.includes(':') || first === 'localhost') {
        domain = first;
        q = term.slice(i + 1);
      }
    }
    const origins = domain === 'docker.io' ? ['https://index.docker.io'] : this.ctx.hosts.endpoints(domain, true).map((e) => e.origin);
    const creds = credentialsOf(auth);
    let lastErr: unknown;
    for (const origin of origins) {
      const url = `${origin}/v1/search?q=${encodeURIComponent(q)}&n=${n}`;
      const insecure = origin.startsWith('http:') || this.ctx.hosts.isInsecure(new URL(origin).host);
      const dispatcher = this.ctx.hosts.agentFor(new URL(origin).host, insecure);
      const headers: Record<string, string> = { 'user-agent': USER_AGENT };
      if (creds.kind === 'basic') headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method: 'GET', dispatcher, headers });
      } catch (e) {
        lastErr = connectError('GET', url, e);
        continue;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        if (res.statusCode === 404) {
          throw new NotImplementedError(`Unexpected status code 404: the registry at ${origin} does not offer the v1 search API (GET /v1/search)`);
        }
        throw new BerthError(`Unexpected status code ${res.statusCode}`);
      }
      const { bytes, complete } = await readAtMost(res.body, MAX_LISTING_BODY_BYTES);
      if (!complete) throw new BerthError(`search results from ${origin} are larger than ${sizeText(MAX_LISTING_BODY_BYTES)}`);
      let doc: { results?: unknown };
      try {
        doc = JSON.parse(bytes.toString('utf8')) as { results?: unknown };
      } catch {
        throw new BerthError(`invalid search results from ${origin}`);
      }
      const results = (Array.isArray(doc.results) ? doc.results : []) as Record<string, unknown>[];
      const stars = f.has('stars') ? Number(f.get('stars')[0]) : undefined;
      if (stars !== undefined && Number.isNaN(stars)) throw new InvalidParameterError(`invalid filter 'stars=${f.get('stars')[0]}'`);
      const official = f.bool('is-official');
      const automated = f.bool('is-automated');
      return results
        .map((r) => ({
          star_count: Number(r.star_count ?? 0),
          is_official: r.is_official === true,
          name: String(r.name ?? ''),
          is_automated: r.is_automated === true,
          description: String(r.description ?? ''),
        }))
        .filter((r) => (stars === undefined || r.star_count >= stars) && (official === undefined || r.is_official === official) && (automated === undefined || r.is_automated === automated))
        .slice(0, n);
    }
    throw lastErr;
  }

  /** SIGHUP reload: new mirrors and insecure registries for the next pulls, new concurrency limits at once. */
  reconfigure(opts: RegistryServiceOptions): void {
    this.retiredHosts.push(this.ctx.hosts);
    this.ctx.hosts = new RegistryHosts({ mirrors: opts.mirrors, insecureRegistries: opts.insecureRegistries, certsDir: opts.certsDir });
    this.ctx.preferred.clear();
    this.downloads.setLimit(opts.maxConcurrentDownloads);
    this.ctx.uploads.setLimit(opts.maxConcurrentUploads);
  }

  async close(): Promise<void> {
    this.ctx.sources.flush();
    await Promise.all([this.ctx.hosts, ...this.retiredHosts].map((h) => h.close()));
  }
}

/** The name events carry: familiar name with tag or digest. */
function refName(ref: ImageReference): string {
  const n = familiarName(ref);
  return ref.digest !== undefined ? `${n}@${ref.digest}` : `${n}:${ref.tag ?? 'latest'}`;
}

export { RepositoryClient };
