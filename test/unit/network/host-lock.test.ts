import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { withHostLock } from '../../../src/network/host-lock.js';

describe('withHostLock: one holder at a time, host-wide', () => {
  it('runs holders of the same name one after the other, and others alongside', async () => {
    const name = `test-${randomUUID()}`;
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = withHostLock(name, async () => {
      order.push('first in');
      await held;
      order.push('first out');
    });
    // Another name is not blocked by the first holder.
    await withHostLock(`${name}-other`, async () => {
      order.push('other');
    });
    const second = withHostLock(name, async () => {
      order.push('second in');
    });
    await new Promise((r) => setImmediate(r));
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first in', 'other', 'first out', 'second in']);
  });

  it('is released when the holder throws', async () => {
    const name = `test-${randomUUID()}`;
    await expect(withHostLock(name, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await withHostLock(name, () => Promise.resolve(7), 1000)).toBe(7);
  });

  it('gives up after its timeout with a message naming the lock', async () => {
    const name = `test-${randomUUID()}`;
    let release!: () => void;
    const holder = withHostLock(name, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setImmediate(r));
    await expect(withHostLock(name, () => Promise.resolve(), 50)).rejects.toThrow(`host lock berth/${name} still held by another daemon after 50 ms`);
    release();
    await holder;
  });
});
