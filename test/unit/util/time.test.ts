import { describe, expect, it } from 'vitest';
import { nowNano, parseGoDuration, parseTimestampParam, rfc3339Nano } from '../../../src/util/time.js';

describe('timestamps', () => {
  it('parses unix seconds with fractions and RFC 3339 dates to nanoseconds', () => {
    expect(parseTimestampParam('since', '1700000000')).toBe(1_700_000_000_000_000_000n);
    expect(parseTimestampParam('since', '1700000000.5')).toBe(1_700_000_000_500_000_000n);
    expect(parseTimestampParam('since', '2023-11-14T22:13:20Z')).toBe(1_700_000_000_000_000_000n);
    expect(() => parseTimestampParam('since', 'yesterday')).toThrow('invalid value for since: yesterday');
  });

  it('parses Go durations as time.ParseDuration does', () => {
    expect(parseGoDuration('24h')).toBe(86_400_000_000_000n);
    expect(parseGoDuration('1h30m')).toBe(5_400_000_000_000n);
    expect(parseGoDuration('1.5s')).toBe(1_500_000_000n);
    expect(parseGoDuration('300ms')).toBe(300_000_000n);
    expect(parseGoDuration('-2m')).toBe(-120_000_000_000n);
    expect(parseGoDuration('0')).toBe(0n);
    expect(parseGoDuration('10')).toBeUndefined();
    expect(parseGoDuration('1d')).toBeUndefined();
    expect(parseGoDuration('h')).toBeUndefined();
  });

  it('takes a duration as that long before now in every until/since (docker system prune --filter until=24h)', () => {
    const before = nowNano();
    const t = parseTimestampParam('until', '24h');
    const after = nowNano();
    expect(t).toBeGreaterThanOrEqual(before - 86_400_000_000_000n);
    expect(t).toBeLessThanOrEqual(after - 86_400_000_000_000n);
    // "0" stays the epoch, as dockerd's GetTimestamp
    expect(parseTimestampParam('since', '0')).toBe(0n);
  });

  it('prints RFC 3339 with nanoseconds', () => {
    expect(rfc3339Nano(1_700_000_000_123_456_789n)).toBe('2023-11-14T22:13:20.123456789Z');
  });
});
