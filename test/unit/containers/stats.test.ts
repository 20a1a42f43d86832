import { describe, expect, it } from 'vitest';
import { parseNetDev, StatsCollector } from '../../../src/containers/stats.js';
import type { ContainerRecord } from '../../../src/containers/types.js';

describe('stats', () => {
  it('reads the container\'s interfaces from /proc/<pid>/net/dev without lo', () => {
    const text = [
      'Inter-|   Receive                                                |  Transmit',
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
      '    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0',
      '  eth0:    1296      16    1    2    0     0          0         0      936      12    3    4    0     0       0          0',
    ].join('\n');
    expect(parseNetDev(text)).toEqual({
      eth0: { rx_bytes: 1296, rx_packets: 16, rx_errors: 1, rx_dropped: 2, tx_bytes: 936, tx_packets: 12, tx_errors: 3, tx_dropped: 4 },
    });
  });

  it('answers zeros with the container\'s name and id when it is not running', () => {
    const s = StatsCollector.stopped({ id: 'abc', name: 'web' } as ContainerRecord);
    expect(s).toMatchObject({ name: '/web', id: 'abc', read: '0001-01-01T00:00:00Z', memory_stats: {}, pids_stats: {} });
  });
});
