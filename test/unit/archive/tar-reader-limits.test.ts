import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ByteReader } from '../../../src/archive/byte-reader.js';
import { MAX_SPECIAL_HEADER_BYTES, readTar, type TarHeader } from '../../../src/archive/tar-reader.js';
import { paxRecords, rawTar, specialHeader } from './tar-fixtures.js';

async function headers(source: Readable | Buffer): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  for await (const e of readTar(new ByteReader(Buffer.isBuffer(source) ? Readable.from([source]) : source))) {
    await e.drain();
    out.push(e.header);
  }
  return out;
}

const member = (name: string, data = ''): Buffer => rawTar([{ name, data }]).subarray(0, -1024);
const END = Buffer.alloc(1024);

describe('readTar: extended headers are bounded', () => {
  it('lets a second x header replace the first, as Go does', async () => {
    const tar = Buffer.concat([
      specialHeader('x', paxRecords({ path: 'from-first', 'SCHILY.xattr.user.a': '1' })),
      specialHeader('x', paxRecords({ 'SCHILY.xattr.user.b': '2' })),
      member('plain', 'hi'),
      END,
    ]);
    const [h] = await headers(tar);
    expect(h?.name).toBe('plain');
    expect([...(h?.xattrs.keys() ?? [])]).toEqual(['user.b']);
  });

  it('lets a g header replace the global records instead of adding to a copy of them', async () => {
    const tar = Buffer.concat([
      specialHeader('g', paxRecords({ 'SCHILY.xattr.user.g1': '1' })),
      member('one'),
      specialHeader('g', paxRecords({ 'SCHILY.xattr.user.g2': '2' })),
      member('two'),
      END,
    ]);
    const [one, two] = await headers(tar);
    expect([...(one?.xattrs.keys() ?? [])]).toEqual(['user.g1']);
    expect([...(two?.xattrs.keys() ?? [])]).toEqual(['user.g2']);
  });

  it('refuses a single extended header over 1 MiB', async () => {
    const tar = Buffer.concat([specialHeader('x', paxRecords({ comment: 'x'.repeat(MAX_SPECIAL_HEADER_BYTES) })), member('f'), END]);
    await expect(headers(tar)).rejects.toThrow(/header field too long/);
  });

  it('refuses an endless run of extended headers before it has buffered them', async () => {
    // 4096 x headers of 512 KiB, each with a new key: 2 GiB if read to the end, generated as it is read.
    const value = 'v'.repeat(512 * 1024 - 64);
    let sent = 0;
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < 4096; i++) {
          sent++;
          yield specialHeader('x', paxRecords({ [`SCHILY.xattr.user.k${i}`]: value }));
        }
        yield member('f');
        yield END;
      })(),
    );
    const before = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    await expect(headers(source)).rejects.toThrow(/extended headers before one entry/);
    const after = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    expect(sent).toBeLessThan(64);
    expect(after - before).toBeLessThan(64 * 1024 * 1024);
  });
});
