// The data root is private, as dockerd's is since CVE-2021-41091: other users may traverse the root itself
// (0711, volumes are reached through it) but never into container or layer directories, where a container's
// root user can plant setuid binaries, and never read the database, which holds every container's environment.

import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from './util/logger.js';

/** containers/ and each containers/<id>/ (dockerd: 0710 root:root). */
export const CONTAINER_DIR_MODE = 0o710;
/** layers/ (its <chain>/ directories are 0710 below it). */
export const LAYERS_DIR_MODE = 0o700;
/** berth.db and its -wal/-shm (SQLite gives -wal/-shm the database file's mode). */
export const DATABASE_MODE = 0o600;

function chmodIfDir(path: string, mode: number): void {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st?.isDirectory() && (st.mode & 0o7777) !== mode) chmodSync(path, mode);
}

/** Makes the database file (created empty if missing) and its -wal/-shm owner-only, before SQLite opens it. */
export function securedDatabaseFile(path: string): void {
  if (!existsSync(path)) closeSync(openSync(path, 'a', DATABASE_MODE));
  for (const p of [path, `${path}-wal`, `${path}-shm`]) {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (st?.isFile() && (st.mode & 0o7777) !== DATABASE_MODE) chmodSync(p, DATABASE_MODE);
  }
}

/**
 * Creates containers/ and layers/ with their private modes and corrects the modes an older berthd left
 * (containers/, every containers/<id>/, layers/).
 */
export function secureDataRoot(dataRoot: string, log: Logger): void {
  const containers = join(dataRoot, 'containers');
  mkdirSync(containers, { recursive: true, mode: CONTAINER_DIR_MODE });
  chmodIfDir(containers, CONTAINER_DIR_MODE);
  for (const id of readdirSync(containers)) {
    try {
      chmodIfDir(join(containers, id), CONTAINER_DIR_MODE);
    } catch (e) {
      log.warn({ err: (e as Error).message, id }, 'could not make a container directory private');
    }
  }
  const layers = join(dataRoot, 'layers');
  mkdirSync(layers, { recursive: true, mode: LAYERS_DIR_MODE });
  chmodIfDir(layers, LAYERS_DIR_MODE);
}
