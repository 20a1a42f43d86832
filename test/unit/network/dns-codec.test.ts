import { describe, expect, it } from 'vitest';
import {
  buildFormErr,
  buildQuery,
  buildResponse,
  encodeName,
  parseQuery,
  parseResponse,
  RCODE_NXDOMAIN,
  RCODE_NOERROR,
  readName,
  TYPE_A,
  TYPE_AAAA,
} from '../../../src/network/dns-codec.js';

describe('dns codec', () => {
  it('round-trips a query: id, RD flag, lower-cased name, type', () => {
    const q = parseQuery(buildQuery(0x1234, 'Web.Example.', TYPE_AAAA));
    expect(q.id).toBe(0x1234);
    expect(q.recursionDesired).toBe(true);
    expect(q.questions).toEqual([{ name: 'web.example', type: TYPE_AAAA, class: 1 }]);
  });

  it('builds an authoritative answer with A records pointing at the question', () => {
    const q = parseQuery(buildQuery(7, 'webalias'));
    const r = parseResponse(buildResponse(q, RCODE_NOERROR, [{ address: '10.5.0.2', ttl: 600 }, { address: '10.6.0.3', ttl: 600 }]));
    expect(r.id).toBe(7);
    expect(r.rcode).toBe(RCODE_NOERROR);
    expect(r.flags & 0x8000).toBeTruthy();
    expect(r.answers.map((a) => [a.name, a.type, a.address, a.ttl])).toEqual([
      ['webalias', TYPE_A, '10.5.0.2', 600],
      ['webalias', TYPE_A, '10.6.0.3', 600],
    ]);
  });

  it('builds NXDOMAIN with the question echoed and no answers', () => {
    const q = parseQuery(buildQuery(9, 'nope'));
    const raw = buildResponse(q, RCODE_NXDOMAIN);
    const r = parseResponse(raw);
    expect(r.rcode).toBe(RCODE_NXDOMAIN);
    expect(r.answers).toEqual([]);
    expect(raw.readUInt16BE(4)).toBe(1);
  });

  it('follows compression pointers and refuses loops and truncation', () => {
    const buf = Buffer.concat([Buffer.alloc(12), encodeName('a.b'), Buffer.from([1, 0x78, 0xc0, 12])]);
    expect(readName(buf, 12).name).toBe('a.b');
    expect(readName(buf, 17).name).toBe('x.a.b');
    const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 12])]);
    expect(() => readName(loop, 12)).toThrow(/loop/);
    expect(() => parseQuery(Buffer.alloc(5))).toThrow(/shorter/);
    const trunc = buildQuery(1, 'abc').subarray(0, 15);
    expect(() => parseQuery(trunc)).toThrow();
  });

  it('answers garbage that has a header with FORMERR keeping the id', () => {
    const raw = Buffer.from([0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63]);
    const r = buildFormErr(raw)!;
    expect(r.readUInt16BE(0)).toBe(0xabcd);
    expect(r.readUInt16BE(2) & 0xf).toBe(1);
    expect(buildFormErr(Buffer.alloc(3))).toBeUndefined();
  });
});
