import { closeSync, readdirSync, chownSync, chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { openDirNoFollow } from '../../../src/util/fd-fs.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfinedRoot, rootfsReader } from '../../../src/containers/confined-root.js';
import { copyTree, copyUpIfEmpty as copyUp, type RootfsReader } from '../../../src/volumes/copy-up.js';

/** copy-up from the host directory `src` (as the root of an image whose VOLUME is `/`). */
async function copyUpIfEmpty(dst: string, src: string): Promise<boolean> {
  let opened: RootfsReader | undefined;
  const open = (): RootfsReader => {
    const root = ConfinedRoot.open(dirname(src));
    opened = rootfsReader(root, dirname(src), () => root.close());
    return opened;
  };
  try {
    return await copyUp(dst, open, `/${basename(src)}`);
  } finally {
    opened?.release();
  }
}

describe('copy-up into a new volume', () => {
  let dir: string;
  let src: string;
  let dst: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-copyup-'));
    src = join(dir, 'image', 'var', 'www');
    dst = join(dir, 'vol', '_data');
    mkdirSync(src, { recursive: true });
    mkdirSync(dst, { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps owners, modes (setuid included), symlinks, hard links and mtimes', async () => {
    const isRoot = process.getuid?.() === 0;
    mkdirSync(join(src, 'sub'));
    writeFileSync(join(src, 'sub', 'index.html'), 'hello');
    writeFileSync(join(src, 'tool'), '#!/bin/sh\n');
    if (isRoot) chownSync(join(src, 'tool'), 1000, 1001);
    chmodSync(join(src, 'tool'), 0o4755);
    chmodSync(join(src, 'sub'), 0o750);
    if (isRoot) chownSync(join(src, 'sub'), 33, 33);
    symlinkSync('sub/index.html', join(src, 'link'));
    linkSync(join(src, 'sub', 'index.html'), join(src, 'hard'));
    utimesSync(join(src, 'sub', 'index.html'), new Date(1_600_000_000_000), new Date(1_600_000_000_000));
    utimesSync(join(src, 'sub'), new Date(1_500_000_000_000), new Date(1_500_000_000_000));
    chmodSync(src, 0o711);
    if (isRoot) chownSync(src, 33, 34);

    expect(await copyUpIfEmpty(dst, src)).toBe(true);

    expect(readFileSync(join(dst, 'sub', 'index.html'), 'utf8')).toBe('hello');
    expect(statSync(join(dst, 'tool')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(dst, 'sub')).mode & 0o7777).toBe(0o750);
    expect(statSync(join(dst, 'sub')).mtimeMs).toBe(1_500_000_000_000);
    expect(statSync(join(dst, 'sub', 'index.html')).mtimeMs).toBe(1_600_000_000_000);
    expect(lstatSync(join(dst, 'link')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dst, 'link'))).toBe('sub/index.html');
    expect(statSync(join(dst, 'hard')).ino).toBe(statSync(join(dst, 'sub', 'index.html')).ino);
    // The volume root takes the source directory's mode and owner.
    expect(statSync(dst).mode & 0o7777).toBe(0o711);
    if (isRoot) {
      expect(statSync(join(dst, 'tool'))).toMatchObject({ uid: 1000, gid: 1001 });
      expect(statSync(join(dst, 'sub'))).toMatchObject({ uid: 33, gid: 33 });
      expect(statSync(dst)).toMatchObject({ uid: 33, gid: 34 });
    }
  });

  it('does not copy into a volume that already has content', async () => {
    writeFileSync(join(src, 'new'), 'x');
    writeFileSync(join(dst, 'old'), 'y');
    expect(await copyUpIfEmpty(dst, src)).toBe(false);
    expect(() => statSync(join(dst, 'new'))).toThrow();
  });

  it('does nothing when the image has no such directory, or a file there', async () => {
    expect(await copyUpIfEmpty(dst, join(dir, 'missing'))).toBe(false);
    writeFileSync(join(dir, 'file'), 'x');
    expect(await copyUpIfEmpty(dst, join(dir, 'file'))).toBe(false);
  });

  it('copies a symlink pointing outside as a link, never following it', async () => {
    symlinkSync('/etc/passwd', join(src, 'escape'));
    await copyUpIfEmpty(dst, src);
    expect(lstatSync(join(dst, 'escape')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dst, 'escape'))).toBe('/etc/passwd');
  });

  it('resolves a symlinked VOLUME path inside the root, never on the host', async () => {
    // <dir>/image/data -> /etc: inside the root that is <dir>/image/etc, not the host's /etc.
    mkdirSync(join(dir, 'image', 'etc'));
    writeFileSync(join(dir, 'image', 'etc', 'image-file'), 'mine');
    symlinkSync('/etc', join(dir, 'image', 'data'));
    expect(await copyUpIfEmpty(dst, join(dir, 'image', 'data'))).toBe(true);
    expect(readdirSync(dst)).toEqual(['image-file']);
    rmSync(join(dir, 'image', 'etc'), { recursive: true });
    rmSync(dst, { recursive: true });
    mkdirSync(dst);
    expect(await copyUpIfEmpty(dst, join(dir, 'image', 'data'))).toBe(false);
    expect(readdirSync(dst)).toEqual([]);
  });

  it('fails instead of writing through a symlink that replaced a destination directory', async () => {
    mkdirSync(join(src, 'sub'));
    writeFileSync(join(src, 'sub', 'f'), 'x');
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    // What a racer leaves between berthd's mkdir and its open: the name is a symlink to a host directory.
    symlinkSync(outside, join(dst, 'sub'));
    const dstFd = openDirNoFollow(dst);
    const srcFd = openDirNoFollow(src);
    try {
      await expect(copyTree(srcFd, dstFd)).rejects.toThrow(/ELOOP|ENOTDIR/);
    } finally {
      closeSync(dstFd);
      closeSync(srcFd);
    }
    expect(readdirSync(outside)).toEqual([]);
  });
});
