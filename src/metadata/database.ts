import Database from 'better-sqlite3';
import { MIGRATIONS, type Migration } from './migrations.js';
import type { Logger } from '../util/logger.js';
import { securedDatabaseFile } from '../data-root.js';
import { dirname, join } from 'node:path';
import { packageRequire } from '../package-root.js';

export type Db = Database.Database;

let sqliteAddonPath: string | undefined;

/**
 * better-sqlite3's compiled addon, named by its path. Left to itself, better-sqlite3 finds it through the
 * `bindings` package, which walks a dozen candidate directories with path and fs calls: in a daemon start that is
 * much of the path work left once the code is bundled, enough to get Node's path helpers compiled by TurboFan
 * (whose code pages then stay resident in an idle berthd).
 */
function nativeBinding(): string {
  sqliteAddonPath ??= join(dirname(packageRequire.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');
  return sqliteAddonPath;
}

/** Opens berth.db (mode 0600) with WAL and a busy timeout, then brings its schema up to date. */
export function openDatabase(path: string, log: Logger, migrations: readonly Migration[] = MIGRATIONS): Db {
  // It holds every container's environment: owner-only, -wal/-shm included (SQLite copies the file's mode).
  if (path !== ':memory:') securedDatabaseFile(path);
  const db = new Database(path, { nativeBinding: nativeBinding() });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrate(db, log, migrations);
  return db;
}

function migrate(db: Db, log: Logger, migrations: readonly Migration[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (current > known) {
    throw new Error(`berth.db has schema version ${current}, newer than this berthd knows (${known}); refusing to downgrade`);
  }
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
    log.info({ version: m.version, name: m.name }, 'applied migration');
  }
}
