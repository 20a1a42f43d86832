import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ByteReader } from '../../../src/archive/byte-reader.js';
import { readTar } from '../../../src/archive/tar-reader.js';
import { layerTar } from '../../helpers/image-builder.js';

async function names(buf: Buffer, lenientEnd: boolean): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readTar(new ByteReader(Readable.from([buf])), { lenientEnd })) {
    let body = '';
    for await (const c of e.body) body += c.toString();
    out.push(`${e.header.name}=${body}`);
  }
  return out;
}

describe('tar reader: a build context cut after its last member (lenientEnd)', () => {
  it('accepts a stream that stops right after the last member\'s data (the docker CLI\'s -f outside the context)', async () => {
    const full = await layerTar([
      { path: 'a', type: 'file', content: 'one' },
      { path: '.dockerignore', type: 'file', content: 'x'.repeat(47) },
    ]);
    // header a (512) + data (512) + header (512) + 47 bytes, no padding, no end blocks
    const cut = full.subarray(0, 512 * 3 + 47);
    expect(await names(cut, true)).toEqual(['a=one', `.dockerignore=${'x'.repeat(47)}`]);
    await expect(names(cut, false)).rejects.toThrow(/truncated/);
    // a cut inside the data is still an error
    await expect(names(full.subarray(0, 512 * 3 + 20), true)).rejects.toThrow();
  });

  it('reads on past a skipped member whose data is a whole number of blocks', async () => {
    const full = await layerTar([
      { path: 'big', type: 'file', content: 'y'.repeat(1024) },
      { path: 'Dockerfile', type: 'file', content: 'FROM scratch\n' },
    ]);
    const seen: string[] = [];
    // the first member's body is not read: the reader skips it
    for await (const e of readTar(new ByteReader(Readable.from([full])), { lenientEnd: true })) seen.push(e.header.name);
    expect(seen).toEqual(['big', 'Dockerfile']);
  });
});
