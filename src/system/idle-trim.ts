/** What IdleTrim releases: V8's heap (a memory-reducing collection, run in tasks) and glibc's free arena pages. */
export interface MemoryRelease {
  heap(): void;
  malloc(): void;
}

/**
 * Gives memory back to the kernel when the daemon goes quiet, instead of keeping the peak of its last burst. V8
 * compacts and shrinks its heap only when its memory reducer fires, ~8 s or more after a collection, and glibc
 * keeps what berthd frees in its malloc arenas (V8's compiler zones, buffers of a finished log read or pull,
 * sqlite's pages), releasing only the top of the main heap: after start, ~10 MB of both stay resident.
 * Once a second the trimmer looks at the CPU time the process used (all threads): a second with more than
 * `busyCpuMs` is activity. The first quiet second after activity (the start is activity) starts V8's
 * memory-reducing collection; the next look, once it has run, starts a second one, and the look after that trims
 * malloc's arenas. The second collection is what gives back the old generation's pages the first one emptied by
 * compaction (after a start: the heap's committed size 12.8 -> 11.3 MB, RssAnon 2.4 MiB lower; a third frees
 * nothing more). Each is incremental, in tasks (its final pause ~5-15 ms). Nothing runs per request,
 * and a busy daemon is never interrupted. Releases are at least `gapLooks` looks apart (the start's at once), so a
 * client polling every few seconds costs one collection per half minute, not one per poll.
 */
export class IdleTrim {
  private timer: NodeJS.Timeout | undefined;
  private lastCpu = 0;
  /** Activity since the last release; the start of the daemon is activity. */
  private pending = true;
  /** The releases still to run, one per look, after the first collection (whose CPU time is not activity). */
  private steps: Array<keyof MemoryRelease> = [];
  /** Looks since the last release began. */
  private sinceRelease = Infinity;

  constructor(
    private readonly release: MemoryRelease,
    private readonly cpuMs: () => number = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    },
    private readonly busyCpuMs = 10,
    private readonly gapLooks = 30,
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

  /** One look (the interval's). */
  tick(): void {
    const used = this.cpuMs() - this.lastCpu;
    this.sinceRelease++;
    const step = this.steps.shift();
    if (step) {
      this.release[step]();
    } else if (used > this.busyCpuMs) {
      this.pending = true;
    } else if (this.pending && this.sinceRelease >= this.gapLooks) {
      this.pending = false;
      this.sinceRelease = 0;
      this.steps = ['heap', 'malloc'];
      this.release.heap();
    }
    // the releases' own CPU time (the collection's included) is not activity
    this.lastCpu = this.cpuMs();
  }
}
