import { describe, expect, it } from 'vitest';
import { RestartBackoff, validateRestartPolicy } from '../../../src/containers/restart-policy.js';

describe('restart policies', () => {
  it('validates names, retry counts and AutoRemove', () => {
    expect(() => validateRestartPolicy({ Name: 'sometimes' as 'always', MaximumRetryCount: 0 }, false)).toThrow(/invalid restart policy/);
    expect(() => validateRestartPolicy({ Name: 'always', MaximumRetryCount: 2 }, false)).toThrow(/on-failure/);
    expect(() => validateRestartPolicy({ Name: 'always', MaximumRetryCount: 0 }, true)).toThrow("can't create 'AutoRemove' container with restart policy");
    expect(() => validateRestartPolicy({ Name: 'on-failure', MaximumRetryCount: 3 }, false)).not.toThrow();
  });
  it("decides like dockerd's restart manager, with doubling backoff reset after 10 s up", () => {
    const b = new RestartBackoff();
    expect(b.decide({ Name: 'on-failure', MaximumRetryCount: 2 }, 1, 0, false, 5)).toBe(100);
    expect(b.decide({ Name: 'on-failure', MaximumRetryCount: 2 }, 1, 1, false, 5)).toBe(200);
    expect(b.decide({ Name: 'on-failure', MaximumRetryCount: 2 }, 1, 2, false, 5)).toBeUndefined();
    expect(b.decide({ Name: 'on-failure', MaximumRetryCount: 0 }, 0, 0, false, 5)).toBeUndefined();
    expect(b.decide({ Name: 'always', MaximumRetryCount: 0 }, 0, 0, false, 5)).toBe(100);
    expect(b.decide({ Name: 'always', MaximumRetryCount: 0 }, 0, 0, false, 5)).toBe(200);
    expect(b.decide({ Name: 'always', MaximumRetryCount: 0 }, 0, 0, false, 20_000)).toBe(100);
    expect(b.decide({ Name: 'always', MaximumRetryCount: 0 }, 0, 0, true, 5)).toBeUndefined();
    expect(b.decide({ Name: 'unless-stopped', MaximumRetryCount: 0 }, 0, 0, true, 5)).toBeUndefined();
  });
});
