import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import zlib from 'node:zlib';

// The server side of SPDY/3.1 framing as Kubernetes' streaming clients (moby/spdystream) speak it: the client
// opens streams (SYN_STREAM with a header block), the server answers each with SYN_REPLY, data flows in DATA
// frames, FIN half-closes. Header blocks are zlib-compressed with the SPDY/3 dictionary, one compression
// context per direction for the whole session. spdystream does no flow control, so WINDOW_UPDATE is ignored.

const CONTROL = 0x8000;
const VERSION = 3;
const TYPE = { SYN_STREAM: 1, SYN_REPLY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, HEADERS: 8, WINDOW_UPDATE: 9 } as const;
const FLAG_FIN = 0x01;
const MAX_DATA = 0xffffff;

/** The SPDY/3 header-compression dictionary (spec section 2.6.10.1): length-prefixed header words, then a string. */
const DICTIONARY = ((): Buffer => {
  const words = [
    'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding', 'accept-language',
    'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection', 'content-base', 'content-encoding',
    'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'etag',
    'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
    'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer',
    'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning',
    'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
  ];
  const tail =
    '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
    '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden' +
    '404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
    'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
    'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,' +
    'publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';
  const parts: Buffer[] = [];
  for (const w of words) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(w.length);
    parts.push(len, Buffer.from(w, 'latin1'));
  }
  parts.push(Buffer.from(tail, 'latin1'));
  return Buffer.concat(parts);
})();

/** The dictionary (for tests: its digest is the spec's). */
export function spdyDictionary(): Buffer {
  return Buffer.from(DICTIONARY);
}

/** One stream the client opened. Emits 'data' (Buffer), 'end' (client FIN), 'reset'. */
export class SpdyStream extends EventEmitter {
  ended = false;
  finished = false;
  closed = false;

  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: Record<string, string>,
  ) {
    super();
  }

  /** Sends bytes to the client on this stream. */
  write(data: Buffer): void {
    if (this.finished || this.closed) return;
    for (let off = 0; off < data.length || (data.length === 0 && off === 0); off += MAX_DATA) {
      this.session.sendData(this.id, data.subarray(off, off + MAX_DATA), 0);
      if (data.length === 0) break;
    }
  }

  /** Half-closes the server side (FIN). */
  end(): void {
    if (this.finished || this.closed) return;
    this.finished = true;
    this.session.sendData(this.id, Buffer.alloc(0), FLAG_FIN);
  }
}

/**
 * A SPDY/3.1 session over an upgraded connection, server role. Emits 'stream' (SpdyStream) for each
 * SYN_STREAM after answering it, and 'close'.
 */
export class SpdySession extends EventEmitter {
  private buf: Buffer = Buffer.alloc(0);
  private readonly streams = new Map<number, SpdyStream>();
  private readonly inflate = zlib.createInflate({ dictionary: DICTIONARY });
  private readonly deflate = zlib.createDeflate({ dictionary: DICTIONARY });
  private inflateQueue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly socket: Duplex) {
    super();
    socket.on('data', (b: Buffer) => {
      this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
      this.parse();
    });
    socket.on('close', () => this.shutdown());
    socket.on('end', () => this.shutdown());
    socket.on('error', () => this.shutdown());
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) {
      s.closed = true;
      if (!s.ended) {
        s.ended = true;
        s.emit('end');
      }
      s.emit('reset');
    }
    this.inflate.close();
    this.deflate.close();
    this.emit('close');
  }

  /** Ends the session: GOAWAY, then the connection once the output is flushed. */
  close(): void {
    if (this.closed) return;
    const body = Buffer.alloc(8);
    body.writeUInt32BE(0, 0);
    body.writeUInt32BE(0, 4);
    this.sendControl(TYPE.GOAWAY, 0, body);
    this.socket.end();
  }

  private parse(): void {
    while (this.buf.length >= 8) {
      const len = this.buf.readUIntBE(5, 3);
      if (this.buf.length < 8 + len) return;
      const frame = this.buf.subarray(0, 8 + len);
      this.buf = this.buf.subarray(8 + len);
      const first = frame.readUInt16BE(0);
      const flags = frame[4] ?? 0;
      const body = frame.subarray(8);
      if (first & CONTROL) this.onControl(frame.readUInt16BE(2), flags, body);
      else this.onData(frame.readUInt32BE(0) & 0x7fffffff, flags, body);
    }
  }

  private onData(id: number, flags: number, body: Buffer): void {
    const s = this.streams.get(id);
    if (!s) return;
    if (body.length > 0) s.emit('data', Buffer.from(body));
    if (flags & FLAG_FIN && !s.ended) {
      s.ended = true;
      s.emit('end');
    }
  }

  private onControl(type: number, flags: number, body: Buffer): void {
    switch (type) {
      case TYPE.SYN_STREAM: {
        const id = body.readUInt32BE(0) & 0x7fffffff;
        const block = body.subarray(10);
        // header blocks share one inflate context: decompress strictly in frame order
        this.inflateQueue = this.inflateQueue.then(() => this.inflateBlock(block)).then(
          (raw) => this.openStream(id, flags, parseHeaderBlock(raw)),
          () => this.socket.destroy(),
        );
        break;
      }
      case TYPE.RST_STREAM: {
        const id = body.readUInt32BE(0) & 0x7fffffff;
        const s = this.streams.get(id);
        if (s) {
          s.closed = true;
          if (!s.ended) {
            s.ended = true;
            s.emit('end');
          }
          s.emit('reset');
          this.streams.delete(id);
        }
        break;
      }
      case TYPE.PING:
        this.sendControl(TYPE.PING, 0, Buffer.from(body)); // echo
        break;
      case TYPE.GOAWAY:
        this.socket.end();
        break;
      default:
        break; // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do for these clients
    }
  }

  private openStream(id: number, flags: number, headers: Record<string, string>): void {
    const s = new SpdyStream(this, id, headers);
    this.streams.set(id, s);
    void this.sendHeaders(TYPE.SYN_REPLY, id, {}).then(() => {
      if (flags & FLAG_FIN) {
        s.ended = true;
      }
      this.emit('stream', s);
      if (s.ended) s.emit('end');
    });
  }

  private inflateBlock(block: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const onData = (c: Buffer): void => {
        chunks.push(c);
      };
      this.inflate.on('data', onData);
      this.inflate.write(block, (err) => {
        if (err) {
          this.inflate.off('data', onData);
          reject(err);
          return;
        }
        this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          this.inflate.off('data', onData);
          resolve(Buffer.concat(chunks));
        });
      });
    });
  }

  private deflateQueue: Promise<unknown> = Promise.resolve();

  /** SYN_REPLY (or HEADERS) with a compressed header block; frames leave in call order. */
  private sendHeaders(type: number, id: number, headers: Record<string, string>): Promise<void> {
    const p = this.deflateQueue.then(
      () =>
        new Promise<void>((resolve) => {
          const chunks: Buffer[] = [];
          const onData = (c: Buffer): void => {
            chunks.push(c);
          };
          this.deflate.on('data', onData);
          this.deflate.write(headerBlock(headers));
          this.deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
            this.deflate.off('data', onData);
            const head = Buffer.alloc(4);
            head.writeUInt32BE(id & 0x7fffffff);
            this.sendControl(type, 0, Buffer.concat([head, ...chunks]));
            resolve();
          });
        }),
    );
    this.deflateQueue = p.catch(() => undefined);
    this.pending = p;
    return p;
  }

  /** The last header frame queued: data frames wait for it so a reply never overtakes its SYN_REPLY. */
  private pending: Promise<void> = Promise.resolve();

  sendData(id: number, data: Buffer, flags: number): void {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(id & 0x7fffffff, 0);
    head[4] = flags;
    head.writeUIntBE(data.length, 5, 3);
    const frame = Buffer.concat([head, data]);
    void this.pending.then(() => {
      if (!this.closed) this.socket.write(frame);
    });
  }

  private sendControl(type: number, flags: number, body: Buffer): void {
    const head = Buffer.alloc(8);
    head.writeUInt16BE(CONTROL | VERSION, 0);
    head.writeUInt16BE(type, 2);
    head[4] = flags;
    head.writeUIntBE(body.length, 5, 3);
    if (!this.closed) this.socket.write(Buffer.concat([head, body]));
  }
}

/** Name/value pairs as SPDY/3 encodes them (32-bit counts and lengths); names lower-cased. */
function headerBlock(h: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const entries = Object.entries(h);
  parts.push(u32(entries.length));
  for (const [k, v] of entries) {
    const name = Buffer.from(k.toLowerCase(), 'utf8');
    const value = Buffer.from(v, 'utf8');
    parts.push(u32(name.length), name, u32(value.length), value);
  }
  return Buffer.concat(parts);
}

export function parseHeaderBlock(raw: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw.length < 4) return out;
  const n = raw.readUInt32BE(0);
  let off = 4;
  for (let i = 0; i < n && off + 4 <= raw.length; i++) {
    const nl = raw.readUInt32BE(off);
    const name = raw.subarray(off + 4, off + 4 + nl).toString('utf8').toLowerCase();
    off += 4 + nl;
    const vl = raw.readUInt32BE(off);
    // multiple values of one name are NUL-separated: the first one is enough here
    const value = raw.subarray(off + 4, off + 4 + vl).toString('utf8').split('\0')[0] ?? '';
    off += 4 + vl;
    out[name] = value;
  }
  return out;
}
