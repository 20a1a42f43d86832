import { describe, expect, it } from 'vitest';
import { dockerCgroupStats, emptyBlkio, parseNetDev, StatsCollector } from '../../../src/containers/stats.js';
import type { CgroupCounters } from '../../../src/runtime/cgroups/index.js';
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

  it('shapes raw counters as Docker\'s stats: limits capped at host memory, an unlimited pids limit as 0, v2 I/O as read/write bytes', () => {
    const counters: CgroupCounters = {
      cpu: { usageNs: 10, kernelNs: 3, userNs: 7, periods: 1, throttledPeriods: 0, throttledNs: 0 },
      memory: { usage: 100, limit: Infinity, stat: { anon: 5 } },
      pids: { current: 2, limit: Infinity },
      io: { version: '2', devices: [{ major: 8, minor: 0, rbytes: 4, wbytes: 6 }] },
    };
    const s = dockerCgroupStats(counters, 4096);
    expect(s.cpu_stats).toEqual({
      cpu_usage: { total_usage: 10, usage_in_kernelmode: 3, usage_in_usermode: 7 },
      throttling_data: { periods: 1, throttled_periods: 0, throttled_time: 0 },
    });
    expect(s.memory_stats).toEqual({ usage: 100, limit: 4096, stats: { anon: 5 } });
    expect(s.pids_stats).toEqual({ current: 2, limit: 0 });
    expect(s.blkio_stats).toEqual({
      ...emptyBlkio(),
      io_service_bytes_recursive: [
        { major: 8, minor: 0, op: 'read', value: 4 },
        { major: 8, minor: 0, op: 'write', value: 6 },
      ],
    });
  });
});
