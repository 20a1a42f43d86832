// Healthchecks (image HEALTHCHECK or --health-* flags): probes run as execs in the container, dockerd's rules
// (daemon/health.go): the first probe one interval after start (start interval during the start period), a
// probe that outlives its timeout is killed and fails with exit code -1, failures inside the start period do not
// count, `retries` consecutive failures make the container unhealthy, one success makes it healthy, the last
// five results are kept, and every status change publishes `health_status: <status>`.

import type { EventBus } from '../events/event-bus.js';
import { errorMessage } from '../errors.js';
import type { OutputChunk } from '../runtime/executor.js';
import type { Logger } from '../util/logger.js';
import { nowNano, rfc3339Nano } from '../util/time.js';
import type { ContainerService } from './container-service.js';
import type { ExecService } from './exec-service.js';
import type { ContainerState, ContainerView, HealthLogEntry } from './types.js';

export const HEALTH_DEFAULTS = {
  intervalNs: 30_000_000_000,
  timeoutNs: 30_000_000_000,
  startPeriodNs: 0,
  startIntervalNs: 5_000_000_000,
  retries: 3,
} as const;
const MAX_LOG_ENTRIES = 5;
const MAX_OUTPUT = 4096;

export interface HealthSettings {
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  startIntervalMs: number;
  retries: number;
}

/** The probe command and timings of a container config, or undefined when it has no healthcheck. */
export function healthSettings(config: ContainerView['config']): HealthSettings | undefined {
  const h = config.Healthcheck as { Test?: unknown; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number } | undefined;
  if (!h || !Array.isArray(h.Test) || h.Test.length === 0) return undefined;
  const test = h.Test.map(String);
  let cmd: string[];
  if (test[0] === 'NONE') return undefined;
  if (test[0] === 'CMD') cmd = test.slice(1);
  else if (test[0] === 'CMD-SHELL') cmd = ['/bin/sh', '-c', test.slice(1).join(' ')];
  else cmd = test; // dockerd treats an unknown first word as a command (legacy form)
  if (cmd.length === 0) return undefined;
  const ms = (ns: number | undefined, dflt: number): number => (ns && ns > 0 ? ns : dflt) / 1e6;
  return {
    test: cmd,
    intervalMs: ms(h.Interval, HEALTH_DEFAULTS.intervalNs),
    timeoutMs: ms(h.Timeout, HEALTH_DEFAULTS.timeoutNs),
    startPeriodMs: ms(h.StartPeriod, HEALTH_DEFAULTS.startPeriodNs),
    startIntervalMs: ms(h.StartInterval, HEALTH_DEFAULTS.startIntervalNs),
    retries: h.Retries && h.Retries > 0 ? h.Retries : HEALTH_DEFAULTS.retries,
  };
}

/** Go's time.Duration String for whole milliseconds and above ("30s", "1.5s", "500ms", "1m0s"). */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const totalS = ms / 1000;
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS % 3600) / 60);
  const s = Number((totalS % 60).toFixed(3));
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

export interface ProbeResult {
  exitCode: number;
  output: string;
}

/** Pure state transition of one probe result (dockerd's handleProbeResult). Returns the new status. */
export function applyProbeResult(
  health: NonNullable<ContainerState['Health']>,
  entry: HealthLogEntry,
  s: HealthSettings,
  inStartPeriod: boolean,
): string {
  health.Log = [...health.Log, entry].slice(-MAX_LOG_ENTRIES);
  if (entry.ExitCode === 0) {
    health.FailingStreak = 0;
    health.Status = 'healthy';
  } else if (!(health.Status === 'starting' && inStartPeriod)) {
    health.FailingStreak++;
    if (health.FailingStreak >= s.retries) health.Status = 'unhealthy';
  }
  return health.Status;
}

interface Monitor {
  timer?: NodeJS.Timeout;
  stopped: boolean;
  startedAtMs: number;
  settings: HealthSettings;
  running?: Promise<void>;
}

export interface HealthDeps {
  containers: ContainerService;
  execs: ExecService;
  events: EventBus;
  log: Logger;
}

export class HealthMonitor {
  private readonly monitors = new Map<string, Monitor>();
  private readonly unsubscribe: () => void;

  constructor(private readonly d: HealthDeps) {
    this.unsubscribe = d.events.subscribe((e) => {
      if (e.Type !== 'container') return;
      if (e.Action === 'start') this.begin(e.Actor.ID, true);
      else if (e.Action === 'die' || e.Action === 'destroy') this.end(e.Actor.ID);
    });
  }

  /** After a daemon restart: running containers with a healthcheck are probed again (state kept). */
  resume(): void {
    for (const c of this.d.containers.all()) if (c.state.Running) this.begin(c.id, false);
  }

  shutdown(): void {
    this.unsubscribe();
    for (const id of [...this.monitors.keys()]) this.end(id);
  }

  private begin(id: string, reset: boolean): void {
    const c = this.d.containers.find(id);
    if (!c) return;
    this.end(id);
    const settings = healthSettings(c.config);
    if (!settings) {
      if (c.state.Health && reset) this.d.containers.setHealth(id, undefined);
      return;
    }
    if (reset || !c.state.Health) {
      this.d.containers.setHealth(id, { Status: 'starting', FailingStreak: 0, Log: reset ? [] : [...(c.state.Health?.Log ?? [])] });
    }
    const startedAtMs = Date.parse(c.state.StartedAt) || Date.now();
    const m: Monitor = { stopped: false, startedAtMs, settings };
    this.monitors.set(id, m);
    this.schedule(id, m);
  }

  private end(id: string): void {
    const m = this.monitors.get(id);
    if (!m) return;
    m.stopped = true;
    if (m.timer) clearTimeout(m.timer);
    this.monitors.delete(id);
  }

  private interval(id: string, m: Monitor): number {
    const s = m.settings;
    if (Date.now() - m.startedAtMs >= s.startPeriodMs) return s.intervalMs;
    const c = this.d.containers.find(id);
    return c?.state.Health?.Status === 'starting' ? s.startIntervalMs : s.intervalMs;
  }

  private schedule(id: string, m: Monitor): void {
    if (m.stopped) return;
    m.timer = setTimeout(() => {
      m.running = this.probeOnce(id, m).catch((e: unknown) => this.d.log.warn({ err: errorMessage(e), id }, 'health probe failed'));
      void m.running.finally(() => this.schedule(id, m));
    }, this.interval(id, m));
    m.timer.unref();
  }

  private async probeOnce(id: string, m: Monitor): Promise<void> {
    const c = this.d.containers.find(id);
    if (!c || !c.state.Running || m.stopped) return;
    if (c.state.Paused) return;
    const start = nowNano();
    const result = await this.runProbe(c, m.settings);
    if (m.stopped || !c.state.Running || !c.state.Health) return;
    const entry: HealthLogEntry = { Start: rfc3339Nano(start), End: rfc3339Nano(nowNano()), ExitCode: result.exitCode, Output: result.output };
    const old = c.state.Health.Status;
    const inStartPeriod = Date.now() - m.startedAtMs < m.settings.startPeriodMs;
    const health = { ...c.state.Health, Log: [...c.state.Health.Log] };
    const status = applyProbeResult(health, entry, m.settings, inStartPeriod);
    if (!this.d.containers.setHealth(id, health, { whenRunning: true })) return;
    if (status !== old) {
      this.d.events.publish('container', `health_status: ${status}`, c.id, { ...(c.config.Labels ?? {}), image: c.config.Image, name: c.name });
    }
  }

  /** One probe: an exec of the test command; output (stdout+stderr) capped at 4 KiB; -1 on timeout. */
  private async runProbe(c: ContainerView, s: HealthSettings): Promise<ProbeResult> {
    let execId: string;
    try {
      execId = this.d.execs.create(c.id, { Cmd: s.test, AttachStdout: true, AttachStderr: true, Tty: false });
    } catch (e) {
      return { exitCode: -1, output: errorMessage(e) };
    }
    let started;
    try {
      started = await this.d.execs.start(execId);
    } catch (e) {
      return { exitCode: -1, output: errorMessage(e) };
    }
    const { handle } = started;
    const chunks: Buffer[] = [];
    let size = 0;
    const collect = (async () => {
      for await (const chunk of handle.output as AsyncIterable<OutputChunk>) {
        if (size < MAX_OUTPUT) {
          chunks.push(chunk.data);
          size += chunk.data.length;
        }
      }
    })().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), s.timeoutMs);
    });
    const outcome = await Promise.race([handle.exit, timedOut]);
    if (timer) clearTimeout(timer);
    if (outcome === 'timeout') {
      await handle.kill(9).catch(() => undefined);
      handle.output.resume();
      return { exitCode: -1, output: `Health check exceeded timeout (${goDuration(s.timeoutMs)})` };
    }
    await collect;
    return { exitCode: outcome.exitCode, output: Buffer.concat(chunks).subarray(0, MAX_OUTPUT).toString('utf8') };
  }
}
