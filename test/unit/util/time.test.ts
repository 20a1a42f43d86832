import { describe, expect, it } from 'vitest';
import { parseTimestampParam, rfc3339Nano } from '../../../src/util/time.js';

describe('timestamps', () => {
  it('parses unix seconds with fractions and RFC 3339 dates to nanoseconds', () => {
    expect(parseTimestampParam('since', '1700000000')).toBe(1_700_000_000_000_000_000n);
    expect(parseTimestampParam('since', '1700000000.5')).toBe(1_700_000_000_500_000_000n);
    expect(parseTimestampParam('since', '2023-11-14T22:13:20Z')).toBe(1_700_000_000_000_000_000n);
    expect(() => parseTimestampParam('since', 'yesterday')).toThrow('invalid value for since: yesterday');
  });

  it('prints RFC 3339 with nanoseconds', () => {
    expect(rfc3339Nano(1_700_000_000_123_456_789n)).toBe('2023-11-14T22:13:20.123456789Z');
  });
});
