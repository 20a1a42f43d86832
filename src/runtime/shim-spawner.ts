// Client of `berth-shim spawner` (native/shim/spawner.c): one small long-lived process that forks shims for
// berthd. child_process.spawn forks berthd's whole (~100 MB) Node process for each shim, which costs several
// ms per container start; the spawner is a few hundred KB. It is started on first use, restarted when it
// has died, and ends by itself when berthd goes away (EOF on its stdin). Shims never depend on it: each is
// a session leader that outlives the spawner like it outlives berthd.
//
//   ShimSpawner.for(shimPath, logFile, log) → the process-wide spawner for that binary
//   spawner.spawn(mode, planPath, shimLog) → Promise<string>   the shim's report line ('' if it left none)
//   ShimSpawner.accepts(...paths) → whether the paths fit the line protocol (no TAB / LF / NUL)
//   spawnShim(launcher, mode, planPath, shimLog) → the init's pid: through the spawner, or spawned directly when
//     the paths do not fit its protocol; a shim's failure report becomes a ContainerStartError

import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { BerthError, errorMessage } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { ContainerStartError } from './executor-api.js';

interface Pending {
  resolve: (report: string) => void;
  reject: (err: Error) => void;
}

const spawners = new Map<string, ShimSpawner>();

export class ShimSpawner {
  private child: ChildProcessByStdio<Writable, Readable, null> | undefined;
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private text = '';

  private constructor(
    private readonly shimPath: string,
    private readonly logFile: string,
    private readonly log: Logger,
  ) {}

  /** One spawner per shim binary and process (several Executors share it). */
  static for(shimPath: string, logFile: string, log: Logger): ShimSpawner {
    let s = spawners.get(shimPath);
    if (!s) {
      s = new ShimSpawner(shimPath, logFile, log.child({ part: 'shim-spawner' }));
      spawners.set(shimPath, s);
    }
    return s;
  }

  static accepts(...values: string[]): boolean {
    return values.every((v) => !/[\t\n\0]/.test(v));
  }

  spawn(mode: 'create' | 'exec', planPath: string, shimLog: string): Promise<string> {
    const child = this.ensure();
    const id = String(this.nextId++);
    return new Promise<string>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.refWhileBusy(child);
      child.stdin.write(`${id}\t${mode}\t${planPath}\t${shimLog}\n`);
    });
  }

  private ensure(): ChildProcessByStdio<Writable, Readable, null> {
    if (this.child) return this.child;
    const logFd = openSync(this.logFile, 'a', 0o600);
    let child: ChildProcessByStdio<Writable, Readable, null>;
    try {
      child = spawn(this.shimPath, ['spawner'], { stdio: ['pipe', 'pipe', logFd] }) as ChildProcessByStdio<Writable, Readable, null>;
    } finally {
      closeSync(logFd);
    }
    this.child = child;
    this.text = '';
    child.stdout.on('data', (d: Buffer) => this.onData(d));
    // berthd never waits for the spawner: it must not keep the event loop alive when idle
    child.unref();
    const gone = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      const err = new BerthError(`berth-shim spawner ${why}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    child.on('error', (err) => gone(`failed: ${errorMessage(err)}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.log.warn({ code, signal }, 'shim spawner exited; a new one starts on the next spawn');
      gone(`exited (${signal ?? code ?? 'unknown'})`);
    });
    child.stdin.on('error', () => gone('closed its input'));
    this.refWhileBusy(child);
    return child;
  }

  /** The pipes keep berthd's event loop alive only while a spawn is waiting for its report. */
  private refWhileBusy(child: ChildProcessByStdio<Writable, Readable, null>): void {
    const handles = [child.stdin, child.stdout] as unknown as { ref?: () => void; unref?: () => void }[];
    for (const h of handles) {
      if (this.pending.size > 0) h.ref?.();
      else h.unref?.();
    }
  }

  private onData(d: Buffer): void {
    this.text += d.toString('utf8');
    let nl: number;
    while ((nl = this.text.indexOf('\n')) >= 0) {
      const line = this.text.slice(0, nl);
      this.text = this.text.slice(nl + 1);
      const sp = line.indexOf(' ');
      const id = sp < 0 ? line : line.slice(0, sp);
      const p = this.pending.get(id);
      if (!p) continue;
      this.pending.delete(id);
      p.resolve(sp < 0 ? '' : line.slice(sp + 1));
    }
    if (this.child) this.refWhileBusy(this.child);
  }
}

/** Where shims come from: the berth-shim binary and the exec root (for the spawner's log). */
export interface ShimLauncher {
  shimPath: string;
  execRoot: string;
  log: Logger;
}

/** Starts a shim (through the shim spawner) and waits for its one-line report; resolves with the init's pid. */
export async function spawnShim(o: ShimLauncher, mode: 'create' | 'exec', planPath: string, shimLog: string): Promise<number> {
  let line: string;
  if (ShimSpawner.accepts(planPath, shimLog)) {
    const spawner = ShimSpawner.for(o.shimPath, path.join(o.execRoot, 'shim-spawner.log'), o.log);
    line = await spawner.spawn(mode, planPath, shimLog);
  } else {
    line = await spawnShimDirect(o.shimPath, mode, planPath, shimLog);
  }
  const ok = /^ok (\d+)$/.exec(line);
  if (ok) return Number(ok[1]);
  const err = /^err (\d+) (.*)$/.exec(line);
  if (err) throw new ContainerStartError(err[2] ?? 'unknown error', Number(err[1]));
  let tail = '';
  try {
    tail = readFileSync(shimLog, 'utf8').trim().split('\n').slice(-3).join('; ');
  } catch {
    // no diagnostics
  }
  throw new BerthError(`berth-shim failed without a report${tail ? `: ${tail}` : ''}`);
}

/** Spawns a detached shim from berthd itself and resolves with its report line on fd 3 ('' if none). */
function spawnShimDirect(shimPath: string, mode: 'create' | 'exec', planPath: string, shimLog: string): Promise<string> {
  const logFd = openSync(shimLog, 'a', 0o600);
  let child;
  try {
    child = spawn(shimPath, [mode, planPath], { detached: true, stdio: ['ignore', 'ignore', logFd, 'pipe'] });
  } finally {
    closeSync(logFd);
  }
  const report = child.stdio[3] as Readable;
  return new Promise<string>((resolve, reject) => {
    let text = '';
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      report.destroy();
      child.unref();
      resolve(text.includes('\n') ? (text.split('\n')[0] ?? '') : '');
    };
    report.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      if (text.includes('\n')) finish();
    });
    report.on('end', finish);
    report.on('error', finish);
    child.on('error', (err) => {
      if (done) return;
      done = true;
      reject(new BerthError(`cannot run ${shimPath}: ${errorMessage(err)}`, { cause: err }));
    });
  });
}
