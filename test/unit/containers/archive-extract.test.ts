import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { absContainerPath, archiveBase, ArchiveExtractor, ArchiveOps, goFileMode } from '../../../src/containers/archive.js';
import { ConfinedRoot } from '../../../src/containers/confined-root.js';
import type { RootView } from '../../../src/containers/container-views.js';
import { TAR_END, tarHeader, tarPadding, type TarWriteHeader } from '../../../src/archive/tar-writer.js';
import { ByteReader } from '../../../src/archive/byte-reader.js';
import { readTar } from '../../../src/archive/tar-reader.js';

const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000 };

function tar(members: { h: Partial<TarWriteHeader> & { name: string; type: TarWriteHeader['type'] }; data?: string }[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = Buffer.from(m.data ?? '');
    parts.push(tarHeader({ ...base, ...m.h, size: data.length }), data, tarPadding(data.length));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

describe('archive paths and modes', () => {
  it('keeps a trailing slash or dot like PreserveTrailingDotOrSeparator', () => {
    expect(absContainerPath('etc')).toBe('/etc');
    expect(absContainerPath('/etc/')).toBe('/etc/');
    expect(absContainerPath('/etc/.')).toBe('/etc/.');
    expect(absContainerPath('/a/../b//c')).toBe('/b/c');
    expect(absContainerPath('/')).toBe('/');
    expect(archiveBase('/etc/')).toBe('etc');
    expect(archiveBase('/etc/.')).toBe('.');
    expect(archiveBase('/etc/passwd')).toBe('passwd');
  });

  it('maps Unix modes to Go FileMode bits', () => {
    expect(goFileMode({ mode: 0o040755 })).toBe(2147484141);
    expect(goFileMode({ mode: 0o100644 })).toBe(0o644);
    expect(goFileMode({ mode: 0o120777 })).toBe(2 ** 27 + 0o777);
    expect(goFileMode({ mode: 0o020620 })).toBe(2 ** 26 + 2 ** 21 + 0o620);
    expect(goFileMode({ mode: 0o104755 })).toBe(2 ** 23 + 0o755);
    expect(goFileMode({ mode: 0o041777 })).toBe(2 ** 31 + 2 ** 20 + 0o777);
  });
});

describe('archive extraction and reading inside a confined root', () => {
  let top: string;
  let rootDir: string;
  let view: RootView;

  beforeEach(() => {
    top = mkdtempSync(join(tmpdir(), 'berth-extract-'));
    rootDir = join(top, 'root');
    mkdirSync(join(rootDir, 'dest'), { recursive: true });
    mkdirSync(join(rootDir, 'ro-vol'), { recursive: true });
    symlinkSync(top, join(rootDir, 'dest/to-host'));
    const root = ConfinedRoot.open(rootDir);
    view = { root, virtual: new Set(['/proc']), kind: 'mounted', release: () => root.close() };
  });

  afterEach(() => {
    view.release();
    rmSync(top, { recursive: true, force: true });
  });

  const extract = async (body: Buffer, path = '/dest', o: Partial<{ noOverwriteDirNonDir: boolean; chown: { uid: number; gid: number } }> = {}): Promise<void> => {
    const mounts = [{ destination: '/ro-vol', rw: false }];
    const dest = ArchiveExtractor.prepare(view, path, 'c1', { mounts, readonlyRootfs: false });
    await new ArchiveExtractor(view.root, dest, { noOverwriteDirNonDir: o.noOverwriteDirNonDir ?? false, mounts, readonlyRootfs: false, ...(o.chown ? { chown: o.chown } : {}) }).extract(Readable.from([body]));
  };

  it('extracts files, directories, symlinks and hard links with their metadata', async () => {
    await extract(tar([
      { h: { name: 'd/', type: 'directory', mode: 0o750, uid: 12, gid: 34 } },
      { h: { name: 'd/f', type: 'file', mode: 0o640, uid: 5, gid: 6 }, data: 'content' },
      { h: { name: 'd/l', type: 'symlink', linkname: '/etc/passwd' } },
      { h: { name: 'd/h', type: 'link', linkname: 'd/f' } },
    ]));
    const st = statSync(join(rootDir, 'dest/d/f'));
    expect(readFileSync(join(rootDir, 'dest/d/f'), 'utf8')).toBe('content');
    expect([st.mode & 0o7777, st.uid, st.gid, st.nlink, st.mtimeMs]).toEqual([0o640, 5, 6, 2, 1_700_000_000_000]);
    const dst = statSync(join(rootDir, 'dest/d'));
    expect([dst.mode & 0o7777, dst.uid, dst.gid, dst.mtimeMs]).toEqual([0o750, 12, 34, 1_700_000_000_000]);
    expect(readlinkSync(join(rootDir, 'dest/d/l'))).toBe('/etc/passwd');
  });

  it('applies copyUIDGID ownership to every entry', async () => {
    await extract(tar([{ h: { name: 'f', type: 'file', uid: 5, gid: 6 }, data: 'x' }]), '/dest', { chown: { uid: 1000, gid: 1001 } });
    const st = lstatSync(join(rootDir, 'dest/f'));
    expect([st.uid, st.gid]).toEqual([1000, 1001]);
  });

  it('writes through a symlink to a host path only inside the root', async () => {
    await expect(extract(tar([{ h: { name: 'to-host/planted', type: 'file' }, data: 'x' }]))).rejects.toThrow(/missing directory/);
    expect(existsSync(join(top, 'planted'))).toBe(false);
    mkdirSync(join(rootDir, top), { recursive: true });
    await extract(tar([{ h: { name: 'to-host/planted', type: 'file' }, data: 'x' }]));
    expect(existsSync(join(top, 'planted'))).toBe(false);
    expect(readFileSync(join(rootDir, top, 'planted'), 'utf8')).toBe('x');
  });

  it('refuses entries that climb out of the extraction directory and writes nothing', async () => {
    await expect(extract(tar([{ h: { name: '../../escape', type: 'file' }, data: 'x' }]))).rejects.toThrow(/outside/);
    expect(existsSync(join(top, 'escape'))).toBe(false);
    expect(existsSync(join(rootDir, 'escape'))).toBe(false);
  });

  it('refuses to replace a directory by a file (and the reverse) with noOverwriteDirNonDir', async () => {
    mkdirSync(join(rootDir, 'dest/adir'));
    writeFileSync(join(rootDir, 'dest/afile'), 'old');
    await expect(extract(tar([{ h: { name: 'adir', type: 'file' }, data: 'x' }]), '/dest', { noOverwriteDirNonDir: true })).rejects.toThrow(/cannot overwrite directory/);
    await expect(extract(tar([{ h: { name: 'afile', type: 'directory' } }]), '/dest', { noOverwriteDirNonDir: true })).rejects.toThrow(/cannot overwrite non-directory/);
    await extract(tar([{ h: { name: 'afile', type: 'directory', mode: 0o755 } }]));
    expect(statSync(join(rootDir, 'dest/afile')).isDirectory()).toBe(true);
  });

  it('answers 403 for a read-only volume, 400 for a file and 404 for a missing target', () => {
    writeFileSync(join(rootDir, 'dest/file'), 'x');
    const prepare = (p: string): string => ArchiveExtractor.prepare(view, p, 'c1', { mounts: [{ destination: '/ro-vol', rw: false }], readonlyRootfs: false });
    expect(() => prepare('/ro-vol')).toThrow(/mounted volume is marked read-only/);
    expect(() => prepare('/dest/file')).toThrow(/extraction point is not a directory/);
    expect(() => prepare('/missing')).toThrow(/Could not find the file \/missing in container c1/);
    expect(() => ArchiveExtractor.prepare(view, '/dest', 'c1', { mounts: [], readonlyRootfs: true })).toThrow(/container rootfs is marked read-only/);
  });

  it('tars a path under its base name and a /. path as its contents', async () => {
    mkdirSync(join(rootDir, 'dest/t/sub'), { recursive: true });
    writeFileSync(join(rootDir, 'dest/t/sub/f'), 'hello');
    const names = async (p: string): Promise<string[]> => {
      const target = ArchiveOps.statPath(view, p, 'c1');
      const chunks: Buffer[] = [];
      for await (const c of ArchiveOps.tarOf(view, target)) chunks.push(c);
      const out: string[] = [];
      for await (const e of readTar(new ByteReader(Readable.from([Buffer.concat(chunks)])))) out.push(e.header.name);
      return out;
    };
    expect(await names('/dest/t')).toEqual(['t/', 't/sub/', 't/sub/f']);
    expect(await names('/dest/t/.')).toEqual(['./', './sub/', './sub/f']);
    expect(() => ArchiveOps.statPath(view, '/proc/1/environ', 'c1')).toThrow(/Could not find the file/);
  });
});
