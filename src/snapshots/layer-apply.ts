import { createHash } from 'node:crypto';
import {
  closeSync,
  linkSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  chmodSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  write,
  writeSync,
  type Stats,
} from 'node:fs';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ByteReader } from '../archive/byte-reader.js';
import { decompressStream, type Compression } from '../archive/decompress.js';
import { nativeAddon, S_IFBLK, S_IFCHR, S_IFIFO } from '../native.js';
import { readTar, type TarEntry } from '../archive/tar-reader.js';

/**
 * overlay: Docker whiteouts become overlayfs whiteouts (0/0 char devices, trusted.overlay.opaque=y) in a fresh
 * diff directory. naive: whiteouts delete from a directory that already holds the parent's files (vfs).
 */
export type WhiteoutFormat = 'overlay' | 'naive';

/** A layer archive that cannot be applied safely or correctly (the whole operation fails). */
export class LayerApplyError extends Error {}

export interface ApplyResult {
  /** Bytes of regular-file content applied (Docker's layer size). */
  size: number;
  /** Non-fatal problems (xattrs the filesystem refused), for the log. */
  warnings: string[];
}

export interface LayerApplyResult extends ApplyResult {
  /** sha256 of the uncompressed tar stream. */
  diffId: string;
  compression: Compression;
}

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';
const WH_META_PREFIX = '.wh..wh.';
const OPAQUE_XATTR = 'trusted.overlay.opaque';

const writeAsync = promisify(write);

/** Chunks at least this large are written off the event loop. */
const ASYNC_WRITE_MIN = 128 * 1024;

function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** Writes all of buf to fd at its current position, off the event loop. */
async function writeAll(fd: number, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await writeAsync(fd, buf, off, buf.length - off);
    off += bytesWritten;
  }
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Cleans an archive member name the way Go's filepath.Clean + Rel check does: leading `/` is dropped
 * (absolute names land inside the root), `..` that climbs above the root is refused.
 */
export function cleanMemberName(name: string): string[] {
  const absolute = name.startsWith('/');
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) {
        if (absolute) continue;
        throw new LayerApplyError(`invalid tar entry ${JSON.stringify(name)}: path is outside of the layer (refusing "..")`);
      }
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out;
}

/** Unpacks one layer's tar members into `root` (which must exist). */
export class LayerApplier {
  /** Real relative paths known to be directories (not symlinks) inside root. */
  private readonly dirs = new Set<string>(['']);
  /** Paths this layer wrote (naive opaque directories keep only these). */
  private readonly created = new Set<string>();
  private readonly dirTimes: { path: string; mtime: number }[] = [];
  private readonly warnings: string[] = [];
  private size = 0;

  constructor(
    private readonly root: string,
    private readonly format: WhiteoutFormat,
  ) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  private forgetDirs(rel: string): void {
    this.dirs.delete(rel);
    const prefix = `${rel}/`;
    for (const d of this.dirs) if (d.startsWith(prefix)) this.dirs.delete(d);
  }

  /**
   * Resolves a directory path inside root like a chroot would, following symlinks found on disk
   * (absolute targets from root), refusing any that lead above root. Missing directories are created
   * (0755) when `create`, else a missing path throws ENOENT-like LayerApplyError.
   */
  private resolveDir(parts: readonly string[], member: string, create: boolean): string {
    const cur: string[] = [];
    const queue = [...parts];
    let hops = 0;
    while (queue.length > 0) {
      const c = queue.shift() as string;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (cur.length === 0) throw new LayerApplyError(`invalid tar entry ${JSON.stringify(member)}: a symlink leads outside of the layer`);
        cur.pop();
        continue;
      }
      const key = cur.length === 0 ? c : `${cur.join('/')}/${c}`;
      if (this.dirs.has(key)) {
        cur.push(c);
        continue;
      }
      const path = this.abs(key);
      let st: Stats;
      try {
        st = lstatSync(path);
      } catch (e) {
        if (code(e) !== 'ENOENT') throw e;
        if (!create) throw new LayerApplyError(`invalid tar entry ${JSON.stringify(member)}: ${key} does not exist in the layer`);
        mkdirSync(path, 0o755);
        this.dirs.add(key);
        this.created.add(key);
        cur.push(c);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++hops > 40) throw new LayerApplyError(`invalid tar entry ${JSON.stringify(member)}: too many levels of symbolic links`);
        const target = readlinkSync(path);
        if (target.startsWith('/')) cur.length = 0;
        queue.unshift(...target.split('/'));
        continue;
      }
      if (!st.isDirectory()) throw new LayerApplyError(`invalid tar entry ${JSON.stringify(member)}: ${key} is not a directory`);
      this.dirs.add(key);
      cur.push(c);
    }
    return cur.join('/');
  }

  /** Removes whatever is at rel (file, link or whole tree). */
  private remove(rel: string): void {
    rmSync(this.abs(rel), { recursive: true, force: true });
    this.forgetDirs(rel);
  }

  /** Runs create(); if the path exists, removes it first (unless keep() says the existing node stays). */
  private place(rel: string, create: () => void, keepExisting?: (st: Stats) => boolean): boolean {
    try {
      create();
      return true;
    } catch (e) {
      if (code(e) !== 'EEXIST') throw e;
    }
    const st = lstatSync(this.abs(rel));
    if (keepExisting?.(st)) return false;
    this.remove(rel);
    create();
    return true;
  }

  private applyXattrs(path: string, xattrs: ReadonlyMap<string, Buffer>): void {
    if (xattrs.size === 0) return;
    const native = nativeAddon();
    for (const [name, value] of xattrs) {
      try {
        native.lsetxattr(path, name, value, 0);
      } catch (e) {
        if (code(e) === 'ENOTSUP' || code(e) === 'EPERM') this.warnings.push(`xattr ${name} on ${path}: ${(e as Error).message}`);
        else throw e;
      }
    }
  }

  async apply(entry: TarEntry): Promise<void> {
    const h = entry.header;
    const parts = cleanMemberName(h.name);
    const base = parts.length === 0 ? '' : (parts[parts.length - 1] as string);

    if (base.startsWith(WH_PREFIX)) {
      this.whiteout(parts, base, h.uid, h.gid, h.name);
      return;
    }

    const parentRel = this.resolveDir(parts.slice(0, -1), h.name, true);
    const rel = parts.length === 0 ? '' : parentRel === '' ? base : `${parentRel}/${base}`;
    const path = this.abs(rel);
    const native = nativeAddon();

    switch (h.type) {
      case 'directory': {
        if (rel !== '') {
          this.place(rel, () => mkdirSync(path, 0o700), (st) => st.isDirectory());
          this.dirs.add(rel);
        }
        lchownSync(path, h.uid, h.gid);
        chmodSync(path, h.mode);
        this.applyXattrs(path, h.xattrs);
        this.dirTimes.push({ path, mtime: h.mtime });
        break;
      }
      case 'file': {
        if (rel === '') throw new LayerApplyError(`invalid tar entry ${JSON.stringify(h.name)}: not a directory`);
        let fd = -1;
        this.place(rel, () => {
          fd = openSync(path, 'wx', 0o600);
        });
        // Large chunks are written on the thread pool, one in flight while the next chunk is read, hashed and
        // parsed (a sync write copies every byte on the event loop and stalls the downloads running meanwhile);
        // small ones synchronously, where a thread-pool round trip per file would cost more than the copy.
        let pending: Promise<void> | undefined;
        try {
          for await (const chunk of entry.body) {
            if (pending) await pending;
            pending = undefined;
            if (chunk.length < ASYNC_WRITE_MIN) {
              writeAllSync(fd, chunk);
              continue;
            }
            pending = writeAll(fd, chunk);
            pending.catch(() => undefined); // seen by the next await; never an unhandled rejection meanwhile
          }
          if (pending) await pending;
        } finally {
          await pending?.catch(() => undefined);
          closeSync(fd);
        }
        this.size += h.size;
        this.finishNode(path, h.uid, h.gid, h.mode, h.mtime, h.xattrs);
        break;
      }
      case 'symlink': {
        if (rel === '') throw new LayerApplyError(`invalid tar entry ${JSON.stringify(h.name)}: not a directory`);
        this.checkSymlinkTarget(parts, h.linkname, h.name);
        this.place(rel, () => symlinkSync(h.linkname, path));
        lchownSync(path, h.uid, h.gid);
        this.applyXattrs(path, h.xattrs);
        lutimesSync(path, h.mtime, h.mtime);
        break;
      }
      case 'link': {
        if (rel === '') throw new LayerApplyError(`invalid tar entry ${JSON.stringify(h.name)}: not a directory`);
        const targetParts = cleanMemberName(h.linkname);
        if (targetParts.length === 0) throw new LayerApplyError(`invalid hardlink ${JSON.stringify(h.name)} -> ${JSON.stringify(h.linkname)}`);
        const tParent = this.resolveDir(targetParts.slice(0, -1), h.name, false);
        const tBase = targetParts[targetParts.length - 1] as string;
        const target = this.abs(tParent === '' ? tBase : `${tParent}/${tBase}`);
        let tst: Stats;
        try {
          tst = lstatSync(target);
        } catch {
          throw new LayerApplyError(`invalid hardlink ${JSON.stringify(h.name)}: target ${JSON.stringify(h.linkname)} is not in the layer`);
        }
        if (tst.isDirectory()) throw new LayerApplyError(`invalid hardlink ${JSON.stringify(h.name)}: target ${JSON.stringify(h.linkname)} is a directory`);
        if (target === path) break;
        this.place(rel, () => linkSync(target, path));
        break;
      }
      case 'fifo':
      case 'character-device':
      case 'block-device': {
        if (rel === '') throw new LayerApplyError(`invalid tar entry ${JSON.stringify(h.name)}: not a directory`);
        const type = h.type === 'fifo' ? S_IFIFO : h.type === 'character-device' ? S_IFCHR : S_IFBLK;
        this.place(rel, () => native.mknod(path, type | (h.mode & 0o7777), h.devmajor, h.devminor));
        this.finishNode(path, h.uid, h.gid, h.mode, h.mtime, h.xattrs);
        break;
      }
    }
    if (rel !== '') this.created.add(rel);
  }

  private finishNode(path: string, uid: number, gid: number, mode: number, mtime: number, xattrs: ReadonlyMap<string, Buffer>): void {
    lchownSync(path, uid, gid);
    chmodSync(path, mode); // after chown, which clears setuid/setgid
    this.applyXattrs(path, xattrs);
    utimesSync(path, mtime, mtime);
  }

  /** Docker refuses a relative symlink whose target climbs above the layer root from where it sits. */
  private checkSymlinkTarget(parts: readonly string[], linkname: string, member: string): void {
    if (linkname.startsWith('/')) return;
    const stack = parts.slice(0, -1);
    for (const c of linkname.split('/')) {
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (stack.length === 0) {
          throw new LayerApplyError(`invalid symlink ${JSON.stringify(member)} -> ${JSON.stringify(linkname)}: it points outside of the layer`);
        }
        stack.pop();
      } else stack.push(c);
    }
  }

  private whiteout(parts: readonly string[], base: string, uid: number, gid: number, member: string): void {
    if (base === WH_PREFIX || base === '.wh..' || base === '.wh...') {
      throw new LayerApplyError(`invalid whiteout entry ${JSON.stringify(member)}`);
    }
    const dirRel = this.resolveDir(parts.slice(0, -1), member, true);
    const dirPath = this.abs(dirRel);
    if (base === WH_OPAQUE) {
      if (this.format === 'overlay') {
        nativeAddon().lsetxattr(dirPath, OPAQUE_XATTR, Buffer.from('y'), 0);
      } else {
        for (const name of readdirSync(dirPath)) {
          const rel = dirRel === '' ? name : `${dirRel}/${name}`;
          if (!this.created.has(rel)) this.remove(rel);
        }
      }
      return;
    }
    if (base.startsWith(WH_META_PREFIX)) return; // AUFS metadata (.wh..wh.plnk, ...): not part of the tree
    const name = base.slice(WH_PREFIX.length);
    const rel = dirRel === '' ? name : `${dirRel}/${name}`;
    if (this.format === 'naive') {
      this.remove(rel);
      return;
    }
    const path = this.abs(rel);
    this.place(rel, () => nativeAddon().mknod(path, S_IFCHR, 0, 0));
    if (uid !== 0 || gid !== 0) lchownSync(path, uid, gid);
    this.created.add(rel);
  }

  /** Directory mtimes last (creating children changed them), deepest first. */
  finish(): ApplyResult {
    for (let i = this.dirTimes.length - 1; i >= 0; i--) {
      const d = this.dirTimes[i] as { path: string; mtime: number };
      utimesSync(d.path, d.mtime, d.mtime);
    }
    return { size: this.size, warnings: this.warnings };
  }
}

/** Applies every member of a tar stream to root. */
export async function applyTar(entries: AsyncIterable<TarEntry>, root: string, format: WhiteoutFormat): Promise<ApplyResult> {
  const applier = new LayerApplier(root, format);
  for await (const entry of entries) await applier.apply(entry);
  return applier.finish();
}

/**
 * Decompresses (gzip, zstd, bzip2, xz or none), hashes the uncompressed tar (the diff ID) and applies it to root.
 * `sourceDigest`: the verified sha256 of the source bytes (a content-store blob); an uncompressed source's diff
 * ID is that digest, so it is not hashed a second time. On failure the source is destroyed and the error thrown;
 * the caller removes root.
 */
export async function applyLayerStream(source: Readable, root: string, format: WhiteoutFormat, sourceDigest?: string): Promise<LayerApplyResult> {
  let stream: Readable | undefined;
  try {
    const d = await decompressStream(source);
    stream = d.stream;
    const known = d.compression === 'none' ? sourceDigest : undefined;
    const hash = known === undefined ? createHash('sha256') : undefined;
    const reader = new ByteReader(stream, hash && ((c) => hash.update(c)));
    const r = await applyTar(readTar(reader), root, format);
    return { ...r, diffId: known ?? `sha256:${hash?.digest('hex')}`, compression: d.compression };
  } catch (e) {
    stream?.destroy();
    source.destroy();
    throw e;
  }
}
