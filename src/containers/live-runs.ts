// What berthd keeps in memory about each container's runs, beside its recorded state: the per-container
// serial queue of lifecycle operations, the attach sessions waiting for the next start, the end-of-run signal
// (log followers and stop wait on it), the pending restart timer and the restart back-off.

import type { AttachHandle, AttachWant } from '../runtime/executor-api.js';
import { RestartBackoff } from './restart-policy.js';

interface Live {
  /** Attach sessions waiting for the next start (docker run attaches before it starts). */
  pendingAttach: { want: AttachWant; resolve: (h: AttachHandle | undefined) => void }[];
  restartTimer?: NodeJS.Timeout;
  backoff: RestartBackoff;
  /** Resolves when the current run ends (log followers stop there). */
  stopped?: Promise<void>;
  markStopped?: () => void;
  /** Serialises lifecycle operations per container. */
  busy: Promise<unknown>;
}

export class LiveRuns {
  private readonly live = new Map<string, Live>();

  private of(id: string): Live {
    let l = this.live.get(id);
    if (!l) {
      l = { pendingAttach: [], backoff: new RestartBackoff(), busy: Promise.resolve() };
      this.live.set(id, l);
    }
    return l;
  }

  /** Runs lifecycle operations of one container one at a time. */
  serial<T>(id: string, op: () => Promise<T>): Promise<T> {
    const l = this.of(id);
    const next = l.busy.then(op, op);
    l.busy = next.catch(() => undefined);
    return next;
  }

  /** A run begins: `stopped(id)` now resolves when endRun(id) is called. */
  beginRun(id: string): void {
    const l = this.of(id);
    let markStopped: () => void = () => undefined;
    l.stopped = new Promise<void>((resolve) => {
      markStopped = resolve;
    });
    l.markStopped = markStopped;
  }

  endRun(id: string): void {
    this.of(id).markStopped?.();
  }

  /** Resolves when the current run ends; undefined when no run began. */
  stopped(id: string): Promise<void> | undefined {
    return this.of(id).stopped;
  }

  /** An attach session that waits for the next start. */
  waitForStart(id: string, want: AttachWant): Promise<AttachHandle | undefined> {
    const l = this.of(id);
    return new Promise((resolve) => l.pendingAttach.push({ want, resolve }));
  }

  /** Hands every waiting attach session its stream (`connect`), or undefined when the start failed. */
  async settleAttaches(id: string, connect?: (want: AttachWant) => Promise<AttachHandle>): Promise<void> {
    for (const p of this.of(id).pendingAttach.splice(0)) p.resolve(connect ? await connect(p.want) : undefined);
  }

  /** The restart policy's delay before the next run (undefined: no restart). */
  restartDelay(id: string, ...args: Parameters<RestartBackoff['decide']>): number | undefined {
    return this.of(id).backoff.decide(...args);
  }

  scheduleRestart(id: string, delay: number, run: () => void): void {
    const l = this.of(id);
    l.restartTimer = setTimeout(() => {
      delete l.restartTimer;
      run();
    }, delay);
  }

  /** Cancels a pending restart; true when there was one. */
  cancelRestart(id: string): boolean {
    const l = this.live.get(id);
    if (!l?.restartTimer) return false;
    clearTimeout(l.restartTimer);
    delete l.restartTimer;
    return true;
  }

  forget(id: string): void {
    this.cancelRestart(id);
    this.live.delete(id);
  }

  /** Daemon shutdown: pending restarts are dropped (the next daemon applies the policies again). */
  shutdown(): void {
    for (const l of this.live.values()) if (l.restartTimer) clearTimeout(l.restartTimer);
  }
}
