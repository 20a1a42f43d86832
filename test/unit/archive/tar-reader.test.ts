import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ByteReader } from '../../../src/archive/byte-reader.js';
import { readTar, type TarHeader } from '../../../src/archive/tar-reader.js';
import { layerTar } from '../../helpers/image-builder.js';
import { rawTar } from './tar-fixtures.js';

async function list(data: Buffer, chunk = 700): Promise<{ header: TarHeader; body: string }[]> {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) pieces.push(data.subarray(i, i + chunk));
  const out: { header: TarHeader; body: string }[] = [];
  for await (const e of readTar(new ByteReader(Readable.from(pieces)))) {
    const bufs: Buffer[] = [];
    for await (const c of e.body) bufs.push(c);
    out.push({ header: e.header, body: Buffer.concat(bufs).toString() });
  }
  return out;
}

describe('readTar', () => {
  it('reads every entry type with modes, owners and contents across chunk boundaries', async () => {
    const tar = await layerTar([
      { path: 'd', type: 'directory', mode: 0o1777, uid: 5, gid: 6 },
      { path: 'd/f', type: 'file', mode: 0o4755, content: 'x'.repeat(1000) },
      { path: 'd/l', type: 'symlink', linkname: '/bin/busybox' },
      { path: 'd/h', type: 'link', linkname: 'd/f' },
      { path: 'p', type: 'fifo' },
      { path: 'c', type: 'character-device', devmajor: 1, devminor: 3 },
    ]);
    const got = await list(tar, 333);
    expect(got.map((e) => [e.header.name, e.header.type])).toEqual([
      ['d/', 'directory'],
      ['d/f', 'file'],
      ['d/l', 'symlink'],
      ['d/h', 'link'],
      ['p', 'fifo'],
      ['c', 'character-device'],
    ]);
    expect(got[0]?.header.mode).toBe(0o1777);
    expect(got[0]?.header.uid).toBe(5);
    expect(got[1]?.header.mode).toBe(0o4755);
    expect(got[1]?.body).toBe('x'.repeat(1000));
    expect(got[2]?.header.linkname).toBe('/bin/busybox');
    expect(got[5]?.header.devminor).toBe(3);
  });

  it('keeps binary PAX xattr values byte for byte and applies PAX path and mtime', async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0xfe, 0x80, 0x00]);
    const long = `${'a'.repeat(120)}/file`;
    const got = await list(rawTar([{ name: 'ignored', data: 'hi', pax: { path: long, mtime: '1700000000.5', 'SCHILY.xattr.security.capability': cap } }]));
    expect(got[0]?.header.name).toBe(long);
    expect(got[0]?.header.mtime).toBe(1700000000.5);
    expect(got[0]?.header.xattrs.get('security.capability')).toEqual(cap);
    expect(got[0]?.body).toBe('hi');
  });

  it('lets a consumer skip bodies without desynchronising', async () => {
    const tar = await layerTar([
      { path: 'a', type: 'file', content: 'A'.repeat(5000) },
      { path: 'b', type: 'file', content: 'B' },
    ]);
    const names: string[] = [];
    for await (const e of readTar(new ByteReader(Readable.from([tar])))) names.push(e.header.name);
    expect(names).toEqual(['a', 'b']);
  });

  it('fails on a truncated archive', async () => {
    const tar = await layerTar([{ path: 'a', type: 'file', content: 'A'.repeat(5000) }]);
    await expect(list(tar.subarray(0, 2000))).rejects.toThrow(/truncated/);
  });

  it('fails on a corrupt header', async () => {
    const tar = await layerTar([{ path: 'a', type: 'file', content: 'A' }, { path: 'b', type: 'file', content: 'B' }]);
    tar[1024 + 3] ^= 0xff; // the second header's name
    await expect(list(tar)).rejects.toThrow(/invalid tar header/);
  });

  it('reads an empty stream as an empty archive', async () => {
    expect(await list(Buffer.alloc(0))).toEqual([]);
  });
});
