/** A counting semaphore: at most `limit` holders at once, FIFO. */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private limit: number) {
    if (!(limit >= 1)) this.limit = 1;
  }

  /** Changes the number of holders allowed (SIGHUP reload); a raised limit lets waiters in at once. */
  setLimit(limit: number): void {
    this.limit = limit >= 1 ? limit : 1;
    while (this.active < this.limit) {
      const next = this.queue.shift();
      if (!next) break;
      this.active++;
      next();
    }
  }

  /** True when acquire() would wait. */
  get busy(): boolean {
    return this.active >= this.limit;
  }

  async acquire(): Promise<() => void> {
    if (this.active < this.limit) {
      this.active++;
    } else {
      await new Promise<void>((resolve) => this.queue.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Above a lowered limit, a released slot is given up rather than handed on.
      if (this.active > this.limit) {
        this.active--;
        return;
      }
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
