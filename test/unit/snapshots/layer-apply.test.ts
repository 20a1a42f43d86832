import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyLayerStream, LayerApplyError } from '../../../src/snapshots/layer-apply.js';
import { nativeAddon } from '../../../src/native.js';
import { layerTar, type LayerEntry } from '../../helpers/image-builder.js';
import { rawTar, sha256 } from '../archive/tar-fixtures.js';

let dir: string;
let root: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-apply-'));
  root = join(dir, 'root');
  mkdirSync(root);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const apply = (data: Buffer, format: 'overlay' | 'naive' = 'overlay') => applyLayerStream(Readable.from([data]), root, format);

const everything: LayerEntry[] = [
  { path: 'bin', type: 'directory', mode: 0o755 },
  { path: 'bin/su', type: 'file', mode: 0o4755, uid: 0, gid: 0, content: 'su' },
  { path: 'bin/sg', type: 'file', mode: 0o2711, uid: 1000, gid: 50, content: 'sg' },
  { path: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' },
  { path: 'bin/su2', type: 'link', linkname: 'bin/su' },
  { path: 'tmp', type: 'directory', mode: 0o1777 },
  { path: 'tmp/fifo', type: 'fifo', mode: 0o640 },
  { path: 'dev', type: 'directory' },
  { path: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
  { path: 'dev/loop0', type: 'block-device', mode: 0o660, devmajor: 7, devminor: 0 },
  { path: 'etc/x', type: 'file', content: 'x', mtime: new Date('2020-02-02T00:00:00Z'), pax: { 'SCHILY.xattr.user.note': 'hello' } },
];

describe('applyLayerStream', () => {
  it('recreates every entry type exactly, with modes incl. setuid/setgid/sticky, owners, mtimes and xattrs', async () => {
    const tar = await layerTar(everything);
    const r = await apply(tar);
    expect(r.diffId).toBe(sha256(tar));
    expect(r.compression).toBe('none');
    expect(r.size).toBe(2 + 2 + 1);
    const st = (p: string) => lstatSync(join(root, p));
    expect(st('bin/su').mode & 0o7777).toBe(0o4755);
    expect(st('bin/sg').mode & 0o7777).toBe(0o2711);
    expect([st('bin/sg').uid, st('bin/sg').gid]).toEqual([1000, 50]);
    expect(readlinkSync(join(root, 'bin/sh'))).toBe('/bin/busybox');
    expect(st('bin/su2').ino).toBe(st('bin/su').ino);
    expect(st('tmp').mode & 0o7777).toBe(0o1777);
    expect(st('tmp/fifo').isFIFO()).toBe(true);
    expect(st('tmp/fifo').mode & 0o777).toBe(0o640);
    expect(st('dev/null').isCharacterDevice()).toBe(true);
    expect(st('dev/null').rdev).toBe(0x103);
    expect(st('dev/loop0').isBlockDevice()).toBe(true);
    expect(st('etc/x').mtime.toISOString()).toBe('2020-02-02T00:00:00.000Z');
    expect(st('bin').mtime.toISOString()).toBe('2024-01-01T00:00:00.000Z');
    expect(nativeAddon().lgetxattr(join(root, 'etc/x'), 'user.note')?.toString()).toBe('hello');
    expect(readFileSync(join(root, 'bin/su'), 'utf8')).toBe('su');
  });

  it('computes the diff ID over the uncompressed tar for gzip and zstd layers', async () => {
    const tar = await layerTar(everything.slice(0, 3));
    const gz = await apply(gzipSync(tar));
    expect(gz.compression).toBe('gzip');
    expect(gz.diffId).toBe(sha256(tar));
    rmSync(root, { recursive: true });
    mkdirSync(root);
    const zst = execFileSync('zstd', ['-c', '-q'], { input: tar });
    const z = await apply(zst);
    expect(z.compression).toBe('zstd');
    expect(z.diffId).toBe(sha256(tar));
    expect(lstatSync(join(root, 'bin/su')).mode & 0o7777).toBe(0o4755);
  });

  it("takes a verified source digest as an uncompressed layer's diff ID, and hashes a compressed one anyway", async () => {
    const tar = await layerTar(everything.slice(0, 3));
    const given = `sha256:${'a'.repeat(64)}`; // not the tar's: shows the given digest is used, not recomputed
    const plain = await applyLayerStream(Readable.from([tar]), root, 'overlay', given);
    expect(plain.compression).toBe('none');
    expect(plain.diffId).toBe(given);
    expect(readFileSync(join(root, 'bin/su'), 'utf8')).toBe('su');
    rmSync(root, { recursive: true });
    mkdirSync(root);
    const gz = await applyLayerStream(Readable.from([gzipSync(tar)]), root, 'overlay', given);
    expect(gz.compression).toBe('gzip');
    expect(gz.diffId).toBe(sha256(tar));
  });

  it('writes large files (chunks written off the event loop) and small ones byte for byte, fed in odd-sized pieces', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    const tar = await layerTar([
      { path: 'big', type: 'file', mode: 0o640, content: big },
      { path: 'small', type: 'file', content: 'small' },
      { path: 'big2', type: 'file', content: big.subarray(5) },
    ]);
    const pieces: Buffer[] = [];
    for (let off = 0, n = 700_001; off < tar.length; off += n) pieces.push(tar.subarray(off, off + n));
    const r = await applyLayerStream(Readable.from(pieces), root, 'overlay');
    expect(readFileSync(join(root, 'big')).equals(big)).toBe(true);
    expect(readFileSync(join(root, 'big2')).equals(big.subarray(5))).toBe(true);
    expect(readFileSync(join(root, 'small'), 'utf8')).toBe('small');
    expect(lstatSync(join(root, 'big')).mode & 0o7777).toBe(0o640);
    expect(r.size).toBe(2 * big.length - 5 + 5);
  });

  it('turns Docker whiteouts into overlay whiteouts and opaque directories', async () => {
    const tar = await layerTar([
      { path: 'a', type: 'directory' },
      { path: 'a/.wh.gone', type: 'file' },
      { path: 'b', type: 'directory' },
      { path: 'b/.wh..wh..opq', type: 'file' },
      { path: 'b/new', type: 'file', content: 'n' },
      { path: 'a/.wh..wh.plnk', type: 'directory' },
    ]);
    await apply(tar);
    const wh = lstatSync(join(root, 'a/gone'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    expect(existsSync(join(root, 'a/.wh.gone'))).toBe(false);
    expect(nativeAddon().lgetxattr(join(root, 'b'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(readdirSync(join(root, 'b'))).toEqual(['new']);
    expect(readdirSync(join(root, 'a'))).toEqual(['gone']);
  });

  it('applies whiteouts as deletions in naive (vfs) mode, keeping what the same layer created', async () => {
    mkdirSync(join(root, 'a'));
    writeFileSync(join(root, 'a/gone'), 'old');
    writeFileSync(join(root, 'a/kept'), 'old');
    mkdirSync(join(root, 'b/sub'), { recursive: true });
    writeFileSync(join(root, 'b/old'), 'old');
    const tar = await layerTar([
      { path: 'a/.wh.gone', type: 'file' },
      { path: 'b/new', type: 'file', content: 'n' },
      { path: 'b/.wh..wh..opq', type: 'file' },
    ]);
    await apply(tar, 'naive');
    expect(readdirSync(join(root, 'a'))).toEqual(['kept']);
    expect(readdirSync(join(root, 'b'))).toEqual(['new']);
  });

  it('replaces an existing file, symlink or directory with the new entry', async () => {
    mkdirSync(join(root, 'x/y'), { recursive: true });
    writeFileSync(join(root, 'f'), 'old');
    await apply(await layerTar([{ path: 'x', type: 'file', content: 'now a file' }, { path: 'f', type: 'symlink', linkname: 'x' }]), 'naive');
    expect(readFileSync(join(root, 'x'), 'utf8')).toBe('now a file');
    expect(readlinkSync(join(root, 'f'))).toBe('x');
  });

  it('lands absolute member names inside the layer', async () => {
    await apply(rawTar([{ name: '/etc/abs', data: 'a' }]));
    expect(readFileSync(join(root, 'etc/abs'), 'utf8')).toBe('a');
  });

  it('refuses ".." paths that climb out of the layer', async () => {
    await expect(apply(rawTar([{ name: '../escape', data: 'x' }]))).rejects.toThrow(LayerApplyError);
    await expect(apply(rawTar([{ name: 'a/../../escape', data: 'x' }]))).rejects.toThrow(/outside of the layer/);
    expect(existsSync(join(dir, 'escape'))).toBe(false);
  });

  it('refuses a relative symlink pointing out of the layer', async () => {
    await expect(apply(rawTar([{ name: 'evil', type: '2', linkname: '../../../../tmp' }, { name: 'evil/pwned', data: 'x' }]))).rejects.toThrow(/invalid symlink/);
  });

  it('resolves writes through an absolute symlink inside the layer, never on the host', async () => {
    const marker = join(dir, 'host-target');
    mkdirSync(marker);
    await apply(rawTar([{ name: 'root', type: '2', linkname: marker }, { name: 'root/pwned', data: 'x' }]));
    expect(existsSync(join(marker, 'pwned'))).toBe(false);
    expect(readFileSync(join(root, marker.slice(1), 'pwned'), 'utf8')).toBe('x');
  });

  it('refuses hardlinks to files outside the layer', async () => {
    await expect(apply(rawTar([{ name: 'h', type: '1', linkname: '../../etc/passwd' }]))).rejects.toThrow(/outside of the layer/);
    await expect(apply(rawTar([{ name: 'r', type: '2', linkname: '/' }, { name: 'h', type: '1', linkname: 'r/etc/passwd' }]))).rejects.toThrow(/not in the layer|does not exist/);
  });

  it('fails on truncated gzip', async () => {
    const gz = gzipSync(await layerTar(everything));
    await expect(apply(gz.subarray(0, gz.length - 20))).rejects.toThrow(/unexpected end of file|truncated/);
  });
});
