import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { encodeMuxFrame, MUX_MAX_WRITE, MuxFrameReader, type MuxConn } from '../../../src/nri/mux.js';
import {
  Code,
  decodeRequest,
  decodeResponse,
  encodeMessage,
  encodeRequest,
  encodeResponse,
  MSG_REQUEST,
  MSG_RESPONSE,
  TtrpcClient,
  TtrpcError,
  TtrpcReader,
  TtrpcServer,
} from '../../../src/nri/ttrpc.js';

describe('ttrpc wire format', () => {
  it('writes the 10-byte header: length, stream ID (big-endian), type, flags', () => {
    const b = encodeMessage({ streamId: 3, type: MSG_REQUEST, flags: 0, payload: Buffer.from('abc') });
    expect([...b.subarray(0, 10)]).toEqual([0, 0, 0, 3, 0, 0, 0, 3, 1, 0]);
    expect(b.subarray(10).toString()).toBe('abc');
  });

  it('parses messages split at any byte and several in one chunk', () => {
    const a = encodeMessage({ streamId: 1, type: MSG_REQUEST, flags: 0, payload: Buffer.from('hello') });
    const b = encodeMessage({ streamId: 2, type: MSG_RESPONSE, flags: 4, payload: Buffer.alloc(0) });
    const all = Buffer.concat([a, b]);
    for (let cut = 0; cut <= all.length; cut++) {
      const r = new TtrpcReader();
      const msgs = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))];
      expect(msgs.map((m) => [m.streamId, m.type, m.flags, m.payload.toString()])).toEqual([
        [1, 1, 0, 'hello'],
        [2, 2, 4, ''],
      ]);
    }
  });

  it('refuses a message over 4 MiB', () => {
    const hdr = Buffer.alloc(10);
    hdr.writeUInt32BE((4 << 20) + 1, 0);
    expect(() => new TtrpcReader().push(hdr)).toThrow(/exceeds maximum message size/);
  });

  it('encodes ttrpc.Request as protobuf (service=1, method=2, payload=3, timeout_nano=4, metadata=5)', () => {
    const b = encodeRequest({ service: 's', method: 'm', payload: Buffer.from([7]), timeoutNano: 2_000_000_000n, metadata: [{ key: 'k', value: 'v' }] });
    // 0a 01 73 | 12 01 6d | 1a 01 07 | 20 <varint 2e9> | 2a 06 0a 01 6b 12 01 76
    expect(b.subarray(0, 9).toString('hex')).toBe('0a0173' + '12016d' + '1a0107');
    expect(b[9]).toBe(0x20);
    expect(b.subarray(-8).toString('hex')).toBe('2a060a016b120176');
    expect(decodeRequest(b)).toEqual({ service: 's', method: 'm', payload: Buffer.from([7]), timeoutNano: 2_000_000_000n, metadata: [{ key: 'k', value: 'v' }] });
  });

  it('encodes ttrpc.Response with a google.rpc.Status', () => {
    const ok = encodeResponse({ code: 0, message: '', payload: Buffer.from('x') });
    expect(ok.toString('hex')).toBe('120178');
    const err = encodeResponse({ code: Code.UNIMPLEMENTED, message: 'no', payload: Buffer.alloc(0) });
    expect(err.toString('hex')).toBe('0a06080c12026e6f');
    expect(decodeResponse(err)).toEqual({ code: 12, message: 'no', payload: Buffer.alloc(0) });
  });
});

describe('NRI multiplexer frames', () => {
  it('frames are connection ID and length, big-endian, then the payload', () => {
    expect([...encodeMuxFrame(2, Buffer.from('hi'))]).toEqual([0, 0, 0, 2, 0, 0, 0, 2, 0x68, 0x69]);
  });

  it('reassembles frames across chunk boundaries', () => {
    const all = Buffer.concat([encodeMuxFrame(1, Buffer.from('abc')), encodeMuxFrame(2, Buffer.alloc(0)), encodeMuxFrame(1, Buffer.from('d'))]);
    for (let cut = 0; cut <= all.length; cut++) {
      const r = new MuxFrameReader();
      const frames = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))];
      expect(frames.map((f) => [f.connId, f.payload.toString()])).toEqual([
        [1, 'abc'],
        [2, ''],
        [1, 'd'],
      ]);
    }
  });

  it('never writes a frame larger than the Go reader can take', () => {
    expect(MUX_MAX_WRITE).toBe(4096);
  });
});

async function waitUntil(f: () => boolean): Promise<void> {
  while (!f()) await new Promise((r) => setImmediate(r));
}

/** Two in-memory logical connections wired to each other. */
function pair(): [MuxConn, MuxConn] {
  const mk = (): MuxConn & { peer?: MuxConn } => {
    const e = new EventEmitter() as MuxConn & { peer?: MuxConn };
    Object.assign(e, {
      closed: false,
      write: (b: Buffer) => setImmediate(() => e.peer?.emit('data', Buffer.from(b))),
      close: () => {
        e.emit('close');
        e.peer?.emit('close');
      },
    });
    return e;
  };
  const a = mk();
  const b = mk();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

describe('ttrpc client and server', () => {
  it('calls a method and gets its answer; unknown methods are UNIMPLEMENTED; errors carry their message', async () => {
    const [c, s] = pair();
    new TtrpcServer(
      s,
      new Map([
        ['svc/Echo', async (p: Buffer) => Buffer.concat([p, p])],
        ['svc/Fail', async () => { throw new Error('induced'); }],
      ]),
    );
    const client = new TtrpcClient(c);
    expect((await client.call('svc', 'Echo', Buffer.from('ab'), 1000)).toString()).toBe('abab');
    await expect(client.call('svc', 'Nope', Buffer.alloc(0), 1000)).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
    await expect(client.call('svc', 'Fail', Buffer.alloc(0), 1000)).rejects.toMatchObject({ code: Code.UNKNOWN, message: 'induced' });
  });

  it('uses odd stream IDs and answers each request on its own stream', async () => {
    const [c, s] = pair();
    const seen: number[] = [];
    s.on('data', (b: Buffer) => seen.push(b.readUInt32BE(4)));
    new TtrpcServer(s, new Map([['svc/M', async (p: Buffer) => p]]));
    const client = new TtrpcClient(c);
    const answers = await Promise.all([1, 2, 3].map((i) => client.call('svc', 'M', Buffer.from(String(i)), 1000)));
    expect(answers.map(String)).toEqual(['1', '2', '3']);
    expect(seen).toEqual([1, 3, 5]);
  });

  it('a call with no answer within its timeout fails as DEADLINE_EXCEEDED (and carries timeout_nano)', async () => {
    const [c, s] = pair();
    const got: bigint[] = [];
    s.on('data', (b: Buffer) => got.push(decodeRequest(b.subarray(10)).timeoutNano ?? 0n));
    const client = new TtrpcClient(c);
    await expect(client.call('svc', 'Slow', Buffer.alloc(0), 5)).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    await waitUntil(() => got.length === 1);
    expect(got).toEqual([5_000_000n]);
  });

  it('a closed connection fails pending and later calls as UNAVAILABLE', async () => {
    const [c] = pair();
    const client = new TtrpcClient(c);
    const pending = client.call('svc', 'M', Buffer.alloc(0), 0);
    c.close();
    await expect(pending).rejects.toBeInstanceOf(TtrpcError);
    await expect(client.call('svc', 'M', Buffer.alloc(0), 0)).rejects.toMatchObject({ code: Code.UNAVAILABLE });
  });
});
