import type { Db } from './database.js';

export interface ImageRow {
  id: string;
  chain_id: string | null;
  parent: string;
  size: number;
  created_nano: bigint;
  added_nano: bigint;
  last_tag_nano: bigint;
}

export interface ImageRefRow {
  ref: string;
  image_id: string;
  kind: 'tag' | 'digest';
  created_nano: bigint;
}

/** Image records (ID = config digest) and the references (tags, digests) that name them. */
export class ImageRepo {
  private readonly getStmt;
  private readonly allStmt;
  private readonly byPrefixStmt;
  private readonly insertStmt;
  private readonly deleteStmt;
  private readonly refsOfStmt;
  private readonly allRefsStmt;
  private readonly getRefStmt;
  private readonly setRefStmt;
  private readonly deleteRefStmt;
  private readonly setTagTimeStmt;
  private readonly childrenStmt;
  private readonly countStmt;

  constructor(readonly db: Db) {
    this.getStmt = db.prepare<[string], ImageRow>('SELECT * FROM images WHERE id = ?').safeIntegers(true);
    this.allStmt = db.prepare<[], ImageRow>('SELECT * FROM images ORDER BY created_nano DESC, id').safeIntegers(true);
    this.byPrefixStmt = db.prepare<[string], { id: string }>("SELECT id FROM images WHERE id >= ? ORDER BY id LIMIT 2");
    this.insertStmt = db.prepare(
      `INSERT INTO images (id, chain_id, parent, size, created_nano, added_nano, last_tag_nano)
       VALUES (@id, @chain_id, @parent, @size, @created_nano, @added_nano, @last_tag_nano)`,
    );
    this.deleteStmt = db.prepare('DELETE FROM images WHERE id = ?');
    this.refsOfStmt = db.prepare<[string], ImageRefRow>('SELECT * FROM image_refs WHERE image_id = ? ORDER BY created_nano, ref').safeIntegers(true);
    this.allRefsStmt = db.prepare<[], ImageRefRow>('SELECT * FROM image_refs ORDER BY created_nano, ref').safeIntegers(true);
    this.getRefStmt = db.prepare<[string], ImageRefRow>('SELECT * FROM image_refs WHERE ref = ?').safeIntegers(true);
    this.setRefStmt = db.prepare(
      `INSERT INTO image_refs (ref, image_id, kind, created_nano) VALUES (?, ?, ?, ?)
       ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id, created_nano = excluded.created_nano`,
    );
    this.deleteRefStmt = db.prepare('DELETE FROM image_refs WHERE ref = ?');
    this.setTagTimeStmt = db.prepare('UPDATE images SET last_tag_nano = ? WHERE id = ?');
    this.childrenStmt = db.prepare<[string], { id: string }>('SELECT id FROM images WHERE parent = ?');
    this.countStmt = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM images');
  }

  get(id: string): ImageRow | undefined {
    return this.getStmt.get(id);
  }

  all(): ImageRow[] {
    return this.allStmt.all();
  }

  count(): number {
    return this.countStmt.get()?.n ?? 0;
  }

  /** IDs starting with `sha256:<prefix>` (at most two: enough to tell unique from ambiguous). */
  byIdPrefix(fullPrefix: string): string[] {
    return this.byPrefixStmt
      .all(fullPrefix)
      .map((r) => r.id)
      .filter((id) => id.startsWith(fullPrefix));
  }

  insert(row: ImageRow): void {
    this.insertStmt.run(row);
  }

  delete(id: string): void {
    this.deleteStmt.run(id);
  }

  refsOf(id: string): ImageRefRow[] {
    return this.refsOfStmt.all(id);
  }

  allRefs(): ImageRefRow[] {
    return this.allRefsStmt.all();
  }

  getRef(ref: string): ImageRefRow | undefined {
    return this.getRefStmt.get(ref);
  }

  setRef(ref: string, imageId: string, kind: 'tag' | 'digest', timeNano: bigint): void {
    this.setRefStmt.run(ref, imageId, kind, timeNano);
  }

  deleteRef(ref: string): void {
    this.deleteRefStmt.run(ref);
  }

  setLastTagTime(id: string, timeNano: bigint): void {
    this.setTagTimeStmt.run(timeNano, id);
  }

  children(id: string): string[] {
    return this.childrenStmt.all(id).map((r) => r.id);
  }
}
