import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ByteReader } from '../../../src/archive/byte-reader.js';
import { readTar } from '../../../src/archive/tar-reader.js';
import { TAR_END, tarHeader, tarPadding, type TarWriteHeader } from '../../../src/archive/tar-writer.js';

function archive(members: { h: TarWriteHeader; data?: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    parts.push(tarHeader({ ...m.h, size: m.data?.length ?? 0 }));
    if (m.data) parts.push(m.data, tarPadding(m.data.length));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

async function readBack(buf: Buffer): Promise<{ name: string; type: string; linkname: string; content: string; mode: number; uid: number; xattrs: Map<string, Buffer>; mtime: number }[]> {
  const out = [];
  for await (const e of readTar(new ByteReader(Readable.from([buf])))) {
    const chunks: Buffer[] = [];
    for await (const c of e.body) chunks.push(c);
    out.push({ name: e.header.name, type: e.header.type, linkname: e.header.linkname, content: Buffer.concat(chunks).toString(), mode: e.header.mode, uid: e.header.uid, xattrs: e.header.xattrs, mtime: e.header.mtime });
  }
  return out;
}

const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000 };

describe('tar writer', () => {
  it('writes ustar members that the tar reader and GNU tar read back', async () => {
    const buf = archive([
      { h: { ...base, name: 'dir/', type: 'directory', mode: 0o755 } },
      { h: { ...base, name: 'dir/file.txt', type: 'file', uid: 1000 }, data: Buffer.from('hello\n') },
      { h: { ...base, name: 'dir/link', type: 'symlink', linkname: 'file.txt' } },
      { h: { ...base, name: 'dir/hard', type: 'link', linkname: 'dir/file.txt' } },
    ]);
    expect(buf.length % 512).toBe(0);
    const back = await readBack(buf);
    expect(back.map((e) => [e.name, e.type, e.linkname, e.content])).toEqual([
      ['dir/', 'directory', '', ''],
      ['dir/file.txt', 'file', '', 'hello\n'],
      ['dir/link', 'symlink', 'file.txt', ''],
      ['dir/hard', 'link', 'dir/file.txt', ''],
    ]);
    expect(back[1]?.uid).toBe(1000);
    const dir = mkdtempSync(join(tmpdir(), 'berth-tarw-'));
    try {
      writeFileSync(join(dir, 'a.tar'), buf);
      expect(execFileSync('tar', ['-tvf', join(dir, 'a.tar')], { encoding: 'utf8' })).toContain('dir/link -> file.txt');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses the ustar prefix or a PAX record for long names and link targets', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(90)}`;
    const veryLong = `${'x'.repeat(150)}/${'y'.repeat(150)}`;
    const target = `/${'t'.repeat(200)}`;
    const back = await readBack(archive([
      { h: { ...base, name: long, type: 'file' }, data: Buffer.from('a') },
      { h: { ...base, name: veryLong, type: 'file' }, data: Buffer.from('b') },
      { h: { ...base, name: 'l', type: 'symlink', linkname: target } },
    ]));
    expect(back.map((e) => e.name)).toEqual([long, veryLong, 'l']);
    expect(back[2]?.linkname).toBe(target);
  });

  it('carries binary xattrs and sub-second mtimes in PAX records', async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0x0a]);
    const back = await readBack(archive([{ h: { ...base, name: 'ping', type: 'file', mtime: 1_700_000_000.5, xattrs: new Map([['security.capability', cap]]) }, data: Buffer.from('x') }]));
    expect(back[0]?.xattrs.get('security.capability')).toEqual(cap);
    expect(back[0]?.mtime).toBe(1_700_000_000.5);
    expect(back[0]?.content).toBe('x');
  });
});
