import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, fsyncSync, openSync, closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';

/** A digest that does not match what was written (corrupt or substituted content). */
export class DigestMismatchError extends Error {}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

/**
 * Content-addressed blobs under <root>/blobs/sha256/<hex>: written to a temp file while hashing, then
 * renamed into place, so a blob path exists only with complete, verified content.
 */
export class ContentStore {
  readonly dir: string;
  private readonly tmpDir: string;

  constructor(dataRoot: string) {
    this.dir = join(dataRoot, 'blobs', 'sha256');
    this.tmpDir = join(dataRoot, 'blobs', 'tmp');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
  }

  /** Removes temp files a crash left behind. */
  cleanTemp(): number {
    let n = 0;
    for (const f of readdirSync(this.tmpDir)) {
      rmSync(join(this.tmpDir, f), { recursive: true, force: true });
      n++;
    }
    return n;
  }

  path(digest: string): string {
    if (!isDigest(digest)) throw new Error(`invalid digest ${JSON.stringify(digest)}`);
    return join(this.dir, digest.slice('sha256:'.length));
  }

  has(digest: string): boolean {
    return isDigest(digest) && existsSync(this.path(digest));
  }

  size(digest: string): number {
    return statSync(this.path(digest)).size;
  }

  read(digest: string): Buffer {
    return readFileSync(this.path(digest));
  }

  /** `highWaterMark`: the read size (Node's default is 64 KiB; layer extraction reads 1 MiB at a time). */
  createReadStream(digest: string, highWaterMark?: number): Readable {
    return createReadStream(this.path(digest), highWaterMark === undefined ? undefined : { highWaterMark });
  }

  /** A fresh temp path on the same filesystem (for callers that stage files then adopt them). */
  tempPath(): string {
    return join(this.tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /** Stores bytes; verifies `expected` when given. */
  put(data: Buffer, expected?: string): BlobInfo {
    const digest = sha256Digest(data);
    if (expected !== undefined && expected !== digest) {
      throw new DigestMismatchError(`digest mismatch: expected ${expected}, got ${digest}`);
    }
    if (!this.has(digest)) {
      const tmp = this.tempPath();
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeFileSync(fd, data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path(digest));
    }
    return { digest, size: data.length };
  }

  /** Streams into the store, hashing on the way; a mismatch with `expected` leaves nothing behind. */
  async write(source: Readable, expected?: string): Promise<BlobInfo> {
    const tmp = this.tempPath();
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(source, tap, createWriteStream(tmp, { mode: 0o600 }));
      const digest = `sha256:${hash.digest('hex')}`;
      if (expected !== undefined && expected !== digest) {
        throw new DigestMismatchError(`digest mismatch: expected ${expected}, got ${digest}`);
      }
      return this.adopt(tmp, digest, size);
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** Moves an already verified temp file (from tempPath()) into place under its digest. */
  adopt(tmp: string, digest: string, size: number): BlobInfo {
    if (this.has(digest)) rmSync(tmp, { force: true });
    else renameSync(tmp, this.path(digest));
    return { digest, size };
  }

  delete(digest: string): void {
    if (isDigest(digest)) rmSync(this.path(digest), { force: true });
  }

  /** Every stored digest (for start-up garbage collection). */
  list(): string[] {
    return readdirSync(this.dir)
      .filter((f) => /^[a-f0-9]{64}$/.test(f))
      .map((f) => `sha256:${f}`);
  }
}
