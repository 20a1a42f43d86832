import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { request } from './http.js';
import type { Logger } from '../util/logger.js';
import type { Credentials } from './auth-config.js';
import { RegistryAuth, USER_AGENT, repositoryScope } from './auth.js';
import { parseChallenges } from './challenge.js';
import { connectError, registryErrorFrom, RegistryError } from './errors.js';
import type { Endpoint } from './hosts.js';
import { MANIFEST_ACCEPT } from './manifest.js';
import { MAX_ERROR_BODY_BYTES, MAX_LISTING_BODY_BYTES, readAtMost, sizeText } from './body.js';

/** Manifests larger than this are refused (containerd's limit). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface SendOptions {
  headers?: Record<string, string>;
  /** A Buffer is replayed after a 401; a stream factory is called once per attempt. */
  body?: Buffer | string | (() => Readable);
  /** Follow redirects (GET/HEAD of blobs). */
  redirect?: boolean;
}

export interface FetchedManifest {
  bytes: Buffer;
  contentType: string;
  /** sha256 of the bytes, as received. */
  digest: string;
}

export interface BlobResponse {
  status: number;
  body: Readable;
  /** Bytes this response will carry. */
  length: number | undefined;
}

/**
 * The distribution API of one repository on one endpoint, for one identity. Every request carries the
 * authorization for `scopes` (token fetched and cached by RegistryAuth); a 401 with a fresh challenge is answered
 * once more with a new token. Redirects are followed by hand so credentials never leave the registry's origin.
 */
export class RepositoryClient {
  private readonly scopes: string[];

  constructor(
    readonly endpoint: Endpoint,
    /** Repository path inside the registry (library/busybox). */
    readonly path: string,
    private readonly auth: RegistryAuth,
    readonly creds: Credentials,
    actions: readonly string[],
    private readonly log: Logger,
    extraScopes: readonly string[] = [],
  ) {
    this.scopes = [repositoryScope(path, actions), ...extraScopes];
  }

  url(suffix: string): string {
    return `${this.endpoint.origin}/v2/${this.path}${suffix}`;
  }

  /** Adds a scope (cross-repository mounts need pull on the source). */
  addScope(scope: string): void {
    if (!this.scopes.includes(scope)) this.scopes.push(scope);
  }

  async send(method: string, url: string, opts: SendOptions = {}): Promise<Dispatcher.ResponseData> {
    let authz = await this.auth.authorization(this.endpoint, this.creds, this.scopes);
    let current = url;
    let sameOrigin = true;
    let retried401 = false;
    for (let hops = 0; hops < 10; hops++) {
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...opts.headers };
      if (authz && sameOrigin) headers.authorization = authz;
      const body = typeof opts.body === 'function' ? opts.body() : opts.body;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(current, {
          method: method as Dispatcher.HttpMethod,
          headers,
          ...(body !== undefined ? { body } : {}),
          ...(sameOrigin ? { dispatcher: this.endpoint.dispatcher } : {}),
        });
      } catch (e) {
        throw connectError(method, current, e);
      }
      if (res.statusCode === 401 && sameOrigin && !retried401) {
        const challenges = parseChallenges(res.headers['www-authenticate']);
        const bearer = challenges.find((c) => c.scheme === 'bearer');
        if (bearer && bearer.params.scope) for (const s of bearer.params.scope.split(' ')) this.addScope(s);
        let next: string | undefined;
        try {
          next = challenges.length > 0 ? await this.auth.authorization(this.endpoint, this.creds, this.scopes, bearer ?? challenges[0], true) : undefined;
        } catch (e) {
          await res.body.dump();
          throw e;
        }
        // Nothing new to answer the challenge with: the caller reports the registry's 401.
        if (next === undefined || (next === authz && !bearer)) return res;
        await res.body.dump();
        retried401 = true;
        authz = next;
        continue;
      }
      if (opts.redirect && res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
        await res.body.dump();
        const next = new URL(String(res.headers.location), current);
        sameOrigin = next.origin === this.endpoint.origin;
        current = next.toString();
        continue;
      }
      return res;
    }
    throw new RegistryError(0, [], `${method} ${url}: too many redirects`);
  }

  /** Reads an error response into a RegistryError. */
  async fail(res: Dispatcher.ResponseData): Promise<RegistryError> {
    const { bytes } = await readAtMost(res.body, MAX_ERROR_BODY_BYTES).catch(() => ({ bytes: Buffer.alloc(0) }));
    return registryErrorFrom(res.statusCode, statusText(res.statusCode), bytes);
  }

  async getManifest(reference: string): Promise<FetchedManifest> {
    const res = await this.send('GET', this.url(`/manifests/${reference}`), { headers: { accept: MANIFEST_ACCEPT } });
    if (res.statusCode !== 200) throw await this.fail(res);
    const { bytes, complete } = await readAtMost(res.body, MAX_MANIFEST_BYTES);
    if (!complete) throw new RegistryError(200, [], `manifest ${reference} is larger than ${sizeText(MAX_MANIFEST_BYTES)}`);
    return {
      bytes,
      contentType: String(res.headers['content-type'] ?? ''),
      digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    };
  }

  /** HEAD of a manifest: its descriptor, or undefined when the registry does not have it. */
  async headManifest(reference: string): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
    const res = await this.send('HEAD', this.url(`/manifests/${reference}`), { headers: { accept: MANIFEST_ACCEPT } });
    await res.body.dump();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw registryErrorFrom(res.statusCode, statusText(res.statusCode), Buffer.alloc(0));
    return {
      digest: String(res.headers['docker-content-digest'] ?? ''),
      mediaType: String(res.headers['content-type'] ?? ''),
      size: Number(res.headers['content-length'] ?? 0),
    };
  }

  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const res = await this.send('PUT', this.url(`/manifests/${reference}`), { headers: { 'content-type': mediaType }, body: bytes });
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 202) throw await this.fail(res);
    await res.body.dump();
    return String(res.headers['docker-content-digest'] ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  }

  /** A small blob (a config) read whole, verified against its digest. */
  async getBlobBuffer(digest: string, maxBytes: number): Promise<Buffer> {
    const res = await this.send('GET', this.url(`/blobs/${digest}`), { redirect: true });
    if (res.statusCode !== 200) throw await this.fail(res);
    const { bytes, complete } = await readAtMost(res.body, maxBytes);
    if (!complete) throw new RegistryError(200, [], `blob ${digest} is larger than expected (${sizeText(maxBytes)})`);
    return bytes;
  }

  /** Opens a blob for reading from `offset` (Range when > 0: status 206, or 200 when the registry ignores it). */
  async openBlob(digest: string, offset: number): Promise<BlobResponse> {
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await this.send('GET', this.url(`/blobs/${digest}`), { headers, redirect: true });
    if (res.statusCode === 416 && offset > 0) {
      await res.body.dump();
      return this.openBlob(digest, 0);
    }
    if (res.statusCode !== 200 && res.statusCode !== 206) throw await this.fail(res);
    const len = res.headers['content-length'];
    return { status: res.statusCode, body: res.body, length: len !== undefined ? Number(len) : undefined };
  }

  /** HEAD of a blob: its size, or undefined when the repository does not have it. */
  async statBlob(digest: string): Promise<number | undefined> {
    const res = await this.send('HEAD', this.url(`/blobs/${digest}`), { redirect: true });
    await res.body.dump();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw registryErrorFrom(res.statusCode, statusText(res.statusCode), Buffer.alloc(0));
    return Number(res.headers['content-length'] ?? 0);
  }

  /**
   * Starts an upload; with `mount`, asks for a cross-repository mount first. Returns `mounted` when the registry
   * linked the blob (201), else the upload location.
   */
  async startUpload(mount?: { digest: string; from: string }): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const q = mount ? `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}` : '';
    const res = await this.send('POST', this.url(`/blobs/uploads/${q}`), { headers: { 'content-length': '0' }, body: Buffer.alloc(0) });
    if (res.statusCode === 201 && mount) {
      await res.body.dump();
      return { mounted: true };
    }
    if (res.statusCode !== 202) throw await this.fail(res);
    await res.body.dump();
    const loc = res.headers.location;
    if (!loc) throw new RegistryError(res.statusCode, [], 'the registry started an upload without a Location');
    return { mounted: false, location: new URL(String(loc), `${this.endpoint.origin}/`).toString() };
  }

  /** Monolithic upload: one PUT with the whole blob. */
  async putBlob(location: string, digest: string, size: number, body: () => Readable): Promise<void> {
    const u = new URL(location);
    u.searchParams.set('digest', digest);
    const res = await this.send('PUT', u.toString(), {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body,
    });
    if (res.statusCode !== 201 && res.statusCode !== 204) throw await this.fail(res);
    await res.body.dump();
  }

  /** One chunk of a chunked upload (PATCH with Content-Range); returns the next location. */
  async patchChunk(location: string, start: number, length: number, body: () => Readable): Promise<string> {
    const res = await this.send('PATCH', location, {
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(length),
        'content-range': `${start}-${start + length - 1}`,
      },
      body,
    });
    if (res.statusCode !== 202 && res.statusCode !== 204) throw await this.fail(res);
    await res.body.dump();
    const loc = res.headers.location;
    return loc ? new URL(String(loc), `${this.endpoint.origin}/`).toString() : location;
  }

  /** Ends a chunked upload: PUT ?digest= with no body. */
  async finishUpload(location: string, digest: string): Promise<void> {
    const u = new URL(location);
    u.searchParams.set('digest', digest);
    const res = await this.send('PUT', u.toString(), { headers: { 'content-length': '0' }, body: Buffer.alloc(0) });
    if (res.statusCode !== 201 && res.statusCode !== 204) throw await this.fail(res);
    await res.body.dump();
  }

  /** Abandons an upload (best effort). */
  async cancelUpload(location: string): Promise<void> {
    try {
      const res = await this.send('DELETE', location);
      await res.body.dump();
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'cancelling an upload failed');
    }
  }

  /** GET /v2/<name>/tags/list, following Link pagination. */
  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let next: string | undefined = this.url('/tags/list?n=1000');
    for (let pages = 0; next !== undefined && pages < 100; pages++) {
      const res = await this.send('GET', next);
      if (res.statusCode !== 200) throw await this.fail(res);
      const { bytes, complete } = await readAtMost(res.body, MAX_LISTING_BODY_BYTES);
      if (!complete) throw new RegistryError(200, [], `tags list of ${this.path} is larger than ${sizeText(MAX_LISTING_BODY_BYTES)} per page`);
      let doc: { tags?: unknown };
      try {
        doc = JSON.parse(bytes.toString('utf8')) as { tags?: unknown };
      } catch {
        throw new RegistryError(200, [], `invalid tags list from ${this.endpoint.origin}`);
      }
      if (Array.isArray(doc.tags)) for (const t of doc.tags) if (typeof t === 'string') tags.push(t);
      const link = res.headers.link;
      const m = typeof link === 'string' ? /<([^>]+)>;\s*rel="?next"?/.exec(link) : null;
      next = m ? new URL(m[1] as string, `${this.endpoint.origin}/`).toString() : undefined;
    }
    return tags;
  }
}

function statusText(status: number): string {
  const texts: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 416: 'Requested Range Not Satisfiable', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };
  return texts[status] ?? '';
}
