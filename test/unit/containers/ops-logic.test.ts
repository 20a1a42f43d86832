import { describe, expect, it } from 'vitest';
import { untilNano } from '../../../src/containers/container-ops.js';
import { applyProbeResult, goDuration, healthSettings, HEALTH_DEFAULTS } from '../../../src/containers/health.js';
import { parseNetDev, StatsCollector } from '../../../src/containers/stats.js';
import { parsePsOutput, splitPsArgs } from '../../../src/containers/top.js';
import type { ContainerRecord } from '../../../src/containers/types.js';

describe('docker top output', () => {
  const ps = [
    'UID          PID    PPID  C STIME TTY          TIME CMD',
    'root        4242    4200  0 10:00 ?        00:00:00 sleep 1000 with args',
    'root        9999       1  0 10:00 ?        00:00:00 /usr/sbin/sshd -D',
    '',
  ].join('\n');

  it('keeps only the container\'s pids and gives the last column the rest of the line', () => {
    expect(parsePsOutput(ps, new Set([4242]))).toEqual({
      Titles: ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'],
      Processes: [['root', '4242', '4200', '0', '10:00', '?', '00:00:00', 'sleep 1000 with args']],
    });
  });

  it('needs a PID column and defaults to -ef', () => {
    expect(() => parsePsOutput('USER COMMAND\nroot sh\n', new Set([1]))).toThrow("Couldn't find PID field in ps output");
    expect(splitPsArgs(undefined)).toEqual(['-ef']);
    expect(splitPsArgs(' -o  pid,comm ')).toEqual(['-o', 'pid,comm']);
  });
});

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

describe('healthchecks', () => {
  const config = (h: Record<string, unknown> | undefined): ContainerRecord['config'] => ({ Healthcheck: h }) as unknown as ContainerRecord['config'];

  it('turns the Test forms into commands with Docker\'s default timings', () => {
    expect(healthSettings(config({ Test: ['CMD-SHELL', 'curl -f http://localhost/'] }))).toEqual({
      test: ['/bin/sh', '-c', 'curl -f http://localhost/'],
      intervalMs: HEALTH_DEFAULTS.intervalNs / 1e6,
      timeoutMs: 30_000,
      startPeriodMs: 0,
      startIntervalMs: 5_000,
      retries: 3,
    });
    expect(healthSettings(config({ Test: ['CMD', 'true'], Interval: 1e9, Retries: 5 }))).toMatchObject({ test: ['true'], intervalMs: 1000, retries: 5 });
    expect(healthSettings(config({ Test: ['NONE'] }))).toBeUndefined();
    expect(healthSettings(config(undefined))).toBeUndefined();
  });

  it('goes unhealthy after `retries` failures, healthy on one success, and ignores failures in the start period', () => {
    const s = { test: ['true'], intervalMs: 1, timeoutMs: 1, startPeriodMs: 0, startIntervalMs: 1, retries: 2 };
    const h = { Status: 'starting', FailingStreak: 0, Log: [] as { Start: string; End: string; ExitCode: number; Output: string }[] };
    const entry = (code: number) => ({ Start: 's', End: 'e', ExitCode: code, Output: '' });
    expect(applyProbeResult(h, entry(1), s, true)).toBe('starting');
    expect(h.FailingStreak).toBe(0);
    expect(applyProbeResult(h, entry(0), s, true)).toBe('healthy');
    expect(applyProbeResult(h, entry(1), s, false)).toBe('healthy');
    expect(applyProbeResult(h, entry(1), s, false)).toBe('unhealthy');
    expect(h.FailingStreak).toBe(2);
    for (let i = 0; i < 5; i++) applyProbeResult(h, entry(0), s, false);
    expect(h.Log).toHaveLength(5);
    expect(h).toMatchObject({ Status: 'healthy', FailingStreak: 0 });
  });

  it('prints timeouts as Go durations', () => {
    expect(goDuration(300)).toBe('300ms');
    expect(goDuration(30_000)).toBe('30s');
    expect(goDuration(1_500)).toBe('1.5s');
    expect(goDuration(90_000)).toBe('1m30s');
  });
});

describe('prune until filter', () => {
  it('takes timestamps and durations before now', () => {
    expect(untilNano('1700000000')).toBe(1_700_000_000_000_000_000n);
    const tenMinutesAgo = BigInt(Date.now() - 600_000) * 1_000_000n;
    const v = untilNano('10m');
    expect(v > tenMinutesAgo - 5_000_000_000n && v < tenMinutesAgo + 5_000_000_000n).toBe(true);
  });
});
