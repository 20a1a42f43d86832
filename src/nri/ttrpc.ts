/**
 * ttrpc (github.com/containerd/ttrpc), the small RPC protocol NRI speaks, written here because there is no
 * maintained ttrpc for Node (nothing on npm implements it). Only unary calls, which is all NRI uses.
 *
 * Wire format: a 10-byte header — payload length (uint32 BE), stream ID (uint32 BE), message type (1 request,
 * 2 response, 3 data), flags — then the payload, at most 4 MiB. A request's payload is the protobuf
 * `ttrpc.Request {service=1, method=2, payload=3 bytes, timeout_nano=4 int64, metadata=5 KeyValue}`, a response's
 * `ttrpc.Response {status=1 google.rpc.Status{code=1, message=2}, payload=2 bytes}`. Client-initiated streams have
 * odd IDs (1, 3, 5…). Status codes are gRPC's.
 */
import type { MuxConn } from './mux.js';

export const TTRPC_HEADER_LENGTH = 10;
export const TTRPC_MAX_MESSAGE = 4 << 20;
export const MSG_REQUEST = 1;
export const MSG_RESPONSE = 2;
export const MSG_DATA = 3;

/** gRPC status codes ttrpc uses. */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export interface TtrpcMessage {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

export function encodeMessage(m: TtrpcMessage): Buffer {
  if (m.payload.length > TTRPC_MAX_MESSAGE) throw new TtrpcError(Code.RESOURCE_EXHAUSTED, `message length ${m.payload.length} exceeds maximum message size of ${TTRPC_MAX_MESSAGE}`);
  const hdr = Buffer.alloc(TTRPC_HEADER_LENGTH);
  hdr.writeUInt32BE(m.payload.length, 0);
  hdr.writeUInt32BE(m.streamId, 4);
  hdr.writeUInt8(m.type, 8);
  hdr.writeUInt8(m.flags, 9);
  return Buffer.concat([hdr, m.payload]);
}

/** Incremental message parser over a byte stream. */
export class TtrpcReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): TtrpcMessage[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: TtrpcMessage[] = [];
    while (this.buf.length >= TTRPC_HEADER_LENGTH) {
      const len = this.buf.readUInt32BE(0);
      if (len > TTRPC_MAX_MESSAGE) throw new TtrpcError(Code.RESOURCE_EXHAUSTED, `message length ${len} exceeds maximum message size of ${TTRPC_MAX_MESSAGE}`);
      if (this.buf.length < TTRPC_HEADER_LENGTH + len) break;
      out.push({
        streamId: this.buf.readUInt32BE(4),
        type: this.buf.readUInt8(8),
        flags: this.buf.readUInt8(9),
        payload: Buffer.from(this.buf.subarray(TTRPC_HEADER_LENGTH, TTRPC_HEADER_LENGTH + len)),
      });
      this.buf = this.buf.subarray(TTRPC_HEADER_LENGTH + len);
    }
    return out;
  }
}

/** An RPC failure with its gRPC status code. */
export class TtrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'TtrpcError';
  }
}

// --- the envelope: a minimal protobuf writer/reader for ttrpc.Request and ttrpc.Response ---

function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}

function field(no: number, wire: number): Buffer {
  return varint(BigInt((no << 3) | wire));
}

function lenDelimited(no: number, data: Buffer): Buffer {
  return Buffer.concat([field(no, 2), varint(BigInt(data.length)), data]);
}

interface PbField {
  no: number;
  wire: number;
  /** varint value (wire 0) */
  int?: bigint;
  /** bytes (wire 2) */
  bytes?: Buffer;
}

function readFields(buf: Buffer): PbField[] {
  const out: PbField[] = [];
  let i = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new TtrpcError(Code.INTERNAL, 'truncated protobuf varint');
      const b = buf[i++] as number;
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
      if (shift > 63n) throw new TtrpcError(Code.INTERNAL, 'protobuf varint too long');
    }
  };
  while (i < buf.length) {
    const key = Number(readVarint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ no, wire, int: readVarint() });
    else if (wire === 2) {
      const len = Number(readVarint());
      if (i + len > buf.length) throw new TtrpcError(Code.INTERNAL, 'truncated protobuf field');
      out.push({ no, wire, bytes: buf.subarray(i, i + len) });
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new TtrpcError(Code.INTERNAL, `unsupported protobuf wire type ${wire}`);
  }
  return out;
}

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Buffer;
  timeoutNano?: bigint;
  metadata?: { key: string; value: string }[];
}

export function encodeRequest(r: TtrpcRequest): Buffer {
  const parts = [lenDelimited(1, Buffer.from(r.service)), lenDelimited(2, Buffer.from(r.method)), lenDelimited(3, r.payload)];
  if (r.timeoutNano && r.timeoutNano > 0n) parts.push(field(4, 0), varint(r.timeoutNano));
  for (const kv of r.metadata ?? []) parts.push(lenDelimited(5, Buffer.concat([lenDelimited(1, Buffer.from(kv.key)), lenDelimited(2, Buffer.from(kv.value))])));
  return Buffer.concat(parts);
}

export function decodeRequest(buf: Buffer): TtrpcRequest {
  const r: TtrpcRequest = { service: '', method: '', payload: Buffer.alloc(0) };
  for (const f of readFields(buf)) {
    if (f.no === 1 && f.bytes) r.service = f.bytes.toString();
    else if (f.no === 2 && f.bytes) r.method = f.bytes.toString();
    else if (f.no === 3 && f.bytes) r.payload = Buffer.from(f.bytes);
    else if (f.no === 4 && f.int !== undefined) r.timeoutNano = BigInt.asIntN(64, f.int);
    else if (f.no === 5 && f.bytes) {
      const kv = { key: '', value: '' };
      for (const g of readFields(f.bytes)) {
        if (g.no === 1 && g.bytes) kv.key = g.bytes.toString();
        else if (g.no === 2 && g.bytes) kv.value = g.bytes.toString();
      }
      (r.metadata ??= []).push(kv);
    }
  }
  return r;
}

export interface TtrpcResponse {
  code: number;
  message: string;
  payload: Buffer;
}

export function encodeResponse(r: TtrpcResponse): Buffer {
  const parts: Buffer[] = [];
  if (r.code !== 0 || r.message !== '') {
    const st: Buffer[] = [];
    if (r.code !== 0) st.push(field(1, 0), varint(BigInt(r.code)));
    if (r.message !== '') st.push(lenDelimited(2, Buffer.from(r.message)));
    parts.push(lenDelimited(1, Buffer.concat(st)));
  }
  if (r.payload.length > 0) parts.push(lenDelimited(2, r.payload));
  return Buffer.concat(parts);
}

export function decodeResponse(buf: Buffer): TtrpcResponse {
  const r: TtrpcResponse = { code: 0, message: '', payload: Buffer.alloc(0) };
  for (const f of readFields(buf)) {
    if (f.no === 1 && f.bytes) {
      for (const g of readFields(f.bytes)) {
        if (g.no === 1 && g.int !== undefined) r.code = Number(BigInt.asIntN(32, g.int));
        else if (g.no === 2 && g.bytes) r.message = g.bytes.toString();
      }
    } else if (f.no === 2 && f.bytes) r.payload = Buffer.from(f.bytes);
  }
  return r;
}

// --- client and server over one logical connection ---

interface Pending {
  resolve(b: Buffer): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/** The client side of a ttrpc connection (unary calls). */
export class TtrpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly reader = new TtrpcReader();
  private closedError: Error | undefined;

  constructor(private readonly conn: MuxConn) {
    conn.on('data', (chunk: Buffer) => {
      let msgs: TtrpcMessage[];
      try {
        msgs = this.reader.push(chunk);
      } catch (e) {
        this.fail(e as Error);
        conn.close();
        return;
      }
      for (const m of msgs) {
        if (m.type !== MSG_RESPONSE) continue;
        const p = this.pending.get(m.streamId);
        if (!p) continue; // answered after its timeout
        this.pending.delete(m.streamId);
        if (p.timer) clearTimeout(p.timer);
        try {
          const r = decodeResponse(m.payload);
          if (r.code !== Code.OK) p.reject(new TtrpcError(r.code, r.message));
          else p.resolve(r.payload);
        } catch (e) {
          p.reject(e as Error);
        }
      }
    });
    conn.on('close', () => this.fail(new TtrpcError(Code.UNAVAILABLE, 'ttrpc: closed')));
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }

  /** Calls service/method; rejects with a TtrpcError (DEADLINE_EXCEEDED after timeoutMs, UNAVAILABLE when closed). */
  call(service: string, method: string, payload: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId;
    this.nextId += 2;
    return new Promise<Buffer>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(id);
              reject(new TtrpcError(Code.DEADLINE_EXCEEDED, `${service}/${method}: no answer within ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      this.pending.set(id, { resolve, reject, timer });
      try {
        const req = encodeRequest({ service, method, payload, ...(timeoutMs > 0 ? { timeoutNano: BigInt(timeoutMs) * 1_000_000n } : {}) });
        this.conn.write(encodeMessage({ streamId: id, type: MSG_REQUEST, flags: 0, payload: req }));
      } catch (e) {
        this.pending.delete(id);
        if (timer) clearTimeout(timer);
        reject(e as Error);
      }
    });
  }
}

export type TtrpcHandler = (payload: Buffer) => Promise<Buffer>;

/** The server side of a ttrpc connection: handlers by "service/method". */
export class TtrpcServer {
  private readonly reader = new TtrpcReader();

  constructor(
    private readonly conn: MuxConn,
    private readonly handlers: Map<string, TtrpcHandler>,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {
    conn.on('data', (chunk: Buffer) => {
      let msgs: TtrpcMessage[];
      try {
        msgs = this.reader.push(chunk);
      } catch (e) {
        this.onError(e);
        conn.close();
        return;
      }
      for (const m of msgs) if (m.type === MSG_REQUEST) void this.serve(m);
    });
  }

  private async serve(m: TtrpcMessage): Promise<void> {
    let res: TtrpcResponse;
    try {
      const req = decodeRequest(m.payload);
      const h = this.handlers.get(`${req.service}/${req.method}`);
      if (!h) res = { code: Code.UNIMPLEMENTED, message: `method ${req.method} of service ${req.service} not implemented`, payload: Buffer.alloc(0) };
      else res = { code: Code.OK, message: '', payload: await h(req.payload) };
    } catch (e) {
      this.onError(e);
      res = { code: e instanceof TtrpcError ? e.code : Code.UNKNOWN, message: e instanceof Error ? e.message : String(e), payload: Buffer.alloc(0) };
    }
    try {
      this.conn.write(encodeMessage({ streamId: m.streamId, type: MSG_RESPONSE, flags: 0, payload: encodeResponse(res) }));
    } catch (e) {
      this.onError(e);
    }
  }
}
