import type { Db } from './database.js';

/** One volume's metadata. Labels and options keep the JSON null / {} distinction dockerd shows. */
export interface VolumeRecord {
  name: string;
  driver: string;
  labels: Record<string, string> | null;
  options: Record<string, string> | null;
  createdNano: bigint;
  anonymous: boolean;
}

interface Row {
  name: string;
  driver: string;
  labels: string | null;
  options: string | null;
  created_nano: bigint;
  anonymous: number | bigint;
}

function parseMap(text: string | null): Record<string, string> | null {
  if (text === null) return null;
  const v: unknown = JSON.parse(text);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) out[k] = String(val);
  return out;
}

function fromRow(r: Row): VolumeRecord {
  return {
    name: r.name,
    driver: r.driver,
    labels: parseMap(r.labels),
    options: parseMap(r.options),
    createdNano: BigInt(r.created_nano),
    anonymous: Number(r.anonymous) !== 0,
  };
}

/** The `volumes` table (migration 5). */
export class VolumeRepo {
  private readonly getStmt;
  private readonly listStmt;
  private readonly insertStmt;
  private readonly deleteStmt;

  constructor(db: Db) {
    this.getStmt = db.prepare<[string], Row>('SELECT * FROM volumes WHERE name = ?').safeIntegers(true);
    this.listStmt = db.prepare<[], Row>('SELECT * FROM volumes ORDER BY name').safeIntegers(true);
    this.insertStmt = db.prepare(
      'INSERT INTO volumes (name, driver, labels, options, created_nano, anonymous) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.deleteStmt = db.prepare('DELETE FROM volumes WHERE name = ?');
  }

  get(name: string): VolumeRecord | undefined {
    const r = this.getStmt.get(name);
    return r ? fromRow(r) : undefined;
  }

  list(): VolumeRecord[] {
    return this.listStmt.all().map(fromRow);
  }

  insert(v: VolumeRecord): void {
    this.insertStmt.run(
      v.name,
      v.driver,
      v.labels === null ? null : JSON.stringify(v.labels),
      v.options === null ? null : JSON.stringify(v.options),
      v.createdNano,
      v.anonymous ? 1 : 0,
    );
  }

  delete(name: string): boolean {
    return this.deleteStmt.run(name).changes > 0;
  }
}
