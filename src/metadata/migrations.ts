/**
 * Versioned schema migrations, applied in order at start-up inside one transaction each.
 * Append only: never edit a migration that has shipped; add a new one.
 * Versions by subsystem: 1 system, 2 events, 3 images, 4 containers, 5 volumes, 6 networks, 7 build cache; then next
 * free number.
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
    version: 3,
    name: 'images',
    sql: `
      CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT REFERENCES layers (chain_id),
        short_id TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        blob_digest TEXT,
        blob_size INTEGER,
        blob_media_type TEXT,
        created_nano INTEGER NOT NULL
      );
      CREATE INDEX layers_parent ON layers (parent);
      CREATE INDEX layers_blob ON layers (blob_digest);
      CREATE TABLE layer_holds (
        holder TEXT NOT NULL,
        chain_id TEXT NOT NULL REFERENCES layers (chain_id),
        PRIMARY KEY (holder, chain_id)
      );
      CREATE INDEX layer_holds_chain ON layer_holds (chain_id);
      CREATE TABLE images (
        id TEXT PRIMARY KEY,
        chain_id TEXT REFERENCES layers (chain_id),
        parent TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL,
        created_nano INTEGER NOT NULL,
        added_nano INTEGER NOT NULL,
        last_tag_nano INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX images_chain ON images (chain_id);
      CREATE TABLE image_refs (
        ref TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images (id),
        kind TEXT NOT NULL,
        created_nano INTEGER NOT NULL
      );
      CREATE INDEX image_refs_image ON image_refs (image_id);
    `,
  },
  {
    version: 4,
    name: 'containers',
    sql: `
      CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_nano INTEGER NOT NULL,
        record TEXT NOT NULL
      );
      CREATE TABLE execs (
        id TEXT PRIMARY KEY,
        container_id TEXT NOT NULL,
        record TEXT NOT NULL
      );
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
  {
    version: 6,
    name: 'networks',
    sql: `
      CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
      );
      CREATE TABLE network_endpoints (
        network_id TEXT NOT NULL,
        container_id TEXT NOT NULL,
        ip TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (network_id, container_id)
      );
      CREATE UNIQUE INDEX network_endpoints_ip ON network_endpoints (network_id, ip) WHERE ip <> '';
      CREATE TABLE network_sandboxes (
        container_id TEXT PRIMARY KEY,
        body TEXT NOT NULL
      );
    `,
  },
  {
    version: 7,
    name: 'build cache',
    sql: `
      CREATE TABLE build_cache (
        key TEXT NOT NULL,
        parent TEXT NOT NULL,
        image_id TEXT NOT NULL,
        description TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_nano INTEGER NOT NULL,
        last_used_nano INTEGER NOT NULL,
        usage_count INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (key, image_id)
      );
      CREATE INDEX build_cache_image ON build_cache (image_id);
    `,
  },
  {
    version: 8,
    name: 'drop the unused execs table',
    // Execs live in memory only (ExecService), as dockerd's: the table version 4 created was never written.
    sql: `
      DROP TABLE IF EXISTS execs;
    `,
  },
];
