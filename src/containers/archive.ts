// docker cp: HEAD/GET/PUT /containers/{id}/archive over a RootView. Paths are resolved inside the container's
// root the way dockerd does (symlinks in directory components followed, the last component followed only when
// the path ends in `/` or `/.`), but with every step confined to the root (see confined-root.ts).

import {
  closeSync,
  constants as C,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  linkSync,
  lchownSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  chmodSync,
  chownSync,
  utimesSync,
  type Stats,
} from 'node:fs';
import type { Readable } from 'node:stream';
import { BerthError, ForbiddenError, InvalidParameterError, NotFoundError } from '../errors.js';
import { ByteReader } from '../archive/byte-reader.js';
import { decompressStream } from '../archive/decompress.js';
import { cleanMemberName, LayerApplyError } from '../snapshots/layer-apply.js';
import { nativeAddon, S_IFBLK, S_IFCHR, S_IFIFO } from '../native.js';
import { readTar, TarFormatError, type TarEntry } from '../archive/tar-reader.js';
import { fdPath, lstatOrUndefined, openChildDir, type ConfinedRoot, type Resolved } from './confined-root.js';
import type { RootView } from './container-views.js';
import { tarTree } from './tree-tar.js';

const O_PATH = 0o10000000;

/** Docker's container path stat (the X-Docker-Container-Path-Stat header, base64 of this JSON). */
export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

/** Go's os.FileMode bits for a Unix mode. */
export function goFileMode(st: Pick<Stats, 'mode'>): number {
  const m = st.mode;
  let out = m & 0o777;
  const type = m & 0o170000;
  if (type === 0o040000) out += 2 ** 31;
  else if (type === 0o120000) out += 2 ** 27;
  else if (type === 0o060000) out += 2 ** 26;
  else if (type === 0o020000) out += 2 ** 26 + 2 ** 21;
  else if (type === 0o010000) out += 2 ** 25;
  else if (type === 0o140000) out += 2 ** 24;
  if (m & 0o4000) out += 2 ** 23;
  if (m & 0o2000) out += 2 ** 22;
  if (m & 0o1000) out += 2 ** 20;
  return out;
}

function goTime(st: Stats): string {
  return new Date(st.mtimeMs).toISOString().replace(/\.000Z$/, 'Z');
}

/** `filepath.Join("/", p)` keeping a trailing "/" or "/." (archive.PreserveTrailingDotOrSeparator). */
export function absContainerPath(p: string): string {
  const clean = `/${p}`.replace(/\/+/g, '/');
  const parts: string[] = [];
  for (const c of clean.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') parts.pop();
    else parts.push(c);
  }
  let out = `/${parts.join('/')}`;
  if (/(^|\/)\.$/.test(p) && out !== '/') out += '/.';
  else if (p.endsWith('/') && out !== '/') out += '/';
  return out;
}

/** filepath.Base of the absolute path (what names the top archive entry). */
export function archiveBase(abs: string): string {
  if (abs === '/') return '/';
  if (abs.endsWith('/.')) return '.';
  const t = abs.replace(/\/+$/, '');
  return t.slice(t.lastIndexOf('/') + 1);
}

function underVirtual(view: RootView, path: string): boolean {
  for (const v of view.virtual) if (path.startsWith(`${v}/`)) return true;
  return false;
}

export interface ArchiveTarget {
  stat: PathStat;
  resolved: Resolved;
}

export class ArchiveOps {
  /** Resolves the path as dockerd's ResolvePath + StatPath do; the caller closes `resolved`. */
  static statPath(view: RootView, path: string, containerName: string): ArchiveTarget {
    if (path === '') throw new InvalidParameterError('Path cannot be empty');
    const abs = absContainerPath(path);
    const notFound = `Could not find the file ${path} in container ${containerName}`;
    const followFinal = abs.endsWith('/') || abs.endsWith('/.') || abs === '/';
    const r = view.root.resolve(abs, followFinal, notFound);
    if (!r.st || underVirtual(view, r.containerPath)) {
      r.close();
      throw new NotFoundError(notFound);
    }
    let linkTarget = '';
    if (r.st.isSymbolicLink()) {
      try {
        const t = view.root.resolve(abs, true, notFound);
        linkTarget = t.containerPath;
        t.close();
      } catch {
        linkTarget = '';
      }
    }
    return {
      resolved: r,
      stat: { name: archiveBase(abs), size: r.st.size, mode: goFileMode(r.st), mtime: goTime(r.st), linkTarget },
    };
  }

  static encodeStat(s: PathStat): string {
    return Buffer.from(JSON.stringify(s)).toString('base64');
  }

  /** The tar of a path (GET archive); the generator releases `resolved` when done or abandoned. */
  static async *tarOf(view: RootView, target: ArchiveTarget, onSkip?: (p: string, why: string) => void): AsyncGenerator<Buffer> {
    const r = target.resolved;
    try {
      yield* tarTree(r.dirFd, r.name, target.stat.name === '/' ? '.' : target.stat.name, r.containerPath, {
        skipContentsOf: view.virtual,
        ...(onSkip ? { onSkip } : {}),
      });
    } finally {
      r.close();
    }
  }
}

export interface ExtractOptions {
  noOverwriteDirNonDir: boolean;
  /** Owner for every extracted entry (copyUIDGID: the container's user); the tar's own ids otherwise. */
  chown?: { uid: number; gid: number };
  /** Mount destinations and whether they are writable; the rootfs flag for the rest. */
  mounts: readonly { destination: string; rw: boolean }[];
  readonlyRootfs: boolean;
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** Removes an entry and everything below it, each step relative to an open directory. */
export function removeConfined(dirFd: number, name: string): void {
  const st = lstatOrUndefined(fdPath(dirFd, name));
  if (!st) return;
  if (st.isDirectory()) {
    const fd = openChildDir(dirFd, name);
    try {
      for (const child of readdirSync(fdPath(fd))) removeConfined(fd, child);
    } finally {
      closeSync(fd);
    }
    rmdirSync(fdPath(dirFd, name));
  } else {
    unlinkSync(fdPath(dirFd, name));
  }
}

/** Applies ownership, mode and times through an fd of the node itself (never a path a container could swap). */
function setMetaByPathFd(dirFd: number, name: string, uid: number, gid: number, mode: number | undefined, mtime: number): void {
  const fd = openSync(fdPath(dirFd, name), O_PATH | C.O_NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (st.isSymbolicLink()) return;
    const p = `/proc/self/fd/${fd}`;
    chownSync(p, uid, gid);
    if (mode !== undefined) chmodSync(p, mode);
    utimesSync(p, mtime, mtime);
  } finally {
    closeSync(fd);
  }
}

/** PUT archive: extracts a (possibly compressed) tar into a directory of the container. */
export class ArchiveExtractor {
  private readonly dirTimes: { path: string; mtime: number }[] = [];

  constructor(
    private readonly root: ConfinedRoot,
    /** The extraction directory's canonical container path. */
    private readonly dest: string,
    private readonly o: ExtractOptions,
  ) {}

  /** dockerd's checks before extracting: the target must be a directory, and writable. */
  static prepare(view: RootView, path: string, containerName: string, o: Omit<ExtractOptions, 'noOverwriteDirNonDir' | 'chown'>): string {
    if (path === '') throw new InvalidParameterError('Path cannot be empty');
    const abs = absContainerPath(path);
    const notFound = `Could not find the file ${path} in container ${containerName}`;
    const r = view.root.resolve(abs, true, notFound);
    try {
      if (!r.st || underVirtual(view, r.containerPath)) throw new NotFoundError(notFound);
      if (!r.st.isDirectory()) throw new InvalidParameterError('extraction point is not a directory');
      const m = mountFor(o.mounts, r.containerPath);
      if (m && !m.rw) throw new ForbiddenError('mounted volume is marked read-only');
      if (!m && o.readonlyRootfs) throw new ForbiddenError('container rootfs is marked read-only');
      return r.containerPath;
    } finally {
      r.close();
    }
  }

  async extract(body: Readable): Promise<void> {
    let stream: Readable | undefined;
    try {
      const d = await decompressStream(body);
      stream = d.stream;
      for await (const entry of readTar(new ByteReader(stream))) await this.apply(entry);
      for (let i = this.dirTimes.length - 1; i >= 0; i--) {
        const t = this.dirTimes[i] as { path: string; mtime: number };
        const r = this.root.resolve(t.path, false);
        try {
          if (r.st?.isDirectory()) setMetaByPathFd(r.dirFd, r.name, r.st.uid, r.st.gid, undefined, t.mtime);
        } finally {
          r.close();
        }
      }
    } catch (e) {
      stream?.destroy();
      if (e instanceof TarFormatError || e instanceof LayerApplyError) throw new InvalidParameterError(e.message);
      if (errno(e) === 'EROFS') throw new ForbiddenError('container rootfs is marked read-only');
      throw e;
    }
  }

  /** The directory `rel` (relative to dest) resolved inside the root, created (0755) where missing. */
  private ensureDir(parts: readonly string[], member: string): string {
    let cur = this.dest;
    for (const p of parts) {
      const r = this.root.resolve(`${cur}/${p}`, true, `invalid tar entry ${member}: missing directory`);
      try {
        if (!r.st) {
          mkdirSync(r.hostPath, 0o755);
        } else if (!r.st.isDirectory()) {
          throw new InvalidParameterError(`cannot extract ${JSON.stringify(member)}: ${r.containerPath} is not a directory`);
        }
        cur = r.containerPath;
      } finally {
        r.close();
      }
    }
    return cur;
  }

  private async apply(entry: TarEntry): Promise<void> {
    const h = entry.header;
    // `..` that climbs out of the extraction directory is refused (dockerd's breakout check).
    const parts = cleanMemberName(h.name);
    if (parts.length === 0) {
      // The extraction directory itself: only its metadata, and only for directories.
      await entry.drain();
      return;
    }
    const base = parts[parts.length - 1] as string;
    const parent = this.ensureDir(parts.slice(0, -1), h.name);
    const mount = mountFor(this.o.mounts, parent);
    if (mount && !mount.rw) throw new ForbiddenError('mounted volume is marked read-only');
    const r = this.root.resolve(`${parent}/${base}`, false);
    try {
      await this.place(entry, r, parent);
    } finally {
      r.close();
    }
  }

  private async place(entry: TarEntry, r: Resolved, parent: string): Promise<void> {
    const h = entry.header;
    const uid = this.o.chown?.uid ?? h.uid;
    const gid = this.o.chown?.gid ?? h.gid;
    if (r.name === '.') throw new InvalidParameterError(`invalid tar entry ${JSON.stringify(h.name)}`);
    const existing = r.st;
    if (existing) {
      if (this.o.noOverwriteDirNonDir) {
        if (existing.isDirectory() && h.type !== 'directory') {
          throw new InvalidParameterError(`cannot overwrite directory ${JSON.stringify(r.containerPath)} with non-directory ${JSON.stringify(h.name)}`);
        }
        if (!existing.isDirectory() && h.type === 'directory') {
          throw new InvalidParameterError(`cannot overwrite non-directory ${JSON.stringify(r.containerPath)} with directory ${JSON.stringify(h.name)}`);
        }
      }
      if (!(existing.isDirectory() && h.type === 'directory')) removeConfined(r.dirFd, r.name);
    }
    const path = r.hostPath;
    switch (h.type) {
      case 'directory': {
        if (!existing?.isDirectory()) mkdirSync(path, 0o700);
        const fd = openChildDir(r.dirFd, r.name);
        try {
          fchownSync(fd, uid, gid);
          fchmodSync(fd, h.mode);
        } finally {
          closeSync(fd);
        }
        this.dirTimes.push({ path: r.containerPath, mtime: h.mtime });
        break;
      }
      case 'file': {
        const fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of entry.body) {
            let off = 0;
            while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
          }
          fchownSync(fd, uid, gid);
          fchmodSync(fd, h.mode);
          this.setXattrs(path, h.xattrs);
          futimesSync(fd, h.mtime, h.mtime);
        } finally {
          closeSync(fd);
        }
        break;
      }
      case 'symlink': {
        symlinkSync(h.linkname, path);
        lchownSync(path, uid, gid);
        lutimesSync(path, h.mtime, h.mtime);
        break;
      }
      case 'link': {
        const target = cleanMemberName(h.linkname);
        if (target.length === 0) throw new InvalidParameterError(`invalid hardlink ${JSON.stringify(h.name)} -> ${JSON.stringify(h.linkname)}`);
        const t = this.root.resolve(`${this.dest}/${target.join('/')}`, false, `invalid hardlink ${h.name}: target not found`);
        try {
          if (!t.st || t.st.isDirectory()) {
            throw new InvalidParameterError(`invalid hardlink ${JSON.stringify(h.name)} -> ${JSON.stringify(h.linkname)}`);
          }
          linkSync(t.hostPath, path);
        } finally {
          t.close();
        }
        break;
      }
      case 'fifo':
      case 'character-device':
      case 'block-device': {
        const type = h.type === 'fifo' ? S_IFIFO : h.type === 'character-device' ? S_IFCHR : S_IFBLK;
        nativeAddon().mknod(path, type | (h.mode & 0o7777), h.devmajor, h.devminor);
        setMetaByPathFd(r.dirFd, r.name, uid, gid, h.mode, h.mtime);
        break;
      }
    }
    void parent;
    await entry.drain();
  }

  private setXattrs(path: string, xattrs: ReadonlyMap<string, Buffer>): void {
    for (const [k, v] of xattrs) {
      try {
        nativeAddon().lsetxattr(path, k, v, 0);
      } catch (e) {
        if (errno(e) !== 'ENOTSUP' && errno(e) !== 'EPERM' && errno(e) !== 'EOPNOTSUPP') throw new BerthError(`setting xattr ${k}: ${(e as Error).message}`);
      }
    }
  }
}

/** The mount a container path lives on (longest destination prefix), if any. */
function mountFor(mounts: readonly { destination: string; rw: boolean }[], path: string): { destination: string; rw: boolean } | undefined {
  let best: { destination: string; rw: boolean } | undefined;
  for (const m of mounts) {
    const d = m.destination.replace(/\/+$/, '') || '/';
    if (path === d || path.startsWith(`${d}/`)) {
      if (!best || d.length > best.destination.length) best = { destination: d, rw: m.rw };
    }
  }
  return best;
}
