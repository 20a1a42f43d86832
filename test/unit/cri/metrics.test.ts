import { describe, expect, it } from 'vitest';
import { metricDescriptors, parseNetDev } from '../../../src/cri/metrics.js';

describe('CRI metrics', () => {
  it('reads /proc/<pid>/net/dev without lo', () => {
    const text = [
      'Inter-|   Receive                                                |  Transmit',
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
      '    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0',
      '  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0',
    ].join('\n');
    expect(parseNetDev(text)).toEqual([{ name: 'eth0', rxBytes: 5000, rxPackets: 40, rxErrs: 1, rxDrop: 2, txBytes: 3000, txPackets: 30, txErrs: 3, txDrop: 4 }]);
  });

  it('describes each family once, with help and the cAdvisor label keys', () => {
    const d = metricDescriptors();
    expect(new Set(d.map((x) => x.name)).size).toBe(d.length);
    for (const x of d) {
      expect(x.help).not.toBe('');
      expect((x.label_keys as string[]).slice(0, 6)).toEqual(['container', 'id', 'image', 'name', 'namespace', 'pod']);
    }
  });
});
