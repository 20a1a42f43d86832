import { describe, expect, it } from 'vitest';
import { parseDetachKeys } from '../../../src/api/attach-stream.js';

describe('attach streams', () => {
  it('parses detach keys', () => {
    expect([...parseDetachKeys(undefined)]).toEqual([0x10, 0x11]);
    expect([...parseDetachKeys('ctrl-a,x')]).toEqual([1, 0x78]);
    expect(() => parseDetachKeys('ctrl-')).toThrow(/Invalid detach keys/);
  });
});
