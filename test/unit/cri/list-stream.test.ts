import { describe, expect, it } from 'vitest';
import { batches } from '../../../src/cri/list-stream.js';

describe('CRI list streaming batches', () => {
  it('sends no list for no items, and every item once, in order, in lists of at least one', () => {
    expect(batches([])).toEqual([]);
    const items = Array.from({ length: 7 }, (_, i) => ({ id: String(i) }));
    const out = batches(items, 3);
    expect(out.map((b) => b.length)).toEqual([3, 3, 1]);
    expect(out.flat()).toEqual(items);
  });

  it('bounds a list by size, an item larger than the bound going alone', () => {
    const big = { id: 'x'.repeat(100) };
    const small = { id: 'a' };
    const out = batches([small, big, small, small], 100, 50);
    expect(out).toEqual([[small], [big], [small, small]]);
  });
});
