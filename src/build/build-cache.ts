// The classic builder's cache, persisted: a step's key (parent image + the instruction's run config, which for
// COPY/ADD carries the content checksum of the sources) → the image the step produced. Entries whose image is
// gone are dropped when probed; prune removes entries and the dangling images only they kept.

import { createHash } from 'node:crypto';
import type { Db } from '../metadata/database.js';

export interface BuildCacheRow {
  key: string;
  parent: string;
  image_id: string;
  description: string;
  size: number;
  created_nano: bigint;
  last_used_nano: bigint;
  usage_count: number;
}

/** sha256 of a JSON value with object keys sorted (a stable cache key). */
export function stableHash(v: unknown): string {
  const canon = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(canon);
    if (x && typeof x === 'object') {
      const o: Record<string, unknown> = {};
      for (const k of Object.keys(x).sort()) {
        const val = (x as Record<string, unknown>)[k];
        if (val !== undefined) o[k] = canon(val);
      }
      return o;
    }
    return x;
  };
  return createHash('sha256').update(JSON.stringify(canon(v))).digest('hex');
}

export class BuildCacheRepo {
  private readonly getStmt;
  private readonly putStmt;
  private readonly touchStmt;
  private readonly deleteStmt;
  private readonly allStmt;

  constructor(readonly db: Db) {
    this.getStmt = db.prepare<[string], BuildCacheRow>('SELECT * FROM build_cache WHERE key = ? ORDER BY created_nano DESC').safeIntegers(true);
    this.putStmt = db.prepare(
      `INSERT INTO build_cache (key, parent, image_id, description, size, created_nano, last_used_nano, usage_count)
       VALUES (@key, @parent, @image_id, @description, @size, @created_nano, @last_used_nano, 1)
       ON CONFLICT(key, image_id) DO UPDATE SET last_used_nano = excluded.last_used_nano`,
    );
    this.touchStmt = db.prepare('UPDATE build_cache SET last_used_nano = ?, usage_count = usage_count + 1 WHERE key = ? AND image_id = ?');
    this.deleteStmt = db.prepare('DELETE FROM build_cache WHERE key = ? AND image_id = ?');
    this.allStmt = db.prepare<[], BuildCacheRow>('SELECT * FROM build_cache ORDER BY created_nano').safeIntegers(true);
  }

  /** The images recorded for a key, newest first (a --no-cache build adds one beside the older). */
  get(key: string): BuildCacheRow[] {
    return this.getStmt.all(key).map((r) => ({ ...r, size: Number(r.size), usage_count: Number(r.usage_count) }));
  }

  put(row: Omit<BuildCacheRow, 'usage_count'>): void {
    this.putStmt.run(row);
  }

  /** Records the use of cache entries, in one transaction. */
  touchAll(used: readonly [key: string, imageId: string][], nowNano: bigint): void {
    this.db.transaction(() => {
      for (const [key, imageId] of used) this.touchStmt.run(nowNano, key, imageId);
    })();
  }

  delete(key: string, imageId: string): void {
    this.deleteStmt.run(key, imageId);
  }

  all(): BuildCacheRow[] {
    return this.allStmt.all().map((r) => ({ ...r, size: Number(r.size), usage_count: Number(r.usage_count) }));
  }
}
