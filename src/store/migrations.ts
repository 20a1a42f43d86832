/**
 * Versioned schema migrations, applied in order at start-up inside one transaction each.
 * Append only: never edit a migration that has shipped; add a new one.
 * Versions by subsystem: 1 system, 2 events, 3 images, 4 containers, 5 volumes, 6 networks; then next free number.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'system',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `,
  },
  {
    version: 2,
    name: 'events',
    sql: `
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_nano INTEGER NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX events_time ON events (time_nano);
    `,
  },
  {
    version: 5,
    name: 'volumes',
    sql: `
      CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        labels TEXT,
        options TEXT,
        created_nano INTEGER NOT NULL,
        anonymous INTEGER NOT NULL DEFAULT 0
      );
    `,
  },
];
