import { describe, expect, it } from 'vitest';
import { onceUntilFailure } from '../../../src/util/once-until-failure.js';

describe('onceUntilFailure', () => {
  it('makes the value once for every caller, and tries again after a failure', async () => {
    let calls = 0;
    const get = onceUntilFailure(async () => {
      calls += 1;
      if (calls === 1) throw new Error('transient');
      return calls;
    });
    await expect(get()).rejects.toThrow('transient');
    expect(await Promise.all([get(), get()])).toEqual([2, 2]);
    expect(await get()).toBe(2);
    expect(calls).toBe(2);
  });
});
