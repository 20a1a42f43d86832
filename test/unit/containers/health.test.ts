import { describe, expect, it } from 'vitest';
import { applyProbeResult, goDuration, healthSettings, HEALTH_DEFAULTS } from '../../../src/containers/health.js';
import type { ContainerRecord } from '../../../src/containers/types.js';

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
