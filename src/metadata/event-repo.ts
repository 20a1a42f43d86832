import type { Db } from './database.js';

/** The persisted ring of events, so `docker events --since` works across restarts. */
export class EventRepo {
  private readonly insertStmt;
  private readonly rangeStmt;
  private readonly trimStmt;

  constructor(db: Db, private readonly keep: number) {
    this.insertStmt = db.prepare('INSERT INTO events (time_nano, body) VALUES (?, ?)');
    this.rangeStmt = db.prepare<[bigint, bigint], { body: string }>(
      'SELECT body FROM events WHERE time_nano >= ? AND time_nano <= ? ORDER BY seq',
    );
    this.trimStmt = db.prepare('DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?');
  }

  append(timeNano: bigint, body: string): void {
    const info = this.insertStmt.run(timeNano, body);
    // Trim now and then rather than on every insert.
    if (Number(info.lastInsertRowid) % 256 === 0) this.trimStmt.run(this.keep);
  }

  range(fromNano: bigint, toNano: bigint): string[] {
    return this.rangeStmt.all(fromNano, toNano).map((r) => r.body);
  }
}
