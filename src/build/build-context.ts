// The build context: the uploaded tar (or a git repository / tarball URL) unpacked into a private directory,
// the Dockerfile read from it, and COPY/ADD sources resolved and checksummed inside it. Every lookup goes
// through ConfinedRoot: symlinks in the context resolve inside it and are copied as links, never followed on
// the host; a source that climbs out of the context is refused.

import { createHash } from 'node:crypto';
import { closeSync, constants as C, lstatSync, mkdirSync, readdirSync, readlinkSync, readSync, openSync, rmSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidParameterError, NotFoundError } from '../errors.js';
import { ConfinedRoot, fdPath, openChildDir, type Resolved } from '../containers/confined-root.js';
import { ByteReader } from '../archive/byte-reader.js';
import { decompressStream } from '../archive/decompress.js';
import { applyTar } from '../snapshots/layer-apply.js';
import { readTar } from '../archive/tar-reader.js';
import { cleanPath, PatternMatcher, readIgnoreFile } from './dockerignore.js';
import { goPathMatch } from '../util/go-path-match.js';

/** Unpacks a (possibly compressed) context tar into `dir` (created). Returns the bytes received. */
export async function extractContext(body: Readable, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const d = await decompressStream(body);
  try {
    await applyTar(readTar(new ByteReader(d.stream), { lenientEnd: true }), dir, 'naive');
  } catch (e) {
    d.stream.destroy();
    throw new InvalidParameterError(`failed to read the build context: ${(e as Error).message}`);
  }
}

function readConfinedFile(root: ConfinedRoot, path: string, notFound: string, maxBytes = 64 * 1024 * 1024): Buffer | undefined {
  let r: Resolved;
  try {
    r = root.resolve(path, true, notFound);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
  try {
    if (!r.st || !r.st.isFile()) return undefined;
    const fd = openSync(r.hostPath, C.O_RDONLY | C.O_NOFOLLOW);
    try {
      const size = Math.min(r.st.size, maxBytes);
      const buf = Buffer.alloc(size);
      let off = 0;
      while (off < size) {
        const n = readSync(fd, buf, off, size - off, off);
        if (n === 0) break;
        off += n;
      }
      return buf.subarray(0, off);
    } finally {
      closeSync(fd);
    }
  } finally {
    r.close();
  }
}

/**
 * The Dockerfile text (`name` inside the context; the default also tries `dockerfile`), and dockerd's removal of
 * the Dockerfile and .dockerignore from the context when .dockerignore excludes them.
 */
export function readDockerfile(dir: string, name: string): { text: string; name: string } {
  const root = ConfinedRoot.open(dir);
  try {
    const rel = dockerfileRel(name);
    let buf = readConfinedFile(root, rel, name);
    let used = rel;
    if (!buf && name === 'Dockerfile') {
      buf = readConfinedFile(root, 'dockerfile', name);
      used = 'dockerfile';
    }
    if (!buf) throw new InvalidParameterError(`Cannot locate specified Dockerfile: ${name}`);
    const ignore = readConfinedFile(root, '.dockerignore', '.dockerignore');
    removeIgnoredBuildFiles(dir, ignore?.toString('utf8'), used);
    return { text: buf.toString('utf8'), name: used };
  } finally {
    root.close();
  }
}

/** The Dockerfile's path inside the context; a path that climbs out of it is refused. */
export function dockerfileRel(name: string): string {
  const rel = cleanPath(name).replace(/^\/+/, '');
  if (rel.startsWith('../') || rel === '..') throw new InvalidParameterError(`Forbidden path outside the build context: ${name} ()`);
  return rel;
}

/** dockerd's removeDockerfile: the Dockerfile and .dockerignore leave the context when .dockerignore excludes them. */
export function removeIgnoredBuildFiles(dir: string, ignore: string | undefined, dockerfile: string): void {
  if (ignore === undefined) return;
  const m = new PatternMatcher(readIgnoreFile(ignore));
  for (const f of ['.dockerignore', dockerfile]) {
    if (m.matchesOrParentMatches(f)) rmSync(join(dir, f), { force: true, recursive: true });
  }
}

export const hasWildcards = (s: string): boolean => /[*?[]/.test(s);

/** A checksum memo keyed by (device, inode, size, mtime): a file seen unchanged is never read twice. */
export class ChecksumMemo {
  private readonly m = new Map<string, string>();
  async get(st: Stats, compute: () => Promise<string>): Promise<string> {
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    let v = this.m.get(key);
    if (v === undefined) {
      v = await compute();
      if (this.m.size > 200_000) this.m.clear();
      this.m.set(key, v);
    }
    return v;
  }
}

/** sha256 of a file's content, read asynchronously (a large context does not stall the daemon). */
async function fileContentHash(path: string): Promise<string> {
  const fh = await open(path, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
    return h.digest('hex');
  } finally {
    await fh.close();
  }
}

/**
 * The checksum of one entry as the classic builder's tarsum sees it: the header (name relative to the source,
 * type, mode, owner, size, link target; not the mtime) and the content; a directory hashes its entries in name
 * order.
 */
export async function entryChecksum(dirFd: number, name: string, memo: ChecksumMemo): Promise<{ kind: 'file' | 'dir'; hash: string }> {
  const path = fdPath(dirFd, name);
  const st = lstatSync(path);
  if (!st.isDirectory()) return { kind: 'file', hash: await headerAndContent(path, st, '', memo) };
  const h = createHash('sha256');
  const walk = async (fd: number, prefix: string): Promise<void> => {
    for (const child of readdirSync(fdPath(fd)).sort()) {
      const p = fdPath(fd, child);
      const cst = lstatSync(p);
      const rel = prefix === '' ? child : `${prefix}/${child}`;
      h.update(await headerAndContent(p, cst, rel, memo));
      h.update('\n');
      if (cst.isDirectory()) {
        const cfd = openChildDir(fd, child);
        try {
          await walk(cfd, rel);
        } finally {
          closeSync(cfd);
        }
      }
    }
  };
  const dfd = openChildDir(dirFd, name);
  try {
    h.update(await headerAndContent(fdPath(dfd), lstatSync(fdPath(dfd)), '.', memo));
    await walk(dfd, '');
  } finally {
    closeSync(dfd);
  }
  return { kind: 'dir', hash: h.digest('hex') };
}

async function headerAndContent(path: string, st: Stats, rel: string, memo: ChecksumMemo): Promise<string> {
  const type = st.isFile() ? '0' : st.isSymbolicLink() ? '2' : st.isDirectory() ? '5' : st.isFIFO() ? '6' : st.isCharacterDevice() ? '3' : '4';
  const link = st.isSymbolicLink() ? readlinkSync(path) : '';
  const content = st.isFile() ? await memo.get(st, () => fileContentHash(path)) : '';
  const header = `${rel}\0${type}\0${(st.mode & 0o7777).toString(8)}\0${st.uid}\0${st.gid}\0${st.isFile() ? st.size : 0}\0${link}\0${st.rdev}`;
  return createHash('sha256').update(header).update(content).digest('hex');
}

/** Every path of the context matching a wildcard source (Go filepath.Match per full relative path). */
export function globContext(root: ConfinedRoot, pattern: string): string[] {
  const clean = cleanPath(pattern).replace(/^\/+/, '');
  const depth = clean.split('/').length;
  const out: string[] = [];
  const walk = (fd: number, prefix: string, level: number): void => {
    for (const child of readdirSync(fdPath(fd)).sort()) {
      const rel = prefix === '' ? child : `${prefix}/${child}`;
      const st = lstatSync(fdPath(fd, child));
      if (level + 1 === depth) {
        if (goPathMatch(clean, rel)) out.push(rel);
      } else if (st.isDirectory()) {
        const cfd = openChildDir(fd, child);
        try {
          walk(cfd, rel, level + 1);
        } finally {
          closeSync(cfd);
        }
      }
    }
  };
  walk(root.rootFd, '', 0);
  return out;
}
