// Streams a directory tree reached through open file descriptors as a tar archive (docker cp GET, export,
// commit layers). Every child is looked up through its parent's fd and opened with O_NOFOLLOW, so a tree that
// changes while it is read can never make the walk leave it.

import { closeSync, read, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import { errorMessage } from '../errors.js';
import { nativeAddon } from '../native.js';
import { splitDevNumber } from './resources.js';
import { fdPath, lstatOrUndefined, openChildDir, openRegular } from './confined-root.js';
import { TAR_END, tarHeader, tarPadding, type TarWriteHeader, type TarWriteType } from '../archive/tar-writer.js';

const OPAQUE_XATTR = 'trusted.overlay.opaque';
const CAPABILITY_XATTR = 'security.capability';
const CHUNK = 256 * 1024;

export interface TreeTarOptions {
  /**
   * overlay upper dir → Docker layer: 0/0 character devices become `.wh.<name>` files, opaque directories get
   * a `.wh..wh..opq` member (commit).
   */
  layer?: boolean;
  /** Container paths whose contents are skipped (virtual filesystems: /proc, /sys…); the directory itself is kept. */
  skipContentsOf?: ReadonlySet<string>;
  /** Paths left out entirely (relative to the walked root, no leading slash). */
  exclude?: (relPath: string) => boolean;
  /** Called for entries that vanished or could not be read (they are left out). */
  onSkip?: (path: string, why: string) => void;
}

function tarType(st: Stats): TarWriteType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'character-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  return undefined; // sockets are not archived (as Docker)
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function getXattr(path: string, name: string): Buffer | undefined {
  try {
    return nativeAddon().lgetxattr(path, name);
  } catch {
    return undefined;
  }
}

function mtimeOf(st: Stats): number {
  return Math.floor(st.mtimeMs / 1000);
}

const readAt = promisify(read);

/** Streams one regular file's content from its open fd; exactly `size` bytes (zero-padded if it shrank meanwhile). */
async function* fileContent(fd: number, size: number): AsyncGenerator<Buffer> {
  let left = size;
  while (left > 0) {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, left));
    const { bytesRead } = await readAt(fd, buf, 0, buf.length, null);
    if (bytesRead === 0) {
      yield Buffer.alloc(left);
      break;
    }
    left -= bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

class TreeWalker {
  private readonly links = new Map<string, string>();

  constructor(private readonly o: TreeTarOptions) {}

  /**
   * One entry (and, for a directory, everything below it). `dirFd`/`name` locate it; `archiveName` is its name
   * in the tar ('' for the walked root itself when its children go to the top level); `containerPath` its path.
   */
  async *entry(dirFd: number, name: string, archiveName: string, containerPath: string, relPath: string): AsyncGenerator<Buffer> {
    const path = fdPath(dirFd, name);
    const st = lstatOrUndefined(path);
    if (!st) {
      this.o.onSkip?.(containerPath, 'vanished');
      return;
    }
    if (relPath !== '' && this.o.exclude?.(relPath)) return;
    if (this.o.layer && isWhiteout(st)) {
      const slash = archiveName.lastIndexOf('/');
      const whName = `${archiveName.slice(0, slash + 1)}.wh.${archiveName.slice(slash + 1)}`;
      yield tarHeader({ name: whName, type: 'file', mode: 0o600, uid: st.uid, gid: st.gid, size: 0, mtime: mtimeOf(st) });
      return;
    }
    const type = tarType(st);
    if (!type) return;
    const h: TarWriteHeader = { name: archiveName, type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: mtimeOf(st) };
    if (type !== 'symlink') {
      const cap = getXattr(path, CAPABILITY_XATTR);
      if (cap) h.xattrs = new Map([[CAPABILITY_XATTR, cap]]);
    }
    switch (type) {
      case 'directory': {
        if (archiveName !== '') yield tarHeader({ ...h, name: archiveName.endsWith('/') ? archiveName : `${archiveName}/` });
        if (this.o.skipContentsOf?.has(containerPath)) return;
        let fd: number;
        try {
          fd = openChildDir(dirFd, name);
        } catch (e) {
          this.o.onSkip?.(containerPath, errorMessage(e));
          return;
        }
        try {
          if (this.o.layer && archiveName !== '' && getXattr(fdPath(fd), OPAQUE_XATTR)?.toString() === 'y') {
            yield tarHeader({ name: `${archiveName}/.wh..wh..opq`, type: 'file', mode: st.mode & 0o777, uid: st.uid, gid: st.gid, size: 0, mtime: 0 });
          }
          let children: string[];
          try {
            children = readdirSync(fdPath(fd)).sort();
          } catch (e) {
            this.o.onSkip?.(containerPath, errorMessage(e));
            return;
          }
          for (const child of children) {
            const childArchive = archiveName === '' ? child : `${archiveName.replace(/\/$/, '')}/${child}`;
            const childPath = containerPath === '/' ? `/${child}` : `${containerPath}/${child}`;
            const childRel = relPath === '' ? child : `${relPath}/${child}`;
            yield* this.entry(fd, child, childArchive, childPath, childRel);
          }
        } finally {
          closeSync(fd);
        }
        return;
      }
      case 'symlink': {
        try {
          h.linkname = readlinkSync(path);
        } catch (e) {
          this.o.onSkip?.(containerPath, errorMessage(e));
          return;
        }
        yield tarHeader(h);
        return;
      }
      case 'character-device':
      case 'block-device': {
        const { major, minor } = splitDevNumber(BigInt(st.rdev));
        yield tarHeader({ ...h, devmajor: major, devminor: minor });
        return;
      }
      case 'fifo':
        yield tarHeader(h);
        return;
      case 'file': {
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1) {
          const first = this.links.get(key);
          if (first !== undefined) {
            yield tarHeader({ ...h, type: 'link', linkname: first });
            return;
          }
        }
        // Checked and read through one descriptor (O_PATH + fstat, then reopened): a file swapped for a device node
        // or a symlink after the lstat is never opened, and header and content agree on the size.
        let file: { fd: number; st: Stats } | undefined;
        try {
          file = openRegular(dirFd, name);
        } catch (e) {
          this.o.onSkip?.(containerPath, errorMessage(e));
          return;
        }
        if (!file) {
          this.o.onSkip?.(containerPath, 'no longer a regular file');
          return;
        }
        if (st.nlink > 1) this.links.set(key, archiveName);
        try {
          const f = file.st;
          const size = f.size;
          yield tarHeader({ ...h, mode: f.mode & 0o7777, uid: f.uid, gid: f.gid, mtime: mtimeOf(f), size });
          yield* fileContent(file.fd, size);
          yield tarPadding(size);
        } finally {
          closeSync(file.fd);
        }
        return;
      }
      default:
        return;
    }
  }
}

/**
 * A tar of the entry `name` in the open directory `dirFd`: named `rebase` in the archive (its children become
 * `rebase/child`), or with its children at the top level when `rebase` is ''. Ends with the two zero blocks.
 */
export async function* tarTree(
  dirFd: number,
  name: string,
  rebase: string,
  containerPath: string,
  options: TreeTarOptions = {},
): AsyncGenerator<Buffer> {
  const walker = new TreeWalker(options);
  yield* walker.entry(dirFd, name, rebase, containerPath, '');
  yield TAR_END;
}
