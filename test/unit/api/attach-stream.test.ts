import { describe, expect, it } from 'vitest';
import { BatchWriter, parseDetachKeys, type Sink } from '../../../src/api/attach-stream.js';

/** A sink that keeps what was written, in write order. */
function memorySink(): Sink & { writes: Buffer[] } {
  const writes: Buffer[] = [];
  return { writes, write: (b: Buffer) => (writes.push(Buffer.from(b)), true), end: () => undefined, once: () => undefined, destroyed: false };
}

/** The stdcopy frames of a byte string: [stream type, payload]. */
function frames(b: Buffer): [number, string][] {
  const out: [number, string][] = [];
  for (let at = 0; at < b.length; ) {
    const n = b.readUInt32BE(at + 4);
    out.push([b[at]!, b.subarray(at + 8, at + 8 + n).toString()]);
    at += 8 + n;
  }
  return out;
}

describe('attach streams', () => {
  it('parses detach keys', () => {
    expect([...parseDetachKeys(undefined)]).toEqual([0x10, 0x11]);
    expect([...parseDetachKeys('ctrl-a,x')]).toEqual([1, 0x78]);
    expect(() => parseDetachKeys('ctrl-')).toThrow(/Invalid detach keys/);
  });

  it('writes a frame per entry unless merging, where consecutive entries of one stream share a frame', () => {
    const entries: ['stdout' | 'stderr', string][] = [['stdout', 'a\n'], ['stdout', 'b\n'], ['stderr', 'c\n'], ['stdout', 'd\n']];
    for (const merge of [false, true]) {
      const sink = memorySink();
      const w = new BatchWriter(sink, merge);
      for (const [s, d] of entries) w.add(s, Buffer.from(d), Buffer.from('T '));
      w.close();
      expect(sink.writes).toHaveLength(1);
      expect(frames(Buffer.concat(sink.writes))).toEqual(
        merge
          ? [[1, 'T a\nT b\n'], [2, 'T c\n'], [1, 'T d\n']]
          : [[1, 'T a\n'], [1, 'T b\n'], [2, 'T c\n'], [1, 'T d\n']],
      );
    }
  });

  it('closes a merged frame at each flush and sends entries bigger than the batch as frames of their own', () => {
    const sink = memorySink();
    const w = new BatchWriter(sink, true);
    const line = `${'x'.repeat(999)}\n`;
    for (let i = 0; i < 100; i++) w.add('stdout', Buffer.from(line));
    w.add('stdout', Buffer.alloc(70 * 1024, 0x79));
    w.add('stdout', Buffer.from('end\n'));
    w.close();
    const all = Buffer.concat(sink.writes);
    const f = frames(all);
    expect(f.map(([, p]) => p).join('')).toBe(`${line.repeat(100)}${'y'.repeat(70 * 1024)}end\n`);
    expect(f.every(([t]) => t === 1)).toBe(true);
    // 100 kB of lines: a frame per 64 KiB batch, not one per line
    expect(f.length).toBeLessThanOrEqual(4);
    for (const b of sink.writes) expect(b.length).toBeLessThanOrEqual(70 * 1024 + 8);
  });
});
