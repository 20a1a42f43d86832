import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';
import type { NetworkContext, SandboxRecord } from '../types.js';

/** Empty network namespaces kept ready for --network none containers. */
const NETNS_POOL = 2;

/** Resolves on a later turn of the event loop (after pending I/O callbacks). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * `--network none`: a namespace with only lo, and an endpoint without address on the predefined none
 * network. Namespaces are made ahead of time (see refill) so this mode usually plumbs nothing.
 */
export class NoneMode {
  private readonly pool: string[] = [];
  private filling: Promise<void> | undefined;
  private running = false;

  constructor(private readonly ctx: NetworkContext) {}

  /** Starts (or stops) keeping the pool filled. */
  setRunning(on: boolean): void {
    this.running = on;
    if (on) this.refill();
  }

  /** A pooled namespace path when one is ready (the sandbox then takes that path). */
  take(): string | undefined {
    return this.pool.shift();
  }

  /** Attaches the sandbox to the none network and makes its namespace unless it came from the pool. */
  async create(sb: SandboxRecord, pooled: boolean): Promise<void> {
    const { state } = this.ctx;
    const none = state.findNetwork('none');
    state.addEndpoint(state.blankEndpoint(none, sb.containerId));
    sb.order = [none.Id];
    if (pooled) {
      this.refill();
    } else {
      await this.ctx.settled();
      await this.ctx.plumbing.createNetns(sb.netnsPath!);
    }
  }

  /**
   * Keeps NETNS_POOL empty namespaces ready, made in the background one at a time: creating one is a
   * child process plus the kernel's per-namespace setup, which --network none then skips. Only fresh
   * namespaces are pooled, never released ones (a process may still hold them, with its own state).
   */
  private refill(): void {
    if (this.filling || !this.running) return;
    this.filling = (async () => {
      await nextTurn();
      while (this.running && this.pool.length < NETNS_POOL) {
        const path = join(this.ctx.opts.execRoot, 'netns', `pool-${randomBytes(12).toString('hex')}`);
        await this.ctx.plumbing.createNetns(path);
        this.pool.push(path);
      }
    })()
      .catch((e: unknown) => this.ctx.log.warn({ err: errorMessage(e) }, 'could not pre-create a network namespace'))
      .finally(() => {
        this.filling = undefined;
      });
  }

  /** Stops refilling and removes the pooled namespaces (daemon stop). */
  async drain(): Promise<void> {
    this.running = false;
    await this.filling;
    // Never fails the daemon's stop: a namespace left behind is removed at the next start (removeLeftoverNetns).
    await Promise.all(
      this.pool.splice(0).map((p) =>
        this.ctx.plumbing.deleteNetns(p).catch((e: unknown) => this.ctx.log.warn({ path: p, err: errorMessage(e) }, 'could not remove a pooled network namespace')),
      ),
    );
  }
}
