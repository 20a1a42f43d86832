import { describe, expect, it } from 'vitest';
import { untilNano } from '../../../src/containers/container-ops.js';

describe('prune until filter', () => {
  it('takes timestamps and durations before now', () => {
    expect(untilNano('1700000000')).toBe(1_700_000_000_000_000_000n);
    const tenMinutesAgo = BigInt(Date.now() - 600_000) * 1_000_000n;
    const v = untilNano('10m');
    expect(v > tenMinutesAgo - 5_000_000_000n && v < tenMinutesAgo + 5_000_000_000n).toBe(true);
  });
});
