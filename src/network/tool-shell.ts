import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../util/logger.js';
import { BerthError } from '../errors.js';

/**
 * Long-lived `/bin/sh` helpers that run the plumbing's short command scripts (ip, unshare, nsenter,
 * umount). Node forks the whole daemon for every child process, and copying the page tables of a
 * ~100 MB daemon makes each spawn cost several ms (more under load); a small shell forks cheaply.
 * A script's stdout and stderr come back together with its exit status; its stdin is /dev/null
 * (here-documents give commands their input). Up to `workers` scripts run at once; a helper that dies
 * is replaced on the next call, and one left idle for `idleMs` exits (each is ~1.7 MB resident; an idle
 * daemon keeps none, a busy one keeps its shells warm).
 */

export interface ShellResult {
  code: number;
  output: string;
}

/** Quotes a word for sh. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

export interface ShellStep {
  /** The command line, its words already quoted (shQuote). */
  command: string;
  /** Lines fed on its stdin (a here-document). */
  input?: readonly string[];
}

/** A script running the steps in order while they succeed (`a && b && ...`), each with its input. */
export function chain(steps: readonly ShellStep[]): string {
  const heads = steps.map((s, i) => (s.input ? `${s.command} <<'BERTH_IN${i}'` : s.command));
  const bodies = steps.flatMap((s, i) => (s.input ? [...s.input, `BERTH_IN${i}`] : []));
  return [heads.join(' && '), ...bodies].join('\n');
}

/** The pipe of a child's stdio stream (a net.Socket at run time) as far as ref/unref go. */
function handle(s: unknown): { ref?: () => void; unref?: () => void } {
  return s as { ref?: () => void; unref?: () => void };
}

interface Job {
  script: string;
  resolve: (r: ShellResult) => void;
  reject: (e: Error) => void;
}

class Worker {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly marker = `__berth_done_${randomBytes(8).toString('hex')}`;
  private buf = '';
  private job: Job | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  dead = false;

  constructor(
    private readonly onIdle: (w: Worker) => void,
    private readonly idleMs: number,
  ) {
    this.child = spawn('/bin/sh', [], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => this.data(d));
    // The scripts' stderr goes to stdout; anything here is the shell's own complaint.
    this.child.stderr.on('data', (d: string) => {
      this.buf += d;
    });
    this.child.stdin.on('error', () => undefined);
    this.child.on('error', (e) => this.die(e));
    this.child.on('exit', (code, signal) => this.die(new BerthError(`plumbing shell exited (${signal ?? `status ${code}`})`)));
    this.idle();
  }

  get busy(): boolean {
    return this.job !== undefined;
  }

  run(job: Job): void {
    clearTimeout(this.idleTimer);
    this.job = job;
    this.buf = '';
    handle(this.child.stdout).ref?.();
    this.child.stdin.write(`{\n${job.script}\n} </dev/null 2>&1; printf '\\n%s %d\\n' ${this.marker} $?\n`);
  }

  close(): void {
    clearTimeout(this.idleTimer);
    this.dead = true;
    this.child.stdin.end();
  }

  private idle(): void {
    // An idle helper never keeps the process alive.
    for (const s of [this.child.stdout, this.child.stderr, this.child.stdin]) handle(s).unref?.();
    this.child.unref();
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.job || this.dead) return;
      this.close();
      this.onIdle(this);
    }, this.idleMs);
    this.idleTimer.unref();
  }

  private data(d: string): void {
    this.buf += d;
    const m = new RegExp(`\\n${this.marker} (\\d+)\\n`).exec(this.buf);
    if (!m || !this.job) return;
    const job = this.job;
    const output = this.buf.slice(0, m.index);
    this.buf = this.buf.slice(m.index + m[0].length);
    this.job = undefined;
    this.idle();
    job.resolve({ code: Number(m[1]), output });
    this.onIdle(this);
  }

  private die(e: Error): void {
    if (this.dead && !this.job) return;
    this.dead = true;
    const job = this.job;
    this.job = undefined;
    job?.reject(new BerthError(`${e.message}${this.buf ? `: ${this.buf.trim()}` : ''}`, { cause: e }));
    this.onIdle(this);
  }
}

export class ToolShell {
  private readonly pool: Worker[] = [];
  private readonly queue: Job[] = [];

  constructor(
    private readonly log: Logger,
    private readonly workers = 2,
    private readonly idleMs = 10_000,
  ) {}

  /** How many helper shells are running. */
  get shells(): number {
    return this.pool.filter((w) => !w.dead).length;
  }

  /** Runs a script; resolves with its combined output and status (non-zero is not an error here). */
  exec(script: string): Promise<ShellResult> {
    this.log.debug({ script }, 'run shell script');
    return new Promise((resolve, reject) => {
      this.queue.push({ script, resolve, reject });
      this.dispatch();
    });
  }

  /** Runs a script; a non-zero status rejects with its output. */
  async run(script: string): Promise<string> {
    const r = await this.exec(script);
    if (r.code !== 0) throw new BerthError(`${script.split('\n')[0]}: exit status ${r.code}: ${r.output.trim()}`);
    return r.output;
  }

  /** Ends the helpers (they exit once their current script is done). */
  close(): void {
    for (const w of this.pool.splice(0)) w.close();
  }

  private dispatch(): void {
    for (let i = this.pool.length - 1; i >= 0; i--) if (this.pool[i]!.dead) this.pool.splice(i, 1);
    while (this.queue.length > 0) {
      let w = this.pool.find((x) => !x.busy && !x.dead);
      if (!w && this.pool.length < this.workers) {
        w = new Worker(() => this.dispatch(), this.idleMs);
        this.pool.push(w);
      }
      if (!w) return;
      w.run(this.queue.shift()!);
    }
  }
}
