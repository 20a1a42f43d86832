import { describe, expect, it } from 'vitest';
import { Limiter } from '../../../src/registry/limiter.js';

describe('Limiter (max-concurrent-* and their SIGHUP reload)', () => {
  it('holds waiters beyond the limit and lets them in, FIFO, when the limit is raised', async () => {
    const l = new Limiter(1);
    const first = await l.acquire();
    const order: number[] = [];
    const second = l.acquire().then((r) => (order.push(2), r));
    const third = l.acquire().then((r) => (order.push(3), r));
    await Promise.resolve();
    expect(order).toEqual([]);
    expect(l.busy).toBe(true);
    l.setLimit(3);
    await Promise.all([second, third]);
    expect(order).toEqual([2, 3]);
    expect(l.busy).toBe(true);
    first();
    expect(l.busy).toBe(false);
  });

  it('a lowered limit applies to the next acquisitions; holders keep their slot', async () => {
    const l = new Limiter(3);
    const a = await l.acquire();
    const b = await l.acquire();
    l.setLimit(1);
    expect(l.busy).toBe(true);
    let got = false;
    const c = l.acquire().then((r) => ((got = true), r));
    a();
    await new Promise((r) => setImmediate(r));
    expect(got).toBe(false);
    b();
    (await c)();
    expect(got).toBe(true);
    l.setLimit(0);
    expect(l.busy).toBe(false);
  });
});
