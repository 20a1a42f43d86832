import { once } from 'node:events';
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, type ContentStore } from '../content/content-store.js';
import type { Logger } from '../util/logger.js';
import type { RepositoryClient } from './client.js';
import { isRetryable, RegistryConnectError } from './errors.js';
import { Limiter, sleep } from './limiter.js';
import type { Descriptor } from './manifest.js';

export type DownloadEvent =
  | { kind: 'waiting' }
  | { kind: 'downloading'; current: number; total: number }
  | { kind: 'retrying'; seconds: number; error: string }
  | { kind: 'verifying' }
  | { kind: 'complete' };

export interface DownloaderOptions {
  /** Attempts per blob (dockerd: 5). */
  attempts?: number;
  /** First retry delay; doubles each time. */
  backoffMs?: number;
  /** Partial downloads older than this are removed at start-up. */
  partialMaxAgeMs?: number;
}

interface Inflight {
  promise: Promise<void>;
  listeners: Set<(e: DownloadEvent) => void>;
  last?: DownloadEvent;
}

/**
 * Layer blob downloads into the content store: a daemon-wide limit (max-concurrent-downloads), one download per
 * digest however many pulls want it, retries with exponential backoff that resume from the partial file with
 * Range, and digest + size verification before the blob becomes visible in the content store.
 * Partial files live under <data-root>/registry/partial/<hex> (never in the content store) so an interrupted
 * pull leaves nothing visible and a later pull continues where it stopped.
 */
export class BlobDownloader {
  private readonly inflight = new Map<string, Inflight>();
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly log: Logger;

  constructor(
    private readonly content: ContentStore,
    readonly partialDir: string,
    private readonly limiter: Limiter,
    log: Logger,
    opts: DownloaderOptions = {},
  ) {
    this.attempts = opts.attempts ?? 5;
    this.backoffMs = opts.backoffMs ?? 1000;
    this.log = log.child({ sub: 'registry-download' });
    mkdirSync(partialDir, { recursive: true, mode: 0o700 });
    const maxAge = opts.partialMaxAgeMs ?? 7 * 24 * 3600_000;
    for (const f of readdirSync(partialDir)) {
      const p = join(partialDir, f);
      try {
        if (!/^[a-f0-9]{64}$/.test(f) || Date.now() - statSync(p).mtimeMs > maxAge) rmSync(p, { force: true, recursive: true });
      } catch {
        // raced with something else removing it
      }
    }
  }

  /** Ensures the blob is in the content store, downloading it when needed. */
  async fetch(client: RepositoryClient, desc: Descriptor, onEvent: (e: DownloadEvent) => void): Promise<{ downloaded: boolean }> {
    if (this.content.has(desc.digest)) return { downloaded: false };
    let entry = this.inflight.get(desc.digest);
    if (entry) {
      entry.listeners.add(onEvent);
      if (entry.last) onEvent(entry.last);
      try {
        await entry.promise;
      } finally {
        entry.listeners.delete(onEvent);
      }
      return { downloaded: true };
    }
    const listeners = new Set<(e: DownloadEvent) => void>([onEvent]);
    const created: Inflight = { listeners, promise: Promise.resolve() };
    const emit = (e: DownloadEvent): void => {
      created.last = e;
      for (const l of listeners) l(e);
    };
    created.promise = this.run(client, desc, emit).finally(() => this.inflight.delete(desc.digest));
    entry = created;
    this.inflight.set(desc.digest, entry);
    await entry.promise;
    return { downloaded: true };
  }

  private async run(client: RepositoryClient, desc: Descriptor, emit: (e: DownloadEvent) => void): Promise<void> {
    if (this.limiter.busy) emit({ kind: 'waiting' });
    const release = await this.limiter.acquire();
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.attempt(client, desc, emit);
          return;
        } catch (e) {
          if (!isRetryable(e) || attempt >= this.attempts) throw e;
          const delay = this.backoffMs * 2 ** (attempt - 1);
          this.log.info({ digest: desc.digest, attempt, err: (e as Error).message }, 'blob download failed; retrying');
          emit({ kind: 'retrying', seconds: Math.ceil(delay / 1000), error: (e as Error).message });
          await sleep(delay);
        }
      }
    } finally {
      release();
    }
  }

  private partialPath(digest: string): string {
    return join(this.partialDir, digest.slice('sha256:'.length));
  }

  private async hashExisting(path: string, size: number): Promise<Hash> {
    const hash = createHash('sha256');
    if (size > 0) {
      for await (const c of createReadStream(path, { start: 0, end: size - 1 })) hash.update(c as Buffer);
    }
    return hash;
  }

  private async attempt(client: RepositoryClient, desc: Descriptor, emit: (e: DownloadEvent) => void): Promise<void> {
    const partial = this.partialPath(desc.digest);
    let have = 0;
    try {
      have = statSync(partial).size;
    } catch {
      have = 0;
    }
    if (have > desc.size) {
      truncateSync(partial, 0);
      have = 0;
    }
    let hash = await this.hashExisting(partial, have);
    if (have < desc.size || desc.size === 0) {
      const res = await client.openBlob(desc.digest, have);
      if (res.status === 200 && have > 0) {
        // The registry ignored Range: start over.
        this.log.debug({ digest: desc.digest }, 'registry does not support Range; restarting the download');
        have = 0;
        hash = createHash('sha256');
        truncateSync(partial, 0);
      } else if (have > 0) {
        this.log.info({ digest: desc.digest, offset: have }, 'resuming a partial download');
      }
      let current = have;
      let lastEmit = -1;
      const step = Math.max(64 * 1024, Math.floor(desc.size / 100));
      emit({ kind: 'downloading', current, total: desc.size });
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          current += chunk.length;
          if (current > desc.size) {
            cb(new DigestMismatchError(`filesystem layer verification failed for digest ${desc.digest}: the registry sent more than the ${desc.size} bytes the manifest declares`));
            return;
          }
          hash.update(chunk);
          if (current - lastEmit >= step || current === desc.size) {
            lastEmit = current;
            emit({ kind: 'downloading', current, total: desc.size });
          }
          cb(null, chunk);
        },
      });
      // Positional writes (not O_APPEND): a write of an earlier, failed attempt landing late can only put
      // the same blob bytes at the same offsets.
      const out = createWriteStream(partial, have > 0 ? { flags: 'r+', start: have, mode: 0o600 } : { flags: 'w', mode: 0o600 });
      try {
        await pipeline(res.body, tap, out);
      } catch (e) {
        // The next attempt sizes the partial file: let this stream's pending writes finish first.
        if (!out.closed) await once(out, 'close');
        if (e instanceof DigestMismatchError) rmSync(partial, { force: true });
        throw e;
      }
      if (current !== desc.size) {
        throw new RegistryConnectError(`short read of ${desc.digest}: got ${current} of ${desc.size} bytes`);
      }
    }
    emit({ kind: 'verifying' });
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== desc.digest) {
      rmSync(partial, { force: true });
      throw new DigestMismatchError(`filesystem layer verification failed for digest ${desc.digest}`);
    }
    if (statSync(partial).size !== desc.size) {
      rmSync(partial, { force: true });
      throw new RegistryConnectError(`download of ${desc.digest} left a file of the wrong size; retrying from the start`);
    }
    // On the thread pool: a 50 MB blob's writeback takes long, and a sync fsync would stall every other
    // download and the extraction running meanwhile.
    const fh = await open(partial, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.content.adopt(partial, desc.digest, desc.size);
    emit({ kind: 'complete' });
  }
}
