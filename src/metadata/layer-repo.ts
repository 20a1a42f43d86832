import type { Db } from './database.js';

export interface LayerRow {
  chain_id: string;
  diff_id: string;
  parent: string | null;
  short_id: string;
  size: number;
  blob_digest: string | null;
  blob_size: number | null;
  blob_media_type: string | null;
  created_nano: number;
}

/** Extracted layers (by chain ID) and the holders that keep layers alive besides images and child layers. */
export class LayerRepo {
  private readonly getStmt;
  private readonly insertStmt;
  private readonly deleteStmt;
  private readonly allStmt;
  private readonly holdStmt;
  private readonly unholdStmt;
  private readonly unholdAllStmt;
  private readonly holdersLikeStmt;
  private readonly referencedStmt;
  private readonly blobUsersStmt;

  constructor(readonly db: Db) {
    this.getStmt = db.prepare<[string], LayerRow>('SELECT * FROM layers WHERE chain_id = ?').safeIntegers(false);
    this.insertStmt = db.prepare(
      `INSERT INTO layers (chain_id, diff_id, parent, short_id, size, blob_digest, blob_size, blob_media_type, created_nano)
       VALUES (@chain_id, @diff_id, @parent, @short_id, @size, @blob_digest, @blob_size, @blob_media_type, @created_nano)`,
    );
    this.deleteStmt = db.prepare('DELETE FROM layers WHERE chain_id = ?');
    this.allStmt = db.prepare<[], LayerRow>('SELECT * FROM layers');
    this.holdStmt = db.prepare('INSERT OR IGNORE INTO layer_holds (holder, chain_id) VALUES (?, ?)');
    this.unholdStmt = db.prepare('DELETE FROM layer_holds WHERE holder = ? AND chain_id = ?');
    this.unholdAllStmt = db.prepare<[string], { chain_id: string }>('DELETE FROM layer_holds WHERE holder = ? RETURNING chain_id');
    this.holdersLikeStmt = db.prepare<[string], { holder: string }>('SELECT DISTINCT holder FROM layer_holds WHERE holder LIKE ?');
    this.referencedStmt = db.prepare<[string, string, string], { r: number }>(
      `SELECT (EXISTS (SELECT 1 FROM images WHERE chain_id = ?)
            OR EXISTS (SELECT 1 FROM layers WHERE parent = ?)
            OR EXISTS (SELECT 1 FROM layer_holds WHERE chain_id = ?)) AS r`,
    );
    this.blobUsersStmt = db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM layers WHERE blob_digest = ?');
  }

  get(chainId: string): LayerRow | undefined {
    return this.getStmt.get(chainId);
  }

  insert(row: LayerRow): void {
    this.insertStmt.run(row);
  }

  delete(chainId: string): void {
    this.deleteStmt.run(chainId);
  }

  all(): LayerRow[] {
    return this.allStmt.all();
  }

  hold(holder: string, chainId: string): void {
    this.holdStmt.run(holder, chainId);
  }

  unhold(holder: string, chainId: string): void {
    this.unholdStmt.run(holder, chainId);
  }

  /** Drops every hold of a holder; returns the layers it held. */
  unholdAll(holder: string): string[] {
    return this.unholdAllStmt.all(holder).map((r) => r.chain_id);
  }

  holdersLike(pattern: string): string[] {
    return this.holdersLikeStmt.all(pattern).map((r) => r.holder);
  }

  /** Still used by an image, a child layer or a holder. */
  isReferenced(chainId: string): boolean {
    return this.referencedStmt.get(chainId, chainId, chainId)?.r === 1;
  }

  blobUsers(digest: string): number {
    return this.blobUsersStmt.get(digest)?.n ?? 0;
  }
}
