import { describe, expect, it } from 'vitest';
import { parseProcStat, readSystemCpu } from '../../../../src/runtime/cgroups/index.js';

describe('host CPU figures for stats', () => {
  it('sums user..softirq of the cpu line in ns and counts cpuN lines', () => {
    const text = [
      'cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0',
      'cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0',
      'cpu1 1335594 30993 501432 13479264 5180 0 3431 0 27042 0',
      'intr 1462898 0',
      '',
    ].join('\n');
    const ticks = 10132153 + 290696 + 3084719 + 46828483 + 16683 + 0 + 25195;
    expect(parseProcStat(text)).toEqual({ systemCpuUsage: ticks * 1e7, onlineCpus: 2 });
    expect(() => parseProcStat('cpu 1 2 3\n')).toThrow('invalid number of cpu fields');
  });

  it('reads the real /proc/stat', async () => {
    const s = await readSystemCpu();
    expect(s.onlineCpus).toBeGreaterThan(0);
    expect(s.systemCpuUsage).toBeGreaterThan(0);
  });
});
