import { describe, expect, it } from 'vitest';
import { IdleTrim } from '../../../src/system/idle-trim.js';

describe('idle trim', () => {
  it('releases the heap at the first quiet look after activity and malloc at the next, never while busy, and not for its own CPU time', () => {
    let cpu = 0;
    const calls: string[] = [];
    const t = new IdleTrim(
      {
        heap: () => {
          calls.push('heap');
          cpu += 40; // a collection's CPU time, spent in the next second
        },
        malloc: () => {
          calls.push('malloc');
          cpu += 30;
        },
      },
      () => cpu,
      10,
    );
    // the start is activity: the first quiet look collects, the next trims
    cpu += 5;
    t.tick();
    expect(calls).toEqual(['heap']);
    t.tick();
    expect(calls).toEqual(['heap', 'malloc']);
    // quiet looks after it do nothing, whatever the releases cost
    t.tick();
    cpu += 3;
    t.tick();
    expect(calls).toEqual(['heap', 'malloc']);
    // busy looks do nothing; the quiet one after them starts the releases again, once
    cpu += 200;
    t.tick();
    cpu += 11;
    t.tick();
    expect(calls).toEqual(['heap', 'malloc']);
    cpu += 2;
    t.tick();
    t.tick();
    t.tick();
    expect(calls).toEqual(['heap', 'malloc', 'heap', 'malloc']);
  });
});
