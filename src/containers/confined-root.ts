// Path resolution inside a container's root that can never leave it, even while the container's own processes
// rename directories and plant symlinks. Node has no openat2(RESOLVE_IN_ROOT), so the walk keeps an open file
// descriptor per directory and looks up one component at a time through /proc/self/fd/<fd>/<name>: the magic
// link pins the directory, a single name cannot climb, O_NOFOLLOW refuses a symlink swapped in behind our back,
// and symlinks are read and re-resolved here against the container's root (absolute targets restart at the
// root, `..` stops at it). Mount points inside the container (volumes, binds) are crossed as the container
// sees them when the root is /proc/<pid>/root.

import { closeSync, constants as C, lstatSync, openSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { fdPath, lstatOrUndefined } from '../util/fd-fs.js';
import type { RootfsReader } from '../volumes/copy-up.js';
import { InvalidParameterError, NotFoundError } from '../errors.js';

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
const MAX_SYMLINKS = 40;

export { fdPath, lstatOrUndefined, openChildDir, openRegular, O_PATH } from '../util/fd-fs.js';

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** Where a container path leads: the directory holding it (open), its name there, and its lstat. */
export interface Resolved {
  /** The directory holding the entry (kept open until close()). */
  dirFd: number;
  /** One path component, or '.' when the entry is the directory dirFd itself. */
  name: string;
  /** lstat of the entry; undefined when it does not exist (only the last component may be missing). */
  st: Stats | undefined;
  /** The entry's canonical path inside the container ("/", "/etc/passwd"). */
  containerPath: string;
  /** Host path of the entry through the open directory (valid until close()). */
  readonly hostPath: string;
  close(): void;
}

export class PathOutsideError extends InvalidParameterError {}

/** A container root held open by fd; every lookup stays below it. */
export class ConfinedRoot {
  private closed = false;

  private constructor(readonly rootFd: number) {}

  /** Opens a trusted host directory (a mount point Berth made, or /proc/<pid>/root) as the root. */
  static open(hostDir: string): ConfinedRoot {
    return new ConfinedRoot(openSync(hostDir, C.O_RDONLY | C.O_DIRECTORY));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.rootFd);
  }

  /**
   * Resolves `path` (absolute inside the container; relative is taken from the root) component by component.
   * Symlinks in directory components are always followed inside the root; the last component is followed
   * only when `followFinal`. A missing directory component throws NotFoundError(notFoundMessage).
   */
  resolve(path: string, followFinal: boolean, notFoundMessage = `no such file or directory: ${path}`): Resolved {
    const stack: number[] = [];
    const names: string[] = [];
    const queue = path.split('/');
    let hops = 0;
    const top = (): number => (stack.length > 0 ? (stack[stack.length - 1] as number) : this.rootFd);
    const closeAll = (): void => {
      for (const fd of stack.splice(0)) closeSync(fd);
      names.length = 0;
    };
    const result = (name: string, st: Stats | undefined): Resolved => {
      const dirFd = top();
      // Only the directory holding the entry stays open.
      for (const fd of stack.slice(0, -1)) closeSync(fd);
      const owned = stack.length > 0;
      const rootFd = this.rootFd;
      const containerPath = `/${[...names, ...(name === '.' ? [] : [name])].join('/')}`;
      let open = true;
      return {
        dirFd,
        name,
        st,
        containerPath,
        get hostPath() {
          return fdPath(dirFd, name);
        },
        close() {
          if (open && owned && dirFd !== rootFd) closeSync(dirFd);
          open = false;
        },
      };
    };
    try {
      while (queue.length > 0) {
        const c = queue.shift() as string;
        if (c === '' || c === '.') continue;
        if (c === '..') {
          const fd = stack.pop();
          if (fd !== undefined) {
            closeSync(fd);
            names.pop();
          }
          continue;
        }
        const last = queue.every((q) => q === '' || q === '.');
        const dir = top();
        const p = fdPath(dir, c);
        const st = lstatOrUndefined(p);
        if (!st) {
          if (last) return result(c, undefined);
          throw new NotFoundError(notFoundMessage);
        }
        if (st.isSymbolicLink() && (!last || followFinal)) {
          if (++hops > MAX_SYMLINKS) throw new InvalidParameterError(`too many levels of symbolic links: ${path}`);
          const target = readlinkSync(p);
          if (target.startsWith('/')) closeAll();
          queue.unshift(...target.split('/'));
          continue;
        }
        if (last) return result(c, st);
        if (!st.isDirectory()) throw new NotFoundError(notFoundMessage);
        let fd: number;
        try {
          fd = openSync(p, DIR_FLAGS);
        } catch (e) {
          // Replaced by a symlink (ELOOP) or something else since the lstat: look at it again.
          if (errno(e) === 'ELOOP' || errno(e) === 'ENOTDIR' || errno(e) === 'ENOENT') {
            queue.unshift(c);
            if (++hops > MAX_SYMLINKS) throw new InvalidParameterError(`path keeps changing: ${path}`);
            continue;
          }
          throw e;
        }
        stack.push(fd);
        names.push(c);
      }
      // Ended on the root, on `..` or on a symlink to a directory: the entry is the current directory.
      return result('.', lstatSync(fdPath(top())));
    } catch (e) {
      closeAll();
      throw e;
    }
  }

  /** Opens a directory the resolution found (never through a symlink). */
  openDir(r: Resolved): number {
    return openSync(r.hostPath, DIR_FLAGS);
  }
}

/**
 * A confined root as copy-up reads it: paths resolved inside it (symlinks followed, as dockerd's
 * FollowSymlinkInScope), `hostDir` only names it in messages, `release` ends it.
 */
export function rootfsReader(root: ConfinedRoot, hostDir: string, release: () => void): RootfsReader {
  const resolve = <T>(p: string, use: (r: Resolved) => T): T | undefined => {
    let r: Resolved;
    try {
      r = root.resolve(p, true);
    } catch (e) {
      if (e instanceof NotFoundError) return undefined; // a component on the way is missing or not a directory
      throw e;
    }
    try {
      return use(r);
    } finally {
      r.close();
    }
  };
  return {
    kind: (p) => resolve(p, (r) => (r.st === undefined ? undefined : r.st.isDirectory() ? 'dir' : 'other')),
    openDir: (p) => resolve(p, (r) => (r.st?.isDirectory() ? root.openDir(r) : undefined)),
    describe: (p) => join(hostDir, p),
    release,
  };
}
