import { describe, expect, it } from 'vitest';
import { parseSecurityOpts } from '../../../src/containers/spec-builder.js';

describe('spec builder options', () => {
  it('parses --security-opt', () => {
    expect(parseSecurityOpts(['no-new-privileges'])).toEqual({ seccomp: 'default', noNewPrivileges: true });
    expect(parseSecurityOpts(['seccomp=unconfined']).seccomp).toBe('unconfined');
    expect(() => parseSecurityOpts(['bogus=1'])).toThrow(/invalid --security-opt/);
  });
});
