// A container's directory on disk (its OCI bundle): made at create, the vfs root copied into it at start, taken
// away at removal (renamed into a trash dir and deleted in the background). Files only: no container state.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { cp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTAINER_DIR_MODE } from '../data-root.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { containerDir } from './paths.js';

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

  /** The container directory: RW layer, the init layer with mount-point placeholders, log. */
  async prepare(id: string): Promise<void> {
    const dir = this.dir(id);
    // Private (as dockerd's): other users must never reach upper/, where container root can plant setuid files.
    await mkdir(dir, { recursive: true, mode: CONTAINER_DIR_MODE });
    // Independent steps side by side: a create waits for three thread-pool round trips, not fifteen.
    const init = join(dir, 'init');
    const mode = { mode: 0o755 };
    await Promise.all([
      mkdir(join(dir, 'upper'), mode),
      mkdir(join(dir, 'work'), { recursive: true, mode: 0o700 }),
      // Docker's init layer: placeholders so the bind targets exist without showing up in `docker diff`.
      (async () => {
        await mkdir(init, mode);
        await Promise.all([
          mkdir(join(init, 'dev'), mode).then(() =>
            Promise.all([mkdir(join(init, 'dev/pts'), mode), mkdir(join(init, 'dev/shm'), mode), writeFile(join(init, 'dev/console'), '', mode)]),
          ),
          mkdir(join(init, 'proc'), mode),
          mkdir(join(init, 'sys'), mode),
          writeFile(join(init, '.dockerenv'), '', mode),
          mkdir(join(init, 'etc'), mode).then(() =>
            Promise.all([
              ...['etc/hosts', 'etc/hostname', 'etc/resolv.conf'].map((f) => writeFile(join(init, f), '', mode)),
              symlink('/proc/mounts', join(init, 'etc/mtab')).catch(() => undefined),
            ]),
          ),
        ]);
      })(),
    ]);
  }

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
