import type { Db } from './database.js';

/** Containers as JSON records; the UNIQUE name column makes name conflicts atomic. */
export class ContainerRepo<T extends { id: string; name: string }> {
  private readonly insertStmt;
  private readonly updateStmt;
  private readonly deleteStmt;
  private readonly allStmt;

  constructor(private readonly db: Db) {
    this.insertStmt = db.prepare('INSERT INTO containers (id, name, created_nano, record) VALUES (?, ?, ?, ?)');
    this.updateStmt = db.prepare('UPDATE containers SET name = ?, record = ? WHERE id = ?');
    this.deleteStmt = db.prepare('DELETE FROM containers WHERE id = ?');
    this.allStmt = db.prepare<[], { record: string }>('SELECT record FROM containers ORDER BY created_nano');
  }

  /** Returns false when the name is taken. */
  insert(record: T, createdNano: bigint): boolean {
    try {
      this.insertStmt.run(record.id, record.name, createdNano, JSON.stringify(record));
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return false;
      throw e;
    }
  }

  /** Returns false when the (new) name is taken. */
  update(record: T): boolean {
    try {
      this.updateStmt.run(record.name, JSON.stringify(record), record.id);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return false;
      throw e;
    }
  }

  delete(id: string): void {
    this.deleteStmt.run(id);
  }

  all(): T[] {
    return this.allStmt.all().map((r) => JSON.parse(r.record) as T);
  }
}
