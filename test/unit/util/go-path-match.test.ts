import { describe, expect, it } from 'vitest';
import { goPathMatch } from '../../../src/util/go-path-match.js';

describe('goPathMatch (Go path.Match)', () => {
  it('matches *, ? and classes within one path segment', () => {
    expect(goPathMatch('busy*', 'busybox')).toBe(true);
    expect(goPathMatch('*', 'library/busybox')).toBe(false);
    expect(goPathMatch('*/busybox', 'library/busybox')).toBe(true);
    expect(goPathMatch('b?sybox', 'busybox')).toBe(true);
    expect(goPathMatch('[a-c]usybox', 'busybox')).toBe(true);
    expect(goPathMatch('[^a-c]usybox', 'busybox')).toBe(false);
    expect(goPathMatch('a\\*b', 'a*b')).toBe(true);
    expect(goPathMatch('a.b', 'axb')).toBe(false);
  });

  it('a malformed pattern matches nothing instead of throwing', () => {
    expect(goPathMatch('[z-a]', 'b')).toBe(false);
    expect(goPathMatch('[abc', 'a')).toBe(false);
  });
});
