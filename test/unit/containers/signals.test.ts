import { describe, expect, it } from 'vitest';
import { signalNumber } from '../../../src/containers/signals.js';

describe('signals', () => {
  it('parses signals by name and number', () => {
    expect(signalNumber('TERM')).toBe(15);
    expect(signalNumber('SIGUSR1')).toBe(10);
    expect(signalNumber('kill')).toBe(9);
    expect(signalNumber('2')).toBe(2);
    expect(() => signalNumber('NOPE')).toThrow('Invalid signal: NOPE');
  });
});
