import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../util/logger.js';

const MAX_PER_BLOB = 8;

/**
 * Where blobs are known to live in registries (`registry/repository`), learnt from pulls and pushes, so a push to
 * another repository of the same registry can ask for a cross-repository mount instead of uploading (dockerd's
 * v2 metadata service). Persisted as one small JSON file.
 */
export class BlobSources {
  private readonly map = new Map<string, string[]>();
  private dirty = false;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {
    try {
      const doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      for (const [k, v] of Object.entries(doc)) if (Array.isArray(v)) this.map.set(k, v.filter((x): x is string => typeof x === 'string'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err: (e as Error).message }, 'ignoring an unreadable blob-sources file');
    }
  }

  /** Records that `registry/repo` holds `digest`. */
  add(digest: string, registry: string, repo: string): void {
    const where = `${registry}/${repo}`;
    const list = this.map.get(digest) ?? [];
    if (list[0] === where) return;
    this.map.set(digest, [where, ...list.filter((x) => x !== where)].slice(0, MAX_PER_BLOB));
    this.dirty = true;
  }

  /** Repositories of `registry` other than `exceptRepo` known to hold `digest`. */
  candidates(digest: string, registry: string, exceptRepo: string): string[] {
    const prefix = `${registry}/`;
    return (this.map.get(digest) ?? []).filter((w) => w.startsWith(prefix) && w.slice(prefix.length) !== exceptRepo).map((w) => w.slice(prefix.length));
  }

  forget(digest: string, registry: string, repo: string): void {
    const list = this.map.get(digest);
    if (!list) return;
    this.map.set(digest, list.filter((w) => w !== `${registry}/${repo}`));
    this.dirty = true;
  }

  /** Writes the file (temp + rename) when something changed. */
  flush(): void {
    if (!this.dirty) return;
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.map)));
      renameSync(tmp, this.file);
      this.dirty = false;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'could not save blob sources');
    }
  }
}
