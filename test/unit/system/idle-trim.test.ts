import { describe, expect, it } from 'vitest';
import { IdleTrim } from '../../../src/system/idle-trim.js';

describe('idle trim', () => {
  it('trims once at the first quiet look after activity, never while busy, and not for its own CPU time', () => {
    let cpu = 0;
    let trims = 0;
    const t = new IdleTrim(() => {
      trims++;
      cpu += 50; // an expensive trim
    }, () => cpu, 10);
    // the start is activity: the first quiet look trims
    cpu += 5;
    t.tick();
    expect(trims).toBe(1);
    // quiet looks after it do nothing, the trim's own 50 ms included
    t.tick();
    cpu += 3;
    t.tick();
    expect(trims).toBe(1);
    // busy looks do nothing; the quiet one after them trims once
    cpu += 200;
    t.tick();
    cpu += 11;
    t.tick();
    expect(trims).toBe(1);
    cpu += 2;
    t.tick();
    t.tick();
    expect(trims).toBe(2);
  });
});
