/** Wait conditions of POST /containers/{id}/wait. */
export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface WaitResult {
  StatusCode: number;
  Error: { Message: string } | null;
}

interface Waiter {
  condition: WaitCondition;
  resolve: (r: WaitResult) => void;
}

/** Pending waits per container, fired by the lifecycle as containers exit and are removed. */
export class Waiters {
  private readonly byId = new Map<string, Waiter[]>();

  add(id: string, condition: WaitCondition): Promise<WaitResult> {
    return new Promise((resolve) => {
      const list = this.byId.get(id) ?? [];
      list.push({ condition, resolve });
      this.byId.set(id, list);
    });
  }

  /** The container stopped: not-running and next-exit waiters get the code; removed waiters keep waiting. */
  exited(id: string, result: WaitResult): void {
    this.fire(id, (w) => w.condition !== 'removed', result);
  }

  removed(id: string, result: WaitResult): void {
    this.fire(id, () => true, result);
  }

  private fire(id: string, which: (w: Waiter) => boolean, result: WaitResult): void {
    const list = this.byId.get(id);
    if (!list) return;
    const keep: Waiter[] = [];
    for (const w of list) {
      if (which(w)) w.resolve(result);
      else keep.push(w);
    }
    if (keep.length > 0) this.byId.set(id, keep);
    else this.byId.delete(id);
  }
}
