import { describe, expect, it } from 'vitest';
import { humanDuration } from '../../../src/util/human-duration.js';

describe('human durations', () => {
  it('prints durations as go-units does', () => {
    expect(humanDuration(500)).toBe('Less than a second');
    expect(humanDuration(1000)).toBe('1 second');
    expect(humanDuration(3000)).toBe('3 seconds');
    expect(humanDuration(61_000)).toBe('About a minute');
    expect(humanDuration(5 * 60_000)).toBe('5 minutes');
    expect(humanDuration(3_600_000)).toBe('About an hour');
    expect(humanDuration(5 * 3_600_000)).toBe('5 hours');
    expect(humanDuration(72 * 3_600_000)).toBe('3 days');
  });
});
