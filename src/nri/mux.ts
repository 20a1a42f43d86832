import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

/**
 * NRI's connection multiplexer (containerd/nri pkg/net/multiplex): one unix connection between the runtime and a
 * plugin carries several logical connections, each a byte stream. On the wire every write is a frame: the logical
 * connection's ID (uint32, big-endian), the payload length (uint32, big-endian), then the payload. ID 0 is
 * reserved; NRI uses 1 for the plugin's ttrpc service (the runtime is its client) and 2 for the runtime's (the
 * plugin is the client). Frames for an ID nobody opened are dropped, as the Go side does.
 */
export const MUX_HEADER_LENGTH = 8;
export const PLUGIN_SERVICE_CONN = 1;
export const RUNTIME_SERVICE_CONN = 2;

/**
 * The largest frame payload Berth writes. The Go side reads a logical connection through ttrpc's bufio.Reader
 * (4096 bytes) and fails a read whose frame does not fit the buffer it is given; a frame of at most 4096 bytes
 * always fits (bufio reads either into its whole buffer or straight into a larger message buffer).
 */
export const MUX_MAX_WRITE = 4096;

/** Encodes one frame (no splitting). */
export function encodeMuxFrame(connId: number, payload: Buffer): Buffer {
  const hdr = Buffer.alloc(MUX_HEADER_LENGTH);
  hdr.writeUInt32BE(connId, 0);
  hdr.writeUInt32BE(payload.length, 4);
  return Buffer.concat([hdr, payload]);
}

/** Incremental frame parser: push bytes as they arrive, get the complete frames. */
export class MuxFrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { connId: number; payload: Buffer }[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: { connId: number; payload: Buffer }[] = [];
    while (this.buf.length >= MUX_HEADER_LENGTH) {
      const len = this.buf.readUInt32BE(4);
      if (this.buf.length < MUX_HEADER_LENGTH + len) break;
      out.push({ connId: this.buf.readUInt32BE(0), payload: this.buf.subarray(MUX_HEADER_LENGTH, MUX_HEADER_LENGTH + len) });
      this.buf = this.buf.subarray(MUX_HEADER_LENGTH + len);
    }
    return out;
  }
}

/** One logical connection: a byte stream ('data', 'close' events). */
export class MuxConn extends EventEmitter {
  closed = false;

  constructor(
    readonly id: number,
    private readonly mux: Mux,
  ) {
    super();
  }

  write(data: Buffer): void {
    if (this.closed) return;
    this.mux.write(this.id, data);
  }

  /** Ends the whole trunk: NRI has no per-connection close on the wire. */
  close(): void {
    this.mux.close();
  }

  /** @internal */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }
}

/** The runtime's end of a plugin connection, split into its logical connections. */
export class Mux extends EventEmitter {
  private readonly conns = new Map<number, MuxConn>();
  private readonly reader = new MuxFrameReader();
  private closed = false;

  constructor(private readonly trunk: Socket) {
    super();
    trunk.on('data', (chunk: Buffer) => {
      for (const f of this.reader.push(chunk)) this.conns.get(f.connId)?.emit('data', f.payload);
    });
    trunk.on('error', () => this.close());
    trunk.on('close', () => this.close());
  }

  open(id: number): MuxConn {
    if (id === 0) throw new Error('mux connection ID 0 is reserved');
    let c = this.conns.get(id);
    if (!c) {
      c = new MuxConn(id, this);
      this.conns.set(id, c);
    }
    return c;
  }

  write(id: number, data: Buffer): void {
    if (this.closed) return;
    if (data.length === 0) {
      this.trunk.write(encodeMuxFrame(id, data));
      return;
    }
    for (let off = 0; off < data.length; off += MUX_MAX_WRITE) this.trunk.write(encodeMuxFrame(id, data.subarray(off, off + MUX_MAX_WRITE)));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.trunk.destroy();
    for (const c of this.conns.values()) c.end();
    this.emit('close');
  }
}
