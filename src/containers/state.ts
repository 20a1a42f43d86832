// A container's State: what is recorded (Status and the facts of the last run) and the flags that follow from
// Status. The flags are computed here and nowhere else; they are not stored.

import { ConflictError } from '../errors.js';
import type { ContainerState, ContainerStatus, ContainerView, DeepReadonly, RecordedState } from './types.js';

/** Go's zero time, as dockerd shows a time that never happened. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

/** The state of a container that was never started. */
export function emptyState(): ContainerState {
  return stateOf({ Status: 'created', OOMKilled: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME });
}

/** A process runs (paused or not). */
export function isRunning(s: { readonly Status: ContainerStatus }): boolean {
  return s.Status === 'running' || s.Status === 'paused';
}

/** The recorded fields with their derived flags. */
export function stateOf(r: DeepReadonly<RecordedState>): ContainerState {
  const recorded = recordedState(r);
  return {
    ...recorded,
    Running: isRunning(recorded),
    Paused: recorded.Status === 'paused',
    Restarting: recorded.Status === 'restarting',
    Dead: recorded.Status === 'dead',
  };
}

/** What is stored of a state (also of an older record that stored the flags): the flags dropped. */
export function recordedState(s: DeepReadonly<RecordedState>): RecordedState {
  const { Status, OOMKilled, Pid, ExitCode, Error, StartedAt, FinishedAt, Health } = s as RecordedState;
  return { Status, OOMKilled, Pid, ExitCode, Error, StartedAt, FinishedAt, ...(Health ? { Health } : {}) };
}

/** State as dockerd's inspect serves it, in its field order: Running is also true while restarting. */
export function inspectState(s: DeepReadonly<ContainerState>): Record<string, unknown> {
  return {
    Status: s.Status,
    Running: isRunning(s) || s.Status === 'restarting',
    Paused: s.Status === 'paused',
    Restarting: s.Status === 'restarting',
    OOMKilled: s.OOMKilled,
    Dead: s.Status === 'dead',
    Pid: s.Pid,
    ExitCode: s.ExitCode,
    Error: s.Error,
    StartedAt: s.StartedAt,
    FinishedAt: s.FinishedAt,
    ...(s.Health ? { Health: s.Health } : {}),
  };
}

/** dockerd's cleanupContainer: a paused, running or restarting container is removed only with force (or after a stop). */
export function refuseRemovalOf(c: ContainerView): void {
  if (c.state.Status === 'paused') {
    throw new ConflictError(`You cannot remove a paused container ${c.id}. Unpause and then stop the container before attempting removal or force remove`);
  }
  const state = isRunning(c.state) ? 'running' : c.state.Status === 'restarting' ? 'restarting' : undefined;
  if (state) {
    throw new ConflictError(`You cannot remove a ${state} container ${c.id}. Stop the container before attempting removal or force remove`);
  }
}
