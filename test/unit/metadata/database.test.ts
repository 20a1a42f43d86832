import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../src/metadata/database.js';
import { MIGRATIONS } from '../../../src/metadata/migrations.js';

const silent = pino({ level: 'silent' });

describe('store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-db-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('opens in WAL mode and applies migrations once, in order', () => {
    const path = join(dir, 'a.db');
    const migrations = [
      { version: 1, name: 'one', sql: 'CREATE TABLE a (x INTEGER)' },
      { version: 2, name: 'two', sql: 'ALTER TABLE a ADD COLUMN y TEXT' },
    ];
    const db = openDatabase(path, silent, migrations);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(2);
    db.close();
    const again = openDatabase(path, silent, migrations);
    expect(again.pragma('user_version', { simple: true })).toBe(2);
    again.close();
  });

  it("Berth's migrations leave no execs table (execs live in memory only)", () => {
    const db = openDatabase(join(dir, 'berth.db'), silent, MIGRATIONS);
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
    expect(tables).toContain('containers');
    expect(tables).not.toContain('execs');
    db.close();
  });

  it('refuses a database newer than the code', () => {
    const path = join(dir, 'b.db');
    openDatabase(path, silent, [{ version: 3, name: 'x', sql: 'SELECT 1' }]).close();
    expect(() => openDatabase(path, silent, [{ version: 1, name: 'x', sql: 'SELECT 1' }])).toThrow(/refusing to downgrade/);
  });

  it('rolls a failing migration back entirely', () => {
    const path = join(dir, 'c.db');
    expect(() =>
      openDatabase(path, silent, [{ version: 1, name: 'bad', sql: 'CREATE TABLE t (x); CREATE TABLE t (x);' }]),
    ).toThrow();
    const db = openDatabase(path, silent, [{ version: 1, name: 'good', sql: 'CREATE TABLE t (x)' }]);
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    db.close();
  });
});
