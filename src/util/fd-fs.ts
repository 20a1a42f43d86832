// File operations relative to open directory descriptors, for trees that someone else (a container, an image)
// controls. Node has no openat(), so a child is named through the magic link /proc/self/fd/<dirfd>/<name>: the
// directory is pinned by the fd, a single name cannot climb out of it, and O_NOFOLLOW (or an O_PATH descriptor
// checked with fstat) refuses a symlink or a device swapped in behind our back.

import { closeSync, constants as C, fstatSync, lstatSync, openSync, type Stats } from 'node:fs';

/** O_PATH (Linux): a descriptor that pins an inode without opening it (no device side effects). */
export const O_PATH = 0o10000000;

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** `/proc/self/fd/<fd>` or `/proc/self/fd/<fd>/<name>` (name is one component, '.' for the directory itself). */
export function fdPath(fd: number, name?: string): string {
  // `/proc/self/fd/<fd>/.` rather than the bare magic link, so lstat and O_NOFOLLOW see the directory itself.
  return name === undefined || name === '.' ? `/proc/self/fd/${fd}/.` : `/proc/self/fd/${fd}/${name}`;
}

export function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** lstat, or undefined when the entry (or a directory on its way) does not exist. */
export function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** Opens a child directory of an open directory without following symlinks (ELOOP/ENOTDIR otherwise). */
export function openChildDir(dirFd: number, name: string): number {
  return openSync(fdPath(dirFd, name), DIR_FLAGS);
}

/** Opens a directory by a trusted host path, refusing a symlink as its last component. */
export function openDirNoFollow(path: string): number {
  return openSync(path, DIR_FLAGS);
}

/**
 * Opens `name` in `dirFd` for reading only if it is a regular file: an O_PATH|O_NOFOLLOW descriptor is taken
 * first and checked with fstat, then reopened through /proc/self/fd, which reaches that same inode whatever
 * is renamed meanwhile. A symlink, device, FIFO or socket is never opened (opening a device can have side
 * effects, and reading one streams host data). Returns the readable fd and its fstat, or undefined when the
 * entry is missing or not a regular file.
 */
export function openRegular(dirFd: number, name: string): { fd: number; st: Stats } | undefined {
  let pathFd: number;
  try {
    pathFd = openSync(fdPath(dirFd, name), O_PATH | C.O_NOFOLLOW);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
  try {
    if (!fstatSync(pathFd).isFile()) return undefined;
    // No O_NOFOLLOW here: the magic link itself must be followed (it names the checked inode, never a path).
    const fd = openSync(`/proc/self/fd/${pathFd}`, C.O_RDONLY);
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      return undefined;
    }
    return { fd, st };
  } finally {
    closeSync(pathFd);
  }
}
