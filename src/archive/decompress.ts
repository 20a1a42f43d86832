import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

export type Compression = 'none' | 'gzip' | 'zstd' | 'bzip2' | 'xz';

/** Docker's DetectCompression, by magic bytes. */
export function detectCompression(head: Buffer): Compression {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 3 && head.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (head.length >= 6 && head[0] === 0xfd && head.toString('latin1', 1, 6) === '7zXZ\0') return 'xz';
  return 'none';
}

/** The compression of a stored file, from its first bytes. */
export function detectFileCompression(path: string): Compression {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(6);
    const n = readSync(fd, head, 0, 6, 0);
    return detectCompression(head.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** Reads up to n bytes from the front of a stream and returns them with a stream that still yields everything. */
async function peek(source: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let len = 0;
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  while (len < n) {
    const r = await it.next();
    if (r.done) break;
    const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    chunks.push(c);
    len += c.length;
  }
  const head = Buffer.concat(chunks);
  const rest = async function* (): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  };
  return { head: head.subarray(0, n), stream: Readable.from(rest(), { objectMode: false }) };
}

/**
 * The uncompressed bytes of a layer or archive in any of the formats Docker accepts. gzip is decoded in
 * process; zstd, bzip2 and xz through the Debian tools of the same name (Node 20's zlib has no zstd).
 * Errors (truncated input, bad data) surface on the returned stream.
 */
export async function decompressStream(source: Readable): Promise<{ stream: Readable; compression: Compression }> {
  const { head, stream } = await peek(source, 6);
  const compression = detectCompression(head);
  switch (compression) {
    case 'none':
      return { stream, compression };
    case 'gzip': {
      // 256 KiB output chunks instead of zlib's 16 KiB: fewer thread-pool round trips and file writes per layer.
      const gunzip = createGunzip({ chunkSize: 256 * 1024 });
      stream.on('error', (e) => gunzip.destroy(e));
      // The consumer sees errors through its own listener; this one keeps an abandoned stream from crashing the daemon.
      gunzip.on('error', () => undefined);
      return { stream: stream.pipe(gunzip), compression };
    }
    default:
      return { stream: viaTool(compression, stream), compression };
  }
}

function viaTool(tool: 'zstd' | 'bzip2' | 'xz', input: Readable): Readable {
  const out = new PassThrough();
  out.on('error', () => undefined); // see decompressStream: consumers attach their own listener
  const child = spawn(tool, ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    if (stderr.length < 4096) stderr += b.toString('utf8');
  });
  child.on('error', (e) => {
    const err = (e as NodeJS.ErrnoException).code === 'ENOENT' ? new Error(`${tool}-compressed data needs the ${tool} tool, which is not installed`) : e;
    out.destroy(err);
  });
  pipeline(input, child.stdin).catch((e: unknown) => {
    // EPIPE when the tool exits early is reported through its exit status instead.
    if ((e as NodeJS.ErrnoException).code !== 'EPIPE') out.destroy(e as Error);
  });
  child.stdout.pipe(out, { end: false });
  let stdoutEnded = false;
  let exit: number | null | undefined;
  const finish = (): void => {
    if (!stdoutEnded || exit === undefined) return;
    if (exit === 0) out.end();
    else out.destroy(new Error(`${tool} decompression failed: ${stderr.trim().replace(/^\S+:\s*/, '') || `exit status ${exit}`}`));
  };
  child.stdout.on('end', () => {
    stdoutEnded = true;
    finish();
  });
  child.on('close', (code) => {
    exit = code;
    finish();
  });
  out.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return out;
}
