import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/** A frame as the server sent it (servers never mask). */
export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/**
 * A hand-driven websocket client over a unix socket, for tests that must send what a well-behaved
 * client library never would (unmasked frames, absurd lengths). It parses the server's frames.
 */
export class RawWebSocket {
  readonly frames: ServerFrame[] = [];
  ended = false;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.parse();
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** Connects and completes the opening handshake; throws with the answer when it is not a 101. */
  static async open(socketPath: string, path: string): Promise<RawWebSocket> {
    const socket = connect(socketPath);
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const head = await new Promise<{ text: string; rest: Buffer }>((resolve, reject) => {
      let acc = Buffer.alloc(0);
      const onData = (c: Buffer): void => {
        acc = Buffer.concat([acc, c]);
        const end = acc.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.pause();
        resolve({ text: acc.subarray(0, end).toString('latin1'), rest: acc.subarray(end + 4) });
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.once('close', () => reject(new Error(`closed during handshake: ${acc.toString('latin1')}`)));
    });
    if (!/^HTTP\/1\.1 101/.test(head.text)) {
      socket.destroy();
      throw new Error(`handshake refused: ${head.text}`);
    }
    const ws = new RawWebSocket(socket);
    if (head.rest.length > 0) socket.unshift(head.rest);
    socket.resume();
    return ws;
  }

  private parse(): void {
    for (;;) {
      if (this.buf.length < 2) return;
      let len = (this.buf[1] ?? 0) & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      this.frames.push({ opcode: (this.buf[0] ?? 0) & 0x0f, payload: Buffer.from(this.buf.subarray(off, off + len)) });
      this.buf = this.buf.subarray(off + len);
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until `check` holds (re-checked on every frame and at close), or fails after `timeoutMs`. */
  async until(check: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`websocket: ${what} not met within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The status code of the server's close frame, once one arrived. */
  get closeCode(): number | undefined {
    const f = this.frames.find((x) => x.opcode === 0x8);
    if (!f) return undefined;
    return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
  }

  /** Everything the server sent in data frames, as text. */
  get text(): string {
    return Buffer.concat(this.frames.filter((f) => f.opcode <= 0x2).map((f) => f.payload)).toString('utf8');
  }

  write(b: Buffer): boolean {
    return this.socket.write(b);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The header of a client frame; masked unless `mask` is false. `length` may be any 64-bit value. */
export function frameHeader(opcode: number, length: bigint, mask: Buffer | false): Buffer {
  const parts: Buffer[] = [];
  const m = mask ? 0x80 : 0;
  if (length < 126n) parts.push(Buffer.from([0x80 | opcode, m | Number(length)]));
  else if (length < 65536n) {
    const b = Buffer.alloc(4);
    b[0] = 0x80 | opcode;
    b[1] = m | 126;
    b.writeUInt16BE(Number(length), 2);
    parts.push(b);
  } else {
    const b = Buffer.alloc(10);
    b[0] = 0x80 | opcode;
    b[1] = m | 127;
    b.writeBigUInt64BE(length, 2);
    parts.push(b);
  }
  if (mask) parts.push(mask);
  return Buffer.concat(parts);
}

/** A complete client frame, masked as RFC 6455 requires unless `masked` is false. */
export function clientFrame(payload: Buffer, opts: { opcode?: number; masked?: boolean } = {}): Buffer {
  const masked = opts.masked ?? true;
  const mask = masked ? randomBytes(4) : false;
  const body = mask ? Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] ?? 0))) : payload;
  return Buffer.concat([frameHeader(opts.opcode ?? 0x2, BigInt(payload.length), mask), body]);
}
