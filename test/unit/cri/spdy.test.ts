import { createHash } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { SpdySession, parseHeaderBlock, spdyDictionary, type SpdyStream } from '../../../src/cri/spdy.js';

const dir = mkdtempSync(join(tmpdir(), 'spdy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function headerBlock(h: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  parts.push(u32(Object.keys(h).length));
  for (const [k, v] of Object.entries(h)) parts.push(u32(k.length), Buffer.from(k), u32(v.length), Buffer.from(v));
  return Buffer.concat(parts);
}

/** A minimal SPDY/3 client: SYN_STREAM with a compressed header block, DATA frames, frame reader. */
class Client {
  private readonly deflate = zlib.createDeflate({ dictionary: spdyDictionary() });
  private readonly inflate = zlib.createInflate({ dictionary: spdyDictionary() });
  private buf = Buffer.alloc(0);
  readonly frames: { control: boolean; type?: number; id: number; flags: number; body: Buffer }[] = [];

  constructor(readonly sock: Socket) {
    sock.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b]);
      while (this.buf.length >= 8) {
        const len = this.buf.readUIntBE(5, 3);
        if (this.buf.length < 8 + len) break;
        const f = this.buf.subarray(0, 8 + len);
        this.buf = this.buf.subarray(8 + len);
        const control = (f.readUInt16BE(0) & 0x8000) !== 0;
        const body = f.subarray(8);
        this.frames.push(control ? { control, type: f.readUInt16BE(2), id: body.readUInt32BE(0) & 0x7fffffff, flags: f[4] ?? 0, body } : { control, id: f.readUInt32BE(0), flags: f[4] ?? 0, body });
      }
    });
  }

  async syn(id: number, headers: Record<string, string>, fin = false): Promise<void> {
    const block = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const on = (c: Buffer): void => {
        chunks.push(c);
      };
      this.deflate.on('data', on);
      this.deflate.write(headerBlock(headers));
      this.deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.deflate.off('data', on);
        resolve(Buffer.concat(chunks));
      });
    });
    const body = Buffer.alloc(10);
    body.writeUInt32BE(id, 0);
    const head = Buffer.alloc(8);
    head.writeUInt16BE(0x8003, 0);
    head.writeUInt16BE(1, 2);
    head[4] = fin ? 1 : 0;
    head.writeUIntBE(body.length + block.length, 5, 3);
    this.sock.write(Buffer.concat([head, body, block]));
  }

  data(id: number, data: Buffer, fin = false): void {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(id, 0);
    head[4] = fin ? 1 : 0;
    head.writeUIntBE(data.length, 5, 3);
    this.sock.write(Buffer.concat([head, data]));
  }

  async replyHeaders(body: Buffer): Promise<Record<string, string>> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      const on = (c: Buffer): void => {
        chunks.push(c);
      };
      this.inflate.on('data', on);
      this.inflate.write(body.subarray(4));
      this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.inflate.off('data', on);
        resolve(parseHeaderBlock(Buffer.concat(chunks)));
      });
    });
  }
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('SPDY/3.1 server session', () => {
  it("builds the spec's header dictionary", () => {
    const d = spdyDictionary();
    expect(d.length).toBe(1423);
    expect(createHash('sha256').update(d).digest('hex')).toBe('51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02');
  });

  it('answers streams with SYN_REPLY, delivers data and FIN both ways, echoes PING', async () => {
    const path = join(dir, 's.sock');
    const streams: SpdyStream[] = [];
    const got: string[] = [];
    const server = createServer((sock) => {
      const session = new SpdySession(sock);
      session.on('stream', (s: SpdyStream) => {
        streams.push(s);
        s.on('data', (b: Buffer) => got.push(`${s.headers.streamtype}:${b.toString()}`));
        s.on('end', () => {
          got.push(`${s.headers.streamtype}:FIN`);
          s.write(Buffer.from('bye'));
          s.end();
        });
      });
    });
    await new Promise<void>((r) => server.listen(path, () => r()));
    const sock = connect(path);
    const c = new Client(sock);
    await c.syn(1, { streamtype: 'stdin', port: '80' });
    await c.syn(3, { streamtype: 'error' });
    await until(() => c.frames.filter((f) => f.control && f.type === 2).length === 2);
    const replies = c.frames.filter((f) => f.control && f.type === 2);
    expect(replies.map((f) => f.id)).toEqual([1, 3]);
    expect(await c.replyHeaders(replies[0]?.body ?? Buffer.alloc(0))).toEqual({});
    expect(streams.map((s) => s.headers)).toEqual([{ streamtype: 'stdin', port: '80' }, { streamtype: 'error' }]);
    c.data(1, Buffer.from('hello'));
    c.data(1, Buffer.alloc(0), true);
    await until(() => c.frames.some((f) => !f.control && f.id === 1 && (f.flags & 1) === 1));
    expect(got).toEqual(['stdin:hello', 'stdin:FIN']);
    const data = c.frames.filter((f) => !f.control && f.id === 1);
    expect(Buffer.concat(data.map((f) => f.body)).toString()).toBe('bye');
    // PING is echoed with its id
    const ping = Buffer.from([0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 7]);
    sock.write(ping);
    await until(() => c.frames.some((f) => f.control && f.type === 6));
    expect(c.frames.find((f) => f.control && f.type === 6)?.id).toBe(7);
    sock.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
});
