// Reads a small file of a container's root straight from its overlay layer directories, without mounting them:
// the lookup does what overlayfs does (the top-most layer holding a name wins, whiteouts hide, opaque directories
// stop the merge) and what a chroot does with symlinks (followed, absolute ones from the root, `..` stopping at
// it), one component at a time through directory fds. Used for /etc/passwd and /etc/group, which the image and
// the running container control: a symlink never leads to a host file, and only a regular file is ever opened
// (never a device: an endless read), up to a size cap.

import { closeSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { BerthError } from '../errors.js';
import { nativeAddon } from '../native.js';
import { errnoCode, fdPath, lstatOrUndefined, openChildDir, openDirNoFollow, openRegular } from '../util/fd-fs.js';

const MAX_SYMLINKS = 40;
const OPAQUE_XATTR = 'trusted.overlay.opaque';

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function isOpaque(dirFd: number): boolean {
  try {
    return nativeAddon().lgetxattr(fdPath(dirFd), OPAQUE_XATTR)?.toString() === 'y';
  } catch {
    return false;
  }
}

/** One merged directory: its fd in each layer that contributes to it, top first. */
type Merged = number[];

function closeMerged(m: Merged): void {
  for (const fd of m) closeSync(fd);
}

/**
 * The content of the regular file `path` in the merged view of `dirs` (layer directories, top first), or
 * undefined when it does not exist, is not a regular file, or a component on the way is not a directory.
 * Throws when the file is larger than `maxBytes`.
 */
export function readLayeredFile(dirs: readonly string[], path: string, maxBytes: number): Buffer | undefined {
  const roots: Merged = [];
  const stack: Merged[] = [];
  const openRoots = (): Merged => {
    const m: Merged = [];
    for (const d of dirs) {
      try {
        m.push(openDirNoFollow(d));
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') {
          closeMerged(m);
          throw e;
        }
      }
    }
    return m;
  };
  roots.push(...openRoots());
  const current = (): Merged => stack[stack.length - 1] ?? roots;
  const popAll = (): void => {
    for (const m of stack.splice(0)) closeMerged(m);
  };
  try {
    const queue = path.split('/');
    let hops = 0;
    while (queue.length > 0) {
      const c = queue.shift() as string;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        const m = stack.pop();
        if (m) closeMerged(m);
        continue;
      }
      const last = queue.every((q) => q === '' || q === '.');
      const here = current();
      // The top-most layer holding the name decides what it is.
      let at = -1;
      let st: Stats | undefined;
      for (let i = 0; i < here.length; i++) {
        st = lstatOrUndefined(fdPath(here[i] as number, c));
        if (st) {
          at = i;
          break;
        }
      }
      if (at < 0 || !st || isWhiteout(st)) return undefined;
      const layerFd = here[at] as number;
      if (st.isSymbolicLink()) {
        if (++hops > MAX_SYMLINKS) return undefined;
        let target: string;
        try {
          target = readlinkSync(fdPath(layerFd, c));
        } catch (e) {
          if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'EINVAL') return undefined; // changed meanwhile
          throw e;
        }
        if (target.startsWith('/')) popAll();
        queue.unshift(...target.split('/'));
        continue;
      }
      if (last) {
        if (!st.isFile()) return undefined;
        const file = openRegular(layerFd, c);
        if (!file) return undefined;
        try {
          if (file.st.size > maxBytes) throw new BerthError(`${path} in the container is larger than ${maxBytes} bytes`);
          // Sized by the file (one byte more to see its end), grown if it grows meanwhile: a buffer of the limit
          // (4 MiB for /etc/passwd and /etc/group, zero-filled, two per container start) made V8 count 8 MiB of
          // external memory per start and run a full collection every few starts of a busy daemon.
          let buf = Buffer.allocUnsafe(Math.min(maxBytes, file.st.size) + 1);
          let n = 0;
          for (;;) {
            if (n === buf.length) {
              const bigger = Buffer.allocUnsafe(Math.min(maxBytes + 1, buf.length * 2));
              buf.copy(bigger, 0, 0, n);
              buf = bigger;
            }
            const r = readSync(file.fd, buf, n, buf.length - n, null);
            if (r === 0) break;
            n += r;
            if (n > maxBytes) throw new BerthError(`${path} in the container is larger than ${maxBytes} bytes`);
          }
          return buf.subarray(0, n);
        } finally {
          closeSync(file.fd);
        }
      }
      if (!st.isDirectory()) return undefined;
      // The merged directory: this layer's, then lower layers' directories of that name until one hides the rest
      // (a whiteout or non-directory) or is opaque.
      const next: Merged = [];
      try {
        for (let i = at; i < here.length; i++) {
          const fd = here[i] as number;
          const lst = i === at ? st : lstatOrUndefined(fdPath(fd, c));
          if (!lst) continue;
          if (!lst.isDirectory()) break;
          let child: number;
          try {
            child = openChildDir(fd, c);
          } catch (e) {
            // Replaced by a symlink or removed since the lstat (a running container's upper dir): not followed.
            if (errnoCode(e) === 'ELOOP' || errnoCode(e) === 'ENOTDIR' || errnoCode(e) === 'ENOENT') {
              if (i === at) {
                closeMerged(next);
                return undefined;
              }
              break;
            }
            throw e;
          }
          next.push(child);
          if (isOpaque(child)) break;
        }
      } catch (e) {
        closeMerged(next);
        throw e;
      }
      stack.push(next);
    }
    return undefined; // the path named a directory
  } finally {
    popAll();
    closeMerged(roots);
  }
}
