import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';

/** RFC 6455 handshake answer for a client key. */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** One server→client frame (unmasked); binary unless `opcode` says otherwise. */
export function encodeFrame(payload: Buffer, opcode = 0x2): Buffer {
  const len = payload.length;
  let header: Buffer;
  if (len < 126) {
    header = Buffer.from([0x80 | opcode, len]);
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([header, payload]);
}

export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Incremental decoder for client→server frames (masked, as clients must send them). */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buf.length < 2) break;
      const b0 = this.buf[0] ?? 0;
      const b1 = this.buf[1] ?? 0;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) break;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) break;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (this.buf.length < need) break;
      const mask = masked ? this.buf.subarray(off, off + 4) : undefined;
      const payload = Buffer.from(this.buf.subarray(off + (masked ? 4 : 0), need));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (mask[i % 4] ?? 0);
      frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload });
      this.buf = this.buf.subarray(need);
    }
    return frames;
  }
}

/** Reads data frames as a byte stream; answers pings, ends on close. */
export function onWebsocketData(socket: Duplex, onData: (b: Buffer) => void, onEnd: () => void): void {
  const decoder = new FrameDecoder();
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (f.opcode === 0x8) {
        socket.write(encodeFrame(Buffer.alloc(0), 0x8));
        onEnd();
        return;
      }
      if (f.opcode === 0x9) socket.write(encodeFrame(f.payload, 0xa));
      else if (f.opcode <= 0x2) onData(f.payload);
    }
  });
  socket.on('end', onEnd);
}
