import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { receiveContext } from '../../../src/build/context-upload.js';
import { layerTar } from '../../helpers/image-builder.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function work(): string {
  const d = mkdtempSync(join(tmpdir(), 'ctx-up-'));
  dirs.push(d);
  return d;
}

/** The tar in pieces of 4 KiB, as a socket delivers it. */
function body(buf: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < buf.length; i += 4096) pieces.push(buf.subarray(i, i + 4096));
  return Readable.from(pieces);
}

describe('build context upload', () => {
  const entries = async (): Promise<Buffer> =>
    layerTar([
      { path: 'big.bin', type: 'file', content: Buffer.alloc(64 * 1024, 7) },
      { path: 'sub', type: 'directory' },
      { path: 'sub/a.txt', type: 'file', content: 'a\n' },
      { path: '.dockerignore', type: 'file', content: 'x\n' },
      { path: 'Dockerfile', type: 'file', content: 'FROM scratch\n' },
    ]);

  it('finds the Dockerfile and .dockerignore as the tar streams in, and unpacks from memory without a spill file', async () => {
    const tar = await entries();
    const dir = work();
    let spilled = false;
    const ctx = await receiveContext(body(tar), 'Dockerfile', () => {
      spilled = true;
      return join(dir, 'spill');
    });
    expect(ctx.found).toEqual({ text: 'FROM scratch\n', name: 'Dockerfile', ignore: 'x\n' });
    expect(ctx.digest).toBe(createHash('sha256').update(tar).digest('hex'));
    expect(spilled).toBe(false);
    await ctx.unpack(join(dir, 'ctx'));
    expect(readFileSync(join(dir, 'ctx/sub/a.txt'), 'utf8')).toBe('a\n');
    expect(readFileSync(join(dir, 'ctx/big.bin')).length).toBe(64 * 1024);
  });

  it('spills a context larger than the memory limit to a file, unpacks it from there and removes it', async () => {
    const tar = await entries();
    const dir = work();
    const spill = join(dir, 'spill');
    const ctx = await receiveContext(body(gzipSync(tar)), 'Dockerfile', () => spill, 16 * 1024);
    expect(ctx.digest).toBe(createHash('sha256').update(tar).digest('hex'));
    expect(readFileSync(spill).equals(tar)).toBe(true);
    await ctx.unpack(join(dir, 'ctx'));
    expect(readFileSync(join(dir, 'ctx/big.bin')).equals(Buffer.alloc(64 * 1024, 7))).toBe(true);
    expect(existsSync(spill)).toBe(false);
  });

  it('leaves a Dockerfile that is a link to the unpacked tree, and refuses a path outside the context', async () => {
    const tar = await layerTar([
      { path: 'real', type: 'file', content: 'FROM scratch\n' },
      { path: 'Dockerfile', type: 'symlink', linkname: 'real' },
    ]);
    const ctx = await receiveContext(body(tar), 'Dockerfile', () => join(work(), 'spill'));
    expect(ctx.found).toBeUndefined();
    ctx.dispose();
    await expect(receiveContext(body(tar), '../Dockerfile', () => join(work(), 'spill'))).rejects.toThrow(/outside the build context/);
  });

  it('reports a broken tar as dockerd does', async () => {
    const tar = await entries();
    const bad = Buffer.from(tar);
    bad[148] = 0x31; // the first header's checksum
    await expect(receiveContext(body(bad), 'Dockerfile', () => join(work(), 'spill'))).rejects.toThrow(/failed to read the build context/);
  });
});
