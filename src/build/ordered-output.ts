// The build stream of concurrent stages in dockerd's order: each stage's messages are held back until the
// stages before it are done, so the output reads as a sequential build's.

import type { BuildEmit } from './builder.js';

/** Output of concurrent stages in stage order: stage i streams live once stages 0..i-1 are finished. */
export class OrderedOutput {
  private head = 0;
  private readonly buffers: Record<string, unknown>[][];
  private readonly done: boolean[];
  private readonly failed: boolean[] = [];
  private stopped = false;

  constructor(
    private readonly emit: BuildEmit,
    n: number,
  ) {
    this.buffers = Array.from({ length: n }, () => []);
    this.done = Array.from({ length: n }, () => false);
  }

  emitter(i: number): BuildEmit {
    return (m) => {
      if (this.stopped) return;
      if (i === this.head) this.emit(m);
      else (this.buffers[i] as Record<string, unknown>[]).push(m);
    };
  }

  /** Stage i ended; a failed stage is the last whose output is shown (as dockerd stops at the failing step). */
  finish(i: number, failed: boolean): void {
    this.done[i] = true;
    this.failed[i] = failed;
    while (!this.stopped && this.head < this.done.length && this.done[this.head]) {
      if (this.failed[this.head]) {
        this.stopped = true;
        return;
      }
      this.head++;
      const next = this.buffers[this.head];
      if (next) {
        for (const m of next.splice(0)) this.emit(m);
      }
    }
  }
}
