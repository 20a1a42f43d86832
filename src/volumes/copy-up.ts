// dockerd's populateVolume / copyExistingContents: the image's content at a VOLUME path is copied into a new
// empty volume. Both trees are hostile: the source comes from an image (symlinks anywhere), and the destination
// may be shared with a running container that renames directories and plants symlinks while we copy. So
// everything is done through directory fds, one name at a time: the source is never followed through a symlink
// (links are copied as links), and the destination is written with O_CREAT|O_EXCL, mkdir and O_NOFOLLOW opens,
// so a swapped-in symlink makes the copy fail instead of writing outside the volume.

import { closeSync, createReadStream, createWriteStream, constants as C, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync, readdirSync, readlinkSync, symlinkSync, lstatSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { errnoCode, fdPath, openChildDir, openDirNoFollow, openRegular } from '../util/fd-fs.js';
import type { Logger } from '../util/logger.js';

/** The image's root filesystem, read-only and confined (symlinks resolved inside it). */
export interface RootfsReader {
  /** What is at `containerPath` with symlinks followed inside the root: 'dir', 'other', or undefined when missing. */
  kind(containerPath: string): 'dir' | 'other' | undefined;
  /** An open directory fd of `containerPath` (symlinks followed inside the root), undefined when not a directory. */
  openDir(containerPath: string): number | undefined;
  /** The path for messages (dockerd names the host path). */
  describe(containerPath: string): string;
  release(): void;
}

interface LinkPlace {
  /** Directory names from the destination root down to the entry's parent. */
  dirs: readonly string[];
  name: string;
}

function secondsOf(ns: bigint): number {
  return Number(ns) / 1e9;
}

/**
 * Copies the tree open as `srcFd` into the directory open as `dstFd`, keeping owners, modes (setuid/setgid/sticky
 * included), symlinks, hard links and times. Sockets, FIFOs and device nodes are skipped (logged).
 */
export async function copyTree(srcFd: number, dstFd: number, log?: Logger): Promise<void> {
  const links = new Map<string, LinkPlace>();

  /** Opens the directory `dirs` below the destination root, one O_NOFOLLOW step at a time. */
  const openDstDir = (dirs: readonly string[]): number => {
    let fd = -1;
    try {
      for (const d of dirs) {
        const next = openChildDir(fd < 0 ? dstFd : fd, d);
        if (fd >= 0) closeSync(fd);
        fd = next;
      }
      return fd < 0 ? openChildDir(dstFd, '.') : fd;
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      throw e;
    }
  };

  const copyDir = async (from: number, to: number, dirs: readonly string[]): Promise<void> => {
    for (const name of readdirSync(fdPath(from)).sort()) {
      const src = fdPath(from, name);
      const dst = fdPath(to, name);
      const st = lstatSync(src, { bigint: true });
      const mode = Number(st.mode & 0o7777n);
      const uid = Number(st.uid);
      const gid = Number(st.gid);
      const atime = secondsOf(st.atimeNs);
      const mtime = secondsOf(st.mtimeNs);
      if (st.isDirectory()) {
        try {
          mkdirSync(dst, 0o700);
        } catch (e) {
          if (errnoCode(e) !== 'EEXIST') throw e;
        }
        // O_NOFOLLOW: a symlink put there since the mkdir fails the copy here.
        const childTo = openChildDir(to, name);
        try {
          const childFrom = openChildDir(from, name);
          try {
            // chown before chmod: chown clears setuid/setgid.
            fchownSync(childTo, uid, gid);
            fchmodSync(childTo, mode);
            await copyDir(childFrom, childTo, [...dirs, name]);
          } finally {
            closeSync(childFrom);
          }
          // Last: creating entries inside a directory changes its mtime.
          futimesSync(childTo, atime, mtime);
        } finally {
          closeSync(childTo);
        }
        continue;
      }
      if (st.isSymbolicLink()) {
        symlinkSync(readlinkSync(src), dst);
        lchownSync(dst, uid, gid);
        lutimesSync(dst, atime, mtime);
        continue;
      }
      if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1n ? links.get(key) : undefined;
        if (first !== undefined) {
          const firstDir = openDstDir(first.dirs);
          try {
            // link(2) never follows the old name: at worst it links what a racer put in the volume.
            linkSync(fdPath(firstDir, first.name), dst);
          } finally {
            closeSync(firstDir);
          }
          continue;
        }
        const source = openRegular(from, name);
        if (!source) continue; // replaced since the lstat (the image is read-only: does not happen)
        try {
          const out = openSync(dst, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
          try {
            await pipeline(createReadStream('', { fd: source.fd, autoClose: false }), createWriteStream('', { fd: out, autoClose: false }));
            fchownSync(out, uid, gid);
            fchmodSync(out, mode);
            futimesSync(out, atime, mtime);
          } finally {
            closeSync(out);
          }
        } finally {
          closeSync(source.fd);
        }
        if (st.nlink > 1n) links.set(key, { dirs, name });
        continue;
      }
      log?.warn({ path: [...dirs, name].join('/') }, 'copy-up skips a special file (socket, fifo or device)');
    }
  };

  await copyDir(srcFd, dstFd, []);
}

/**
 * When the volume directory is empty and the image has a directory at `containerPath` (symlinks resolved inside
 * the image's root, as dockerd's FollowSymlinkInScope), copies its content into the volume and gives the volume
 * root the source's owner and mode. Returns whether anything was copied.
 */
export async function copyUpIfEmpty(volumeDataDir: string, rootfs: () => RootfsReader, containerPath: string, log?: Logger): Promise<boolean> {
  const dst = openDirNoFollow(volumeDataDir);
  try {
    // Checked first: the image's root is only opened (mounted) when there is something to copy into.
    if (readdirSync(fdPath(dst)).length > 0) return false;
    const src = rootfs().openDir(containerPath);
    if (src === undefined) return false;
    try {
      await copyTree(src, dst, log);
      const st = lstatSync(fdPath(src), { bigint: true });
      fchownSync(dst, Number(st.uid), Number(st.gid));
      fchmodSync(dst, Number(st.mode & 0o7777n));
      return true;
    } finally {
      closeSync(src);
    }
  } finally {
    closeSync(dst);
  }
}
