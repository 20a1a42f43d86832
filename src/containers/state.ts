// A container's State: what is recorded and what follows from it.

import { ZERO_TIME } from './presenters.js';
import type { ContainerState, DeepReadonly } from './types.js';

/** The state of a container that was never started. */
export function emptyState(): ContainerState {
  return {
    Status: 'created',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: ZERO_TIME,
    FinishedAt: ZERO_TIME,
  };
}

/** Its process runs (paused or not). */
export function isRunning(s: DeepReadonly<ContainerState>): boolean {
  return s.Running;
}
