/**
 * Gives freed memory back to the kernel when the daemon goes quiet. glibc keeps what berthd frees in its malloc
 * arenas (V8's compiler zones, buffers of a finished log read or pull, sqlite's pages) and releases only the top
 * of the main heap; after start ~4 MB of such free pages stay resident for good. Once a second the trimmer looks
 * at the CPU time the process used (all threads): a second with more than `busyCpuMs` is activity; the first quiet
 * second after activity trims, once. Nothing runs per request, and a busy daemon is never trimmed.
 */
export class IdleTrim {
  private timer: NodeJS.Timeout | undefined;
  private lastCpu = 0;
  /** Activity since the last trim; the start of the daemon is activity. */
  private pending = true;

  constructor(
    private readonly trim: () => void,
    private readonly cpuMs: () => number = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    },
    private readonly busyCpuMs = 10,
  ) {}

  start(everyMs = 1000): void {
    this.lastCpu = this.cpuMs();
    this.timer = setInterval(() => this.tick(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look (the interval's): trims when the period since the last look was quiet and followed activity. */
  tick(): void {
    const now = this.cpuMs();
    const used = now - this.lastCpu;
    this.lastCpu = now;
    if (used > this.busyCpuMs) {
      this.pending = true;
      return;
    }
    if (!this.pending) return;
    this.pending = false;
    this.trim();
    // the trim's own CPU time is not activity
    this.lastCpu = this.cpuMs();
  }
}
