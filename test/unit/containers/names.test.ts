import { describe, expect, it } from 'vitest';
import { generateContainerName, validateContainerName } from '../../../src/containers/names.js';

describe('container names', () => {
  it('accepts Docker names and strips the slash', () => {
    expect(validateContainerName('/web-1')).toBe('web-1');
    expect(validateContainerName('a.b_c')).toBe('a.b_c');
  });
  it("refuses bad names with dockerd's message", () => {
    expect(() => validateContainerName('-x')).toThrow('Invalid container name (-x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed');
    expect(() => validateContainerName('a')).toThrow();
    expect(() => validateContainerName('a b')).toThrow();
  });
  it('generates adjective_surname names', () => {
    expect(generateContainerName()).toMatch(/^[a-z]+_[a-z]+$/);
  });
});
