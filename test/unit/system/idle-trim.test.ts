import { describe, expect, it } from 'vitest';
import { IdleTrim } from '../../../src/system/idle-trim.js';

function harness(gapLooks: number): { t: IdleTrim; calls: string[]; spend(ms: number): void } {
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
    gapLooks,
  );
  return { t, calls, spend: (ms) => (cpu += ms) };
}

describe('idle trim', () => {
  it('collects the heap at the first quiet look after activity and again at the next, trims malloc at the third, never while busy, and not for its own CPU time', () => {
    const { t, calls, spend } = harness(0);
    // the start is activity: the first quiet look collects, the next collects again, the third trims
    spend(5);
    t.tick();
    expect(calls).toEqual(['heap']);
    t.tick();
    expect(calls).toEqual(['heap', 'heap']);
    t.tick();
    expect(calls).toEqual(['heap', 'heap', 'malloc']);
    // quiet looks after it do nothing, whatever the releases cost
    t.tick();
    spend(3);
    t.tick();
    expect(calls).toEqual(['heap', 'heap', 'malloc']);
    // busy looks do nothing; the quiet one after them starts the releases again, once
    spend(200);
    t.tick();
    spend(11);
    t.tick();
    expect(calls).toEqual(['heap', 'heap', 'malloc']);
    spend(2);
    t.tick();
    t.tick();
    t.tick();
    t.tick();
    expect(calls).toEqual(['heap', 'heap', 'malloc', 'heap', 'heap', 'malloc']);
  });

  it('keeps releases gapLooks looks apart, the first one at once', () => {
    const { t, calls, spend } = harness(5);
    t.tick();
    t.tick();
    t.tick();
    expect(calls).toEqual(['heap', 'heap', 'malloc']);
    // activity right after: the release waits until 5 looks have passed since the last one began
    spend(50);
    t.tick();
    t.tick();
    expect(calls).toEqual(['heap', 'heap', 'malloc']);
    t.tick();
    expect(calls).toEqual(['heap', 'heap', 'malloc', 'heap']);
  });
});
