import { renameSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageService } from '../images/image-service.js';
import type { Logger } from '../util/logger.js';
import type { Credentials } from './auth-config.js';
import type { RegistryAuth } from './auth.js';
import type { BlobSources } from './blob-sources.js';
import { RepositoryClient } from './client.js';
import type { BlobDownloader } from './downloads.js';
import { RegistryConnectError } from './errors.js';
import type { Endpoint, RegistryHosts } from './hosts.js';
import type { Limiter } from './limiter.js';

/** One line of a progress stream (dockerd's JSONMessage). */
export type ProgressMessage = Record<string, unknown>;
export type Emit = (m: ProgressMessage) => void;

/** What pull and push share: the image store, the registry plumbing and the daemon-wide limits. */
export interface RegistryContext {
  images: ImageService;
  hosts: RegistryHosts;
  auth: RegistryAuth;
  downloader: BlobDownloader;
  uploads: Limiter;
  sources: BlobSources;
  log: Logger;
  /** Blobs up to this size are uploaded with one PUT; bigger ones in PATCH chunks of `chunkSize`. */
  monolithicMax: number;
  chunkSize: number;
  /** Blobs a pull in progress relies on (never stashed away by another pull's clean-up). */
  blobUse: Map<string, number>;
  /** Per registry, the origin that answered last (an insecure registry's plain-HTTP endpoint is then tried first). */
  preferred: Map<string, string>;
}

export function useBlob(ctx: RegistryContext, digest: string): void {
  ctx.blobUse.set(digest, (ctx.blobUse.get(digest) ?? 0) + 1);
}

export function unuseBlob(ctx: RegistryContext, digest: string): void {
  const n = (ctx.blobUse.get(digest) ?? 1) - 1;
  if (n <= 0) ctx.blobUse.delete(digest);
  else ctx.blobUse.set(digest, n);
}

/**
 * After a failed pull: a verified blob no layer was made from goes back to the partial-download directory, so it
 * is invisible in the content store yet a retry finds it complete.
 */
export function stashBlob(ctx: RegistryContext, digest: string): void {
  const content = ctx.images.content;
  if (!content.has(digest) || ctx.blobUse.has(digest) || ctx.images.layers.layerUsersOfBlob(digest) > 0) return;
  try {
    renameSync(content.path(digest), join(ctx.downloader.partialDir, digest.slice('sha256:'.length)));
  } catch (e) {
    ctx.log.warn({ digest, err: (e as Error).message }, 'could not move an unused blob aside; removing it');
    content.delete(digest);
  }
}

/**
 * Connects to the first endpoint that answers: mirrors and the HTTPS attempt of an insecure registry fall through
 * to the next endpoint; `probe` runs against each candidate (mirrors fall through on any of its errors).
 */
export async function connectRepository<T>(
  ctx: RegistryContext,
  endpoints: Endpoint[],
  path: string,
  creds: Credentials,
  actions: readonly string[],
  probe: (client: RepositoryClient) => Promise<T>,
): Promise<{ client: RepositoryClient; result: T }> {
  let lastErr: unknown;
  const pref = ctx.preferred.get(endpoints[0]?.registry ?? '');
  const j = endpoints.findIndex((e) => !e.mirror && e.origin === pref);
  if (j > 0) endpoints = [...endpoints.slice(0, j).filter((e) => e.mirror), endpoints[j] as Endpoint, ...endpoints.filter((e, k) => k !== j && !(k < j && e.mirror))];
  for (let i = 0; i < endpoints.length; i++) {
    const ep = endpoints[i] as Endpoint;
    const last = i === endpoints.length - 1;
    const client = new RepositoryClient(ep, path, ctx.auth, creds, actions, ctx.log);
    try {
      await ctx.auth.ping(ep);
      const result = await probe(client);
      if (!ep.mirror) ctx.preferred.set(ep.registry, ep.origin);
      return { client, result };
    } catch (e) {
      lastErr = e;
      if (last) break;
      if (ep.mirror || e instanceof RegistryConnectError) {
        ctx.log.info({ endpoint: ep.origin, err: (e as Error).message }, 'registry endpoint failed; trying the next one');
        ctx.auth.forgetPing(ep);
        continue;
      }
      throw e;
    }
  }
  throw lastErr;
}

/** 12-hex short form used as progress ids. */
export function shortDigest(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}
