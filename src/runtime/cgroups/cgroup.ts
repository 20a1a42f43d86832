// The cgroup interfaces both backends implement, and the small file layer they share.

import { accessSync, closeSync, constants as fsc, mkdirSync, openSync, promises as fsp, readFileSync, readdirSync, rmdirSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BerthError, InvalidParameterError, errorMessage } from '../../errors.js';
import type { CgroupCounters, CgroupSysInfo, LinuxResources } from './resources.js';

/** One container's cgroup (every v1 hierarchy, or one v2 directory). */
export interface Cgroup {
  /** The relative path it was created/opened with, e.g. `berth/<id>`. */
  readonly path: string;
  /** Every `cgroup.procs` a process must be written into to join (berth-shim writes the init pid there). */
  procsFiles(): string[];
  addProcess(pid: number): Promise<void>;
  /** Apply limits live (`docker update`); devices only when `resources.devices` is given. Returns warnings. */
  update(resources: LinuxResources): Promise<string[]>;
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  isFrozen(): Promise<boolean>;
  /** Every pid in the cgroup (union over hierarchies), ascending. Empty if the cgroup is gone. */
  pids(): Promise<number[]>;
  /** Signal every process without letting any fork away (cgroup.kill for SIGKILL when available, else freeze/signal/thaw). */
  killAll(signal: NodeJS.Signals | number): Promise<void>;
  oomKillCount(): Promise<number>;
  /** CPU, memory, pids and block I/O counters, raw (src/containers/stats.ts shapes them as Docker's stats). */
  counters(): Promise<CgroupCounters>;
  /** Kill leftovers, then remove every directory of the cgroup (and its sub-cgroups) bottom-up. */
  destroy(): Promise<void>;
}

export interface CgroupManager {
  readonly version: '1' | '2';
  /** Make the cgroup (parents as needed), apply `resources`; skipped settings come back as warnings. */
  create(path: string, resources: LinuxResources): Promise<{ cgroup: Cgroup; warnings: string[] }>;
  /** A handle on an existing cgroup (e.g. after a daemon restart); nothing is checked or created. */
  open(path: string): Cgroup;
  /** What the host supports, for Docker-style validation of HostConfig resources (read once per manager). */
  sysInfo(): Promise<CgroupSysInfo>;
}

/** File operations, injectable so tests can run over a fake cgroupfs tree and record writes. */
export interface CgroupFs {
  readFile(file: string): Promise<string>;
  /** Write to an existing file (O_WRONLY|O_TRUNC, no O_CREAT: a missing file means an unsupported knob). */
  writeFile(file: string, data: string): Promise<void>;
  /**
   * Each value in its own write(2) to one open of an existing file, in order (v1 devices.allow takes one rule per
   * write); a failure carries the index of the value refused as `valueIndex`.
   */
  writeEach(file: string, values: readonly string[]): Promise<void>;
  mkdir(dir: string): Promise<void>;
  rmdir(dir: string): Promise<void>;
  /** Names of sub-directories (child cgroups). */
  subdirs(dir: string): Promise<string[]>;
  exists(file: string): Promise<boolean>;
}

// cgroupfs operations are in-kernel and take microseconds: done synchronously, they save the thread-pool round
// trips (three per write) that made up most of a container start's cgroup setup. Memory limit writes can make
// the kernel reclaim (a lowered limit under `docker update`), so those stay on the thread pool.
const mayBlock = (file: string): boolean => path.basename(file).startsWith('memory.');

export const realCgroupFs: CgroupFs = {
  async readFile(file) {
    return readFileSync(file, 'utf8');
  },
  async writeFile(file, data) {
    if (mayBlock(file)) {
      const fh = await fsp.open(file, fsc.O_WRONLY | fsc.O_TRUNC);
      try {
        await fh.write(data);
      } finally {
        await fh.close();
      }
      return;
    }
    const fd = openSync(file, fsc.O_WRONLY | fsc.O_TRUNC);
    try {
      writeSync(fd, data);
    } finally {
      closeSync(fd);
    }
  },
  async writeEach(file, values) {
    const fd = openSync(file, fsc.O_WRONLY | fsc.O_TRUNC);
    try {
      for (const [i, v] of values.entries()) {
        try {
          writeSync(fd, v);
        } catch (err) {
          throw Object.assign(err as Error, { valueIndex: i });
        }
      }
    } finally {
      closeSync(fd);
    }
  },
  async mkdir(dir) {
    mkdirSync(dir);
  },
  async rmdir(dir) {
    rmdirSync(dir);
  },
  async subdirs(dir) {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  },
  async exists(file) {
    try {
      accessSync(file);
      return true;
    } catch {
      return false;
    }
  },
};

export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

/** Validate and normalise a relative cgroup path ('berth/<id>'); no '..', no empty result. */
export function normaliseCgroupPath(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.length === 0 || parts.some((s) => s === '..')) {
    throw new InvalidParameterError(`invalid cgroup path: ${JSON.stringify(p)}`);
  }
  return parts.join('/');
}

/** Every prefix of a relative path, shortest first: 'a/b/c' → ['a', 'a/b', 'a/b/c']. */
export function pathPrefixes(rel: string): string[] {
  const parts = rel.split('/');
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** Writes a cgroup file; errors name the file and value. */
export async function writeCgroupFile(fs: CgroupFs, file: string, value: string): Promise<void> {
  try {
    await fs.writeFile(file, value);
  } catch (err) {
    throw new BerthError(`failed to write ${JSON.stringify(value)} to ${file}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

/** Reads a file, or undefined when it does not exist. */
export async function readOptional(fs: CgroupFs, file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENODEV') return undefined;
    throw err;
  }
}

/** Parse a single number file ("123\n" or "max"); 'max' → undefined. */
export function parseUintValue(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === '' || t === 'max') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Writes one resource setting; a file the kernel does not have (ENOENT) adds `warning` to `warnings` and gives
 * false, any other failure throws naming the file and value.
 */
export async function writeSetting(fs: CgroupFs, file: string, value: string, warning: string, warnings: string[]): Promise<boolean> {
  try {
    await fs.writeFile(file, value);
    return true;
  } catch (err) {
    return settingFailed(err, file, value, warning, warnings);
  }
}

/** writeSetting of several values in order, each its own write to one open of `file`. */
export async function writeSettings(fs: CgroupFs, file: string, values: readonly string[], warning: string, warnings: string[]): Promise<boolean> {
  try {
    await fs.writeEach(file, values);
    return true;
  } catch (err) {
    return settingFailed(err, file, values[(err as { valueIndex?: number }).valueIndex ?? 0], warning, warnings);
  }
}

/** A setting's write failed: false with `warning` for a file the kernel does not have, else the error to throw. */
function settingFailed(err: unknown, file: string, value: string | undefined, warning: string, warnings: string[]): false {
  if (errnoCode(err) === 'ENOENT') {
    warnings.push(warning);
    return false;
  }
  // The kernel refusing a limit (out of its range) is the request's fault: a 400 with the kernel's word.
  const refused = errnoCode(err) === 'EINVAL' || errnoCode(err) === 'ERANGE';
  throw new (refused ? InvalidParameterError : BerthError)(`failed to write ${JSON.stringify(value)} to ${file}: ${(err as Error).message}`, { cause: err });
}

/** `{ [key]: value }` when the file holds a number, else `{}` (to spread into a counters object). */
export function definedUint<K extends string>(key: K, text: string | undefined): Partial<Record<K, number>> {
  const v = parseUintValue(text);
  return v === undefined ? {} : ({ [key]: v } as Partial<Record<K, number>>);
}

/** Parse "key value" lines (memory.stat, cpu.stat, memory.events, oom_control) into a map. */
export function parseKeyValues(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (text === undefined) return out;
  for (const line of text.split('\n')) {
    const [k, v, extra] = line.trim().split(/\s+/);
    if (k === undefined || k === '' || v === undefined || extra !== undefined) continue;
    const n = Number(v);
    if (Number.isFinite(n)) out[k] = n;
  }
  return out;
}

/** The pids listed in a cgroup.procs text. */
export function parsePids(text: string | undefined): number[] {
  if (text === undefined) return [];
  return text
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** Signal a pid, ignoring processes that are already gone. */
export function signalPid(pid: number, signal: NodeJS.Signals | number): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if (errnoCode(err) !== 'ESRCH') throw err;
  }
}

/**
 * Remove a cgroup directory and everything below it, deepest first. cgroupfs answers EBUSY for a short while
 * after the last task exits, so each rmdir is retried briefly. A directory already gone is fine.
 */
export async function removeCgroupTree(fs: CgroupFs, dir: string): Promise<void> {
  let children: string[];
  try {
    children = await fs.subdirs(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  for (const child of children) await removeCgroupTree(fs, path.join(dir, child));
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.rmdir(dir);
      return;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return;
      if ((code === 'EBUSY' || code === 'EAGAIN') && attempt < 100) {
        await delay(attempt < 10 ? 5 : 20);
        continue;
      }
      throw new BerthError(`failed to remove cgroup ${dir}: ${errorMessage(err)}`, { cause: err });
    }
  }
}

/** Poll `check` until it is true or `timeoutMs` passes; returns the last result. */
export async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, stepMs = 5): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await delay(stepMs);
  }
}

/** Parse a cpuset list ("0-3,6") into its members; throws `invalid format: <part>` like moby's ParseUintList. */
export function parseCpuList(list: string): Set<number> {
  const out = new Set<number>();
  if (list.trim() === '') return out;
  for (const raw of list.trim().split(',')) {
    const part = raw.trim();
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (m === null || m[1] === undefined) throw new Error(`invalid format: ${part}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`invalid format: ${part}`);
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return out;
}

/** Parse "MAJ:MIN key=value …" lines (v2 io.stat). */
export function parseIoStat(text: string | undefined): { major: number; minor: number; fields: Record<string, number> }[] {
  const out: { major: number; minor: number; fields: Record<string, number> }[] = [];
  if (text === undefined) return out;
  for (const line of text.split('\n')) {
    const [dev, ...kvs] = line.trim().split(/\s+/);
    const m = dev === undefined ? null : /^(\d+):(\d+)$/.exec(dev);
    if (m === null) continue;
    const fields: Record<string, number> = {};
    for (const kv of kvs) {
      const eq = kv.indexOf('=');
      if (eq <= 0) continue;
      const n = Number(kv.slice(eq + 1));
      if (Number.isFinite(n)) fields[kv.slice(0, eq)] = n;
    }
    out.push({ major: Number(m[1]), minor: Number(m[2]), fields });
  }
  return out;
}

/** The kill/destroy logic both backends share; they provide freezing, pid listing and directory lists. */
export abstract class BaseCgroup implements Cgroup {
  protected constructor(
    readonly path: string,
    protected readonly fs: CgroupFs,
  ) {}

  abstract procsFiles(): string[];
  abstract update(resources: LinuxResources): Promise<string[]>;
  abstract freeze(): Promise<void>;
  abstract thaw(): Promise<void>;
  abstract isFrozen(): Promise<boolean>;
  abstract oomKillCount(): Promise<number>;
  abstract counters(): Promise<CgroupCounters>;

  /** Whether freezing is possible at all on this host. */
  protected abstract canFreeze(): Promise<boolean>;
  /** `cgroup.kill` files that kill every member at once (v2, or the unified tree of a hybrid host). */
  protected abstract killFiles(): Promise<string[]>;
  /** Top directories of this cgroup, one per hierarchy; destroy removes each with everything below it. */
  protected abstract directories(): string[];

  async addProcess(pid: number): Promise<void> {
    if (!Number.isInteger(pid) || pid <= 0) throw new InvalidParameterError(`invalid pid ${pid}`);
    for (const file of this.procsFiles()) await writeCgroupFile(this.fs, file, String(pid));
  }

  async pids(): Promise<number[]> {
    const all = new Set<number>();
    for (const dir of this.directories()) await this.collectPids(dir, all);
    return [...all].sort((a, b) => a - b);
  }

  /** Pids of `dir` and every sub-cgroup below it. */
  private async collectPids(dir: string, into: Set<number>): Promise<void> {
    const procs = await readOptional(this.fs, path.join(dir, 'cgroup.procs'));
    if (procs === undefined) return;
    for (const pid of parsePids(procs)) into.add(pid);
    let children: string[] = [];
    try {
      children = await this.fs.subdirs(dir);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    for (const child of children) await this.collectPids(path.join(dir, child), into);
  }

  async killAll(signal: NodeJS.Signals | number): Promise<void> {
    if (signal === 'SIGKILL' || signal === 9) {
      for (const file of await this.killFiles()) {
        try {
          await this.fs.writeFile(file, '1');
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw err;
        }
      }
    }
    const pids = await this.pids();
    if (pids.length === 0) return;
    const freezable = await this.canFreeze();
    if (freezable) {
      try {
        await this.freeze();
      } catch {
        // A task stuck in uninterruptible sleep can keep the cgroup FREEZING; signal anyway.
      }
    }
    try {
      for (const pid of await this.pids()) signalPid(pid, signal);
    } finally {
      if (freezable) await this.thaw().catch(() => undefined);
    }
  }

  async destroy(): Promise<void> {
    // The usual case, a run that ended: no process left, no sub-cgroup. One rmdir per hierarchy does it (the
    // kernel refuses, EBUSY, while a task or a child cgroup is there); reading every cgroup.procs and listing every
    // directory first cost ~60 syscalls per container removal. Whatever is refused takes the full way below.
    let refused = false;
    for (const dir of this.directories()) {
      try {
        await this.fs.rmdir(dir);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') refused = true;
      }
    }
    if (!refused) return;
    if ((await this.pids()).length > 0) {
      await this.killAll('SIGKILL');
      const empty = await pollUntil(async () => (await this.pids()).length === 0, 10_000);
      if (!empty) {
        throw new BerthError(`cgroup ${this.path} still has processes after SIGKILL: ${(await this.pids()).join(' ')}`);
      }
    }
    for (const dir of this.directories()) await removeCgroupTree(this.fs, dir);
  }
}
