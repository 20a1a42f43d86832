import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../../src/metadata/database.js';
import { LayerRepo } from '../../../src/metadata/layer-repo.js';
import { ContentStore, DigestMismatchError } from '../../../src/content/content-store.js';
import { chainIdOf, LayerDigestError, LayerStore } from '../../../src/snapshots/layer-store.js';
import { mountOverlay, unmount } from '../../../src/snapshots/overlay.js';
import { layerTar, type LayerEntry } from '../../helpers/image-builder.js';
import { sha256 } from '../archive/tar-fixtures.js';

const log = pino({ level: 'silent' });
let dir: string;
let db: Db;
let content: ContentStore;
const mounted: string[] = [];

function store(driver: 'overlay2' | 'vfs'): LayerStore {
  return new LayerStore(dir, driver, new LayerRepo(db), content, log);
}

async function blob(entries: LayerEntry[]) {
  const tar = await layerTar(entries);
  const info = content.put(tar);
  return { tar, blob: { ...info, mediaType: 'application/vnd.oci.image.layer.v1.tar' } };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-layers-'));
  db = openDatabase(join(dir, 'berth.db'), log);
  content = new ContentStore(dir);
});
afterEach(() => {
  for (const m of mounted.splice(0)) unmount(m);
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const l1: LayerEntry[] = [
  { path: 'keep', type: 'directory' },
  { path: 'keep/a', type: 'file', content: 'a' },
  { path: 'gone', type: 'directory' },
  { path: 'gone/x', type: 'file', content: 'x' },
  { path: 'opaque', type: 'directory' },
  { path: 'opaque/old', type: 'file', content: 'old' },
];
const l2: LayerEntry[] = [
  { path: '.wh.gone', type: 'file' },
  { path: 'opaque', type: 'directory' },
  { path: 'opaque/.wh..wh..opq', type: 'file' },
  { path: 'opaque/new', type: 'file', content: 'new' },
  { path: 'keep/b', type: 'file', content: 'b' },
  { path: 'keep/hard', type: 'link', linkname: 'keep/b' },
];
const l3: LayerEntry[] = [
  { path: 'keep/fifo', type: 'fifo' },
  { path: 'keep/suid', type: 'file', mode: 0o4755, content: 's' },
  { path: 'keep/sym', type: 'symlink', linkname: 'a' },
];

describe('ContentStore', () => {
  it('stores blobs by digest and refuses a stream whose digest does not match, leaving nothing', async () => {
    const info = await content.write(Readable.from([Buffer.from('hello')]));
    expect(info.digest).toBe(sha256(Buffer.from('hello')));
    expect(content.read(info.digest).toString()).toBe('hello');
    await expect(content.write(Readable.from([Buffer.from('evil')]), info.digest.replace(/.$/, '0'))).rejects.toThrow(DigestMismatchError);
    expect(content.list()).toEqual([info.digest]);
    expect(readdirSync(join(dir, 'blobs', 'tmp'))).toEqual([]);
  });
});

describe('LayerStore', () => {
  for (const driver of ['overlay2', 'vfs'] as const) {
    it(`${driver}: a three-layer chain with whiteouts shows exactly the right files in its merged view`, async () => {
      const s = store(driver);
      const holder = 'tmp:test';
      const b1 = await blob(l1);
      const b2 = await blob(l2);
      const b3 = await blob(l3);
      const r1 = await s.registerBlob(null, b1.blob, sha256(b1.tar), holder);
      const r2 = await s.registerBlob(r1.chainId, b2.blob, sha256(b2.tar), holder);
      const r3 = await s.registerBlob(r2.chainId, b3.blob, sha256(b3.tar), holder);
      expect(r1.chainId).toBe(sha256(b1.tar));
      expect(r3.chainId).toBe(chainIdOf(chainIdOf(sha256(b1.tar), sha256(b2.tar)), sha256(b3.tar)));
      let view: string;
      if (driver === 'overlay2') {
        view = join(dir, 'merged');
        mountOverlay(view, { lower: s.lowerDirs(r3.chainId) });
        mounted.push(view);
        expect(s.lowerDirs(r3.chainId)).toEqual([r3.dir, r2.dir, r1.dir]);
      } else {
        view = r3.dir;
        expect(s.lowerDirs(r3.chainId)).toEqual([r3.dir]);
      }
      expect(readdirSync(view).sort()).toEqual(['keep', 'opaque']);
      expect(readdirSync(join(view, 'opaque'))).toEqual(['new']);
      expect(readdirSync(join(view, 'keep')).sort()).toEqual(['a', 'b', 'fifo', 'hard', 'suid', 'sym']);
      expect(lstatSync(join(view, 'keep/fifo')).isFIFO()).toBe(true);
      expect(lstatSync(join(view, 'keep/suid')).mode & 0o7777).toBe(0o4755);
      expect(lstatSync(join(view, 'keep/sym')).isSymbolicLink()).toBe(true);
      expect(readFileSync(join(view, 'keep/hard'), 'utf8')).toBe('b');
      expect(lstatSync(join(view, 'keep/hard')).ino).toBe(lstatSync(join(view, 'keep/b')).ino);
    });
  }

  it('extracts a layer once and keeps shared layers while anything uses them', async () => {
    const s = store('overlay2');
    const b1 = await blob(l1);
    const a = await s.registerBlob(null, b1.blob, sha256(b1.tar), 'img-a');
    writeFileSync(join(a.dir, 'marker'), '');
    const b = await s.registerBlob(null, b1.blob, sha256(b1.tar), 'img-b');
    expect(b.chainId).toBe(a.chainId);
    expect(existsSync(join(b.dir, 'marker'))).toBe(true); // not re-extracted
    s.release('img-a');
    expect(s.has(a.chainId)).toBe(true);
    s.release('img-b');
    expect(s.has(a.chainId)).toBe(false);
    expect(existsSync(s.layerDir(a.chainId))).toBe(false);
    expect(content.has(b1.blob.digest)).toBe(false);
  });

  it('a child layer keeps its parent alive', async () => {
    const s = store('overlay2');
    const b1 = await blob(l1);
    const b2 = await blob(l2);
    const r1 = await s.registerBlob(null, b1.blob, sha256(b1.tar), 'h1');
    const r2 = await s.registerBlob(r1.chainId, b2.blob, sha256(b2.tar), 'h2');
    s.release('h1');
    expect(s.has(r1.chainId)).toBe(true);
    s.release('h2');
    expect(s.has(r2.chainId)).toBe(false);
    expect(s.has(r1.chainId)).toBe(false);
  });

  it('a diff ID mismatch fails and leaves no directory or record behind', async () => {
    const s = store('overlay2');
    const b1 = await blob(l1);
    await expect(s.registerBlob(null, b1.blob, sha256(Buffer.from('other')), 'h')).rejects.toThrow(LayerDigestError);
    expect(readdirSync(s.root)).toEqual(['l']);
    expect(new LayerRepo(db).all()).toEqual([]);
  });

  it('start-up cleanup drops temp holds, orphan directories and unreferenced layers', async () => {
    const s = store('overlay2');
    const b1 = await blob(l1);
    const r1 = await s.registerBlob(null, b1.blob, sha256(b1.tar), 'tmp:load:x');
    const kept = await s.registerBlob(null, (await blob(l3)).blob, undefined, 'container-1');
    writeFileSync(join(s.root, 'tmp-deadbeef'), '');
    s.cleanup();
    expect(s.has(r1.chainId)).toBe(false);
    expect(s.has(kept.chainId)).toBe(true);
    expect(readdirSync(s.root).sort()).toEqual([kept.chainId.slice(7), 'l'].sort());
  });
});
