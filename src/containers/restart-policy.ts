import { InvalidParameterError } from '../errors.js';
import type { RestartPolicy } from './types.js';

const INITIAL_DELAY_MS = 100;
const MAX_DELAY_MS = 60_000;
/** A container that ran this long is considered healthy again: the backoff starts over. */
const RESET_AFTER_MS = 10_000;

export function validateRestartPolicy(p: RestartPolicy | undefined, autoRemove: boolean): void {
  const name = p?.Name ?? '';
  if (!['', 'no', 'always', 'unless-stopped', 'on-failure'].includes(name)) {
    throw new InvalidParameterError(`invalid restart policy: unknown policy '${name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
  }
  const retries = p?.MaximumRetryCount ?? 0;
  if (retries < 0) throw new InvalidParameterError('invalid restart policy: maximum retry count cannot be negative');
  if (retries > 0 && name !== 'on-failure') {
    throw new InvalidParameterError(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  }
  if (autoRemove && name !== '' && name !== 'no') {
    throw new InvalidParameterError(`can't create 'AutoRemove' container with restart policy`);
  }
}

/** dockerd's restart manager decision and backoff (100 ms doubling up to 1 min, reset after 10 s up). */
export class RestartBackoff {
  private delay = 0;

  /** Whether to restart after an exit, and after how long. */
  decide(
    policy: RestartPolicy | undefined,
    exitCode: number,
    restartCount: number,
    manuallyStopped: boolean,
    ranForMs: number,
  ): number | undefined {
    const name = policy?.Name ?? '';
    let restart = false;
    switch (name) {
      case 'always':
        restart = !manuallyStopped;
        break;
      case 'unless-stopped':
        restart = !manuallyStopped;
        break;
      case 'on-failure': {
        const max = policy?.MaximumRetryCount ?? 0;
        restart = !manuallyStopped && exitCode !== 0 && (max === 0 || restartCount < max);
        break;
      }
      default:
        restart = false;
    }
    if (!restart) {
      this.delay = 0;
      return undefined;
    }
    if (ranForMs >= RESET_AFTER_MS) this.delay = 0;
    this.delay = this.delay === 0 ? INITIAL_DELAY_MS : Math.min(this.delay * 2, MAX_DELAY_MS);
    return this.delay;
  }

  reset(): void {
    this.delay = 0;
  }
}
