// A container's directory on disk (its OCI bundle): made at create, the vfs root copied into it at start, taken
// away at removal (renamed into a trash dir and deleted in the background). Files only: no container state.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { cp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTAINER_DIR_MODE } from '../data-root.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { containerDir, initLayerOf, sharedInitLayer } from './paths.js';
import { onceUntilFailure } from '../util/once-until-failure.js';

export class ContainerDirs {
  constructor(
    private readonly dataRoot: string,
    private readonly log: Logger,
  ) {}

  dir(id: string): string {
    return containerDir(this.dataRoot, id);
  }

  /** The json-file log of a container. */
  logPath(id: string): string {
    return join(this.dir(id), `${id}-json.log`);
  }

  /** Staged volume subpaths of a running container: outside its directory, so removal never recurses into them. */
  subpathDir(id: string): string {
    return join(this.dataRoot, 'volume-subpaths', id);
  }

  /** Where removed containers' directories wait for their deletion in the background. */
  private trashDir(): string {
    return join(this.dataRoot, 'containers-trash');
  }

  /** The container's init layer (the shared one, or its own when an earlier berthd made one). */
  initLayer(id: string): string {
    return initLayerOf(this.dataRoot, id);
  }

  /** The container directory: the RW layer's upper and work dirs (the init layer is shared). */
  async prepare(id: string): Promise<void> {
    const dir = this.dir(id);
    // Private (as dockerd's): other users must never reach upper/, where container root can plant setuid files.
    await mkdir(dir, { recursive: true, mode: CONTAINER_DIR_MODE });
    // Independent steps side by side.
    await Promise.all([mkdir(join(dir, 'upper'), { mode: 0o755 }), mkdir(join(dir, 'work'), { mode: 0o700 }), this.sharedInitReady()]);
  }

  /**
   * The shared init layer, made (or completed) once per daemon: every entry is created if missing, so a layer
   * half-made by a daemon that died is finished by the next one. Per container this saved 13 file creations at
   * create and 13 deletions at removal.
   */
  private readonly sharedInitReady = onceUntilFailure(() => makeInitLayer(sharedInitLayer(this.dataRoot)));

  /** Undoes prepare() of a create that failed. */
  async removeNow(id: string): Promise<void> {
    await rm(this.dir(id), { recursive: true, force: true });
  }

  /** vfs: the container's root is a full private copy of the image (`imageRoot`, undefined for an empty image). */
  async vfsRootfs(id: string, imageRoot: string | undefined): Promise<string> {
    const target = join(this.dir(id), 'fs');
    if (!existsSync(target)) {
      if (imageRoot) await cp(imageRoot, target, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
      else await mkdir(target, { recursive: true });
    }
    return target;
  }

  /**
   * Takes a removed container's directory away at once (a rename into the trash dir) and deletes it in the
   * background: the record is gone and ids are random, so nothing can reuse it. Leftovers of a daemon that
   * stopped mid-deletion are cleared by emptyTrash().
   */
  async discard(id: string): Promise<void> {
    const trashed = join(this.trashDir(), `${id}-${randomBytes(4).toString('hex')}`);
    try {
      try {
        renameSync(this.dir(id), trashed);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !existsSync(this.dir(id))) throw e;
        mkdirSync(this.trashDir(), { recursive: true, mode: 0o700 });
        renameSync(this.dir(id), trashed);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.log.debug({ err: errorMessage(e), id }, 'cannot move the container directory to the trash: deleting it in place');
      await rm(this.dir(id), { recursive: true, force: true });
      return;
    }
    void rm(trashed, { recursive: true, force: true }).catch((e: unknown) =>
      this.log.warn({ err: errorMessage(e), id }, 'deleting a removed container directory failed'),
    );
  }

  /** Deletes what removals left in the trash dir when the daemon stopped (in the background). */
  emptyTrash(): void {
    let names: string[];
    try {
      names = readdirSync(this.trashDir());
    } catch {
      return;
    }
    for (const n of names) {
      void rm(join(this.trashDir(), n), { recursive: true, force: true }).catch((e: unknown) =>
        this.log.warn({ err: errorMessage(e), path: n }, 'emptying the container trash failed'),
      );
    }
  }
}

/** Docker's init layer: mount-point placeholders (empty files and directories, /etc/mtab a link to /proc/mounts). */
async function makeInitLayer(init: string): Promise<void> {
  const mode = { mode: 0o755 };
  const dir = (p: string): Promise<unknown> => mkdir(join(init, p), { recursive: true, ...mode });
  // 'a': created when missing, never truncated (they are empty) nor replaced under a running container.
  const file = (p: string): Promise<void> => writeFile(join(init, p), '', { flag: 'a', ...mode });
  await dir('.');
  await Promise.all([dir('dev'), dir('proc'), dir('sys'), dir('etc'), file('.dockerenv')]);
  await Promise.all([
    dir('dev/pts'),
    dir('dev/shm'),
    file('dev/console'),
    ...['etc/hosts', 'etc/hostname', 'etc/resolv.conf'].map(file),
    symlink('/proc/mounts', join(init, 'etc/mtab')).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }),
  ]);
}
