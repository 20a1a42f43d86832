// Executor: the runtime layer the containers service calls. It compiles OCI specs into launch plans,
// starts one berth-shim per container (and per exec) through the shim spawner, and talks to the shims
// over their unix sockets. A shim outlives berthd; a new Executor re-adopts it with adopt().
//
// API (all ids are container ids; bundle dirs belong to the caller, who removes them after delete()):
//   new Executor({ execRoot, shimPath, initPath?, log, cgroups? })
//   create(id, ContainerCreateOptions) → Promise<{ pid, warnings }>   container set up, paused before exec
//   start(id) → Promise<{ pid }>                                         execs the user's command
//   attach(id, { stdin, stdout, stderr }) → Promise<AttachHandle>        live output + stdin (no replay of the log)
//   resize(id, height, width) → Promise<void>
//   kill(id, signal, { all? }) → Promise<void>                           all: every process (cgroup.kill / pid ns)
//   state(id) → Promise<'created' | 'running' | 'exited'>
//   waitExit(id) → Promise<ExitStatus>                                   immediate if the exit file exists
//   exec(id, execId, ExecOptions) → Promise<ExecHandle>                  streams + exit promise
//   adopt(id, bundleDir, { stdinOnce? }) → Promise<'created' | 'running' | ExitStatus>   after a berthd restart
//   delete(id) → Promise<void>                                           shim gone, cgroup destroyed, sockets removed
//   initMount() → OciMount                                               bind of berth-init for --init
// Pre-exec failures reject create/start with ContainerStartError (Docker's message, exitCode 126/127/128).
//
// Bundle files: config.json, plan, shim.json {shimPid, shimStart, initPid, initStart}, exit.json
// (ExitStatus), shim.log (the shim's diagnostics), rootfs/ (mount point, used only inside the container's
// mount namespace), exec/<execId>/{plan, exit.json}. Sockets: <execRoot>/s/<id[0:24]>.sock.

import { existsSync, promises as fsp, readlinkSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BerthError, ConflictError, NotFoundError, errorMessage } from '../errors.js';
import type { Logger } from '../util/logger.js';
import type { Cgroup, CgroupManager } from './cgroups/index.js';
import { INIT_PATH_IN_CONTAINER, RUNTIME_ALLOWED_DEVICE_RULES } from './defaults.js';
import {
  ContainerStartError,
  type AttachHandle,
  type AttachWant,
  type ContainerCreateOptions,
  type ContainerRuntime,
  type ExecHandle,
  type ExecOptions,
  lostExit,
} from './executor-api.js';
import { compileLaunchPlan, writeLaunchFiles, type NsName } from './launch-plan.js';
import type { OciMount, OciSpec } from './oci-spec.js';
import { compiledSeccomp, type CompiledSeccomp } from './seccomp/cache.js';
import { ShimConnection, ShimRequestError, type ExitStatus, type ShimState } from './shim-client.js';
import { isAlive, type ShimInfo } from './shim-process.js';
import { spawnShim } from './shim-spawner.js';
import { attachHandle, readExit, waitExitFile } from './shim-streams.js';

export * from './executor-api.js';
export { procStartTime } from './shim-process.js';


export interface ExecutorOptions {
  /** Berth's exec root (e.g. /run/berth); shim sockets go to <execRoot>/s/. Keep it short (sun_path is 108 bytes). */
  execRoot: string;
  shimPath: string;
  /** Host path of berth-init, bind-mounted by initMount() for --init. */
  initPath?: string;
  log: Logger;
  cgroups?: CgroupManager;
}

interface Entry {
  id: string;
  bundleDir: string;
  socketPath: string;
  stdinOnce: boolean;
  tty: boolean;
  cgroup?: Cgroup;
  info: ShimInfo;
  ctl?: ShimConnection;
  execSockets: Set<string>;
  /** The container's compiled seccomp filter (null: none), for its execs; read from config.json when adopted. */
  seccomp?: CompiledSeccomp | null;
}

const NS_FILES = ['user', 'mnt', 'uts', 'ipc', 'net', 'pid', 'cgroup'] as const;

export class Executor implements ContainerRuntime {
  private readonly entries = new Map<string, Entry>();
  private readonly log: Logger;

  constructor(private readonly opts: ExecutorOptions) {
    this.log = opts.log.child({ sub: 'executor' });
  }

  socketPathFor(id: string, execId?: string): string {
    const name = execId ? `${id.slice(0, 12)}-${execId.slice(0, 12)}` : id.slice(0, 24);
    const p = path.join(this.opts.execRoot, 's', `${name}.sock`);
    if (Buffer.byteLength(p) > 107) throw new BerthError(`shim socket path too long (${p}): use a shorter exec root`);
    return p;
  }

  /** The bind mount that makes berth-init available as /sbin/docker-init (Docker's --init). */
  initMount(): OciMount {
    if (!this.opts.initPath) throw new BerthError('no berth-init configured');
    return { destination: INIT_PATH_IN_CONTAINER, type: 'bind', source: this.opts.initPath, options: ['bind', 'ro'] };
  }

  private entry(id: string): Entry {
    const e = this.entries.get(id);
    if (!e) throw new NotFoundError(`No such container: ${id}`);
    return e;
  }

  async create(id: string, o: ContainerCreateOptions): Promise<{ pid: number; warnings: string[] }> {
    if (this.entries.has(id)) throw new ConflictError(`container ${id} already has a running shim`);
    const t0 = performance.now();
    const ms: Record<string, number> = {};
    const mark = (k: string): void => {
      ms[k] = Math.round((performance.now() - t0) * 10) / 10;
    };
    const bundle = o.bundleDir;
    // Independent file steps side by side on the thread pool, while the cgroup is made below: one round trip
    // of waiting instead of four in a row.
    const files = Promise.all([
      fsp.mkdir(path.join(bundle, 'rootfs'), { recursive: true, mode: 0o755 }),
      fsp.mkdir(path.join(this.opts.execRoot, 's'), { recursive: true, mode: 0o700 }),
      ...['exit.json', 'shim.json'].map((f) => unlinkIfPresent(path.join(bundle, f))),
    ]);
    files.catch(() => undefined); // awaited below
    const socketPath = this.socketPathFor(id);

    let cgroup: Cgroup | undefined;
    let warnings: string[] = [];
    const cgPath = o.spec.linux?.cgroupsPath;
    if (this.opts.cgroups && cgPath) {
      // like runc, the runtime's own device rules follow the spec's (mknod anything, default nodes, pts, ptmx, tun)
      const res = o.spec.linux?.resources ?? {};
      const devices = res.devices ? [...res.devices, ...RUNTIME_ALLOWED_DEVICE_RULES] : undefined;
      const r = await this.opts.cgroups.create(cgPath, devices ? { ...res, devices } : res).catch(async (e: unknown) => {
        await files.catch(() => undefined);
        throw e;
      });
      cgroup = r.cgroup;
      warnings = r.warnings;
    }
    mark('cgroup');
    try {
      await files;
      const seccomp = compiledSeccomp(o.spec);
      mark('seccomp');
      const nsOf = this.pinnedNamespaceOwner(o.spec);
      const records = compileLaunchPlan(o.spec, {
        mode: 'create',
        ...(nsOf ? { nsOf } : {}),
        id,
        socketPath,
        exitFile: path.join(bundle, 'exit.json'),
        stateFile: path.join(bundle, 'shim.json'),
        ...(o.logPath ? { logPath: o.logPath } : {}),
        ...(o.logOpts?.maxSize !== undefined ? { logMaxSize: o.logOpts.maxSize } : {}),
        ...(o.logOpts?.maxFile !== undefined ? { logMaxFile: o.logOpts.maxFile } : {}),
        ...(o.logFormat === 'cri' ? { logFormat: 'cri' as const } : {}),
        ...(o.logOpts?.compress ? { logCompress: true } : {}),
        ...(o.logOpts?.attrs ? { logAttrs: o.logOpts.attrs } : {}),
        tty: o.tty,
        openStdin: o.openStdin,
        ...(o.consoleSize ? { consoleSize: o.consoleSize } : {}),
        rootfs: o.rootfs,
        rootfsTarget: path.join(bundle, 'rootfs'),
        cgroupProcs: cgroup?.procsFiles() ?? [],
        cgroupV2: this.opts.cgroups?.version === '2',
        ...(seccomp ? { seccompBpf: seccomp.bpf, seccompFlags: seccomp.flags } : {}),
      });
      const planPath = await writeLaunchFiles(bundle, o.spec, records);
      mark('plan');
      const pid = await spawnShim(this.opts, 'create', planPath, path.join(bundle, 'shim.log'));
      mark('shim');
      const info = JSON.parse(await fsp.readFile(path.join(bundle, 'shim.json'), 'utf8')) as ShimInfo;
      const e: Entry = { id, bundleDir: bundle, socketPath, stdinOnce: o.stdinOnce, tty: o.tty, info, execSockets: new Set(), seccomp: seccomp ?? null };
      if (cgroup) e.cgroup = cgroup;
      this.entries.set(id, e);
      this.log.debug({ id, pid, shimPid: info.shimPid, ms }, 'container created');
      return { pid, warnings };
    } catch (err) {
      if (cgroup) await cgroup.destroy().catch((e2: unknown) => this.log.warn({ err: e2, id }, 'destroy cgroup after failed create'));
      throw err;
    }
  }

  private async control(e: Entry): Promise<ShimConnection> {
    if (e.ctl && !e.ctl.isClosed) return e.ctl;
    const c = await ShimConnection.connect(e.socketPath);
    e.ctl = c;
    c.on('close', () => {
      if (e.ctl === c) delete e.ctl;
    });
    return c;
  }

  async start(id: string): Promise<{ pid: number }> {
    const e = this.entry(id);
    const c = await this.control(e);
    try {
      const pid = await c.start();
      return { pid };
    } catch (err) {
      if (!(err instanceof ShimRequestError)) throw err;
      const st = await this.waitExit(id).catch(() => undefined);
      throw new ContainerStartError(st?.error ?? err.message, st?.exitCode ?? 128);
    }
  }

  async state(id: string): Promise<ShimState> {
    const e = this.entry(id);
    if (existsSync(path.join(e.bundleDir, 'exit.json'))) return 'exited';
    try {
      return (await (await this.control(e)).state()).state;
    } catch {
      return 'exited';
    }
  }

  async attach(id: string, want: AttachWant): Promise<AttachHandle> {
    const e = this.entry(id);
    const conn = await ShimConnection.connect(e.socketPath);
    return attachHandle(conn, want, e.stdinOnce);
  }

  /** The shim closes and opens its log file again (CRI ReopenContainerLog after the kubelet rotated it). */
  async reopenLog(id: string): Promise<void> {
    await (await this.control(this.entry(id))).reopenLog();
  }

  async resize(id: string, height: number, width: number): Promise<void> {
    await (await this.control(this.entry(id))).resize(height, width);
  }

  async kill(id: string, signal: number, opts: { all?: boolean } = {}): Promise<void> {
    const e = this.entry(id);
    if (opts.all && e.cgroup) {
      await e.cgroup.killAll(signal);
      return;
    }
    try {
      await (await this.control(e)).kill(signal, opts.all ?? false);
    } catch (err) {
      if (existsSync(path.join(e.bundleDir, 'exit.json'))) {
        throw new ConflictError(`Container ${id} is not running`);
      }
      throw err;
    }
  }

  async waitExit(id: string): Promise<ExitStatus> {
    const e = this.entry(id);
    return waitExitFile(path.join(e.bundleDir, 'exit.json'), e.socketPath, e.info.shimPid, e.info.shimStart);
  }

  /**
   * The init of a container this executor supervises whose /proc/<pid>/ns/* paths the spec joins
   * (--pid/--ipc/--uts container:<id>), with its recorded start time: the shim joins it pinned, so an init
   * that exited and left its pid to another process is refused, not joined. Other paths are joined by path.
   */
  private pinnedNamespaceOwner(spec: OciSpec): { pid: number; startTime: number; namespaces: NsName[] } | undefined {
    for (const ns of spec.linux?.namespaces ?? []) {
      const pid = Number(/^\/proc\/(\d+)\/ns\/[a-z]+$/.exec(ns.path ?? '')?.[1] ?? 0);
      if (pid <= 0) continue;
      for (const e of this.entries.values()) {
        if (e.info.initPid === pid && e.info.initStart >= 0) return { pid, startTime: e.info.initStart, namespaces: [] };
      }
    }
    return undefined;
  }

  /** The container's seccomp filter for an exec: compiled at create, or from the bundle's config.json once adopted. */
  private async containerSeccomp(e: Entry): Promise<CompiledSeccomp | undefined> {
    if (e.seccomp === undefined) {
      const spec = JSON.parse(await fsp.readFile(path.join(e.bundleDir, 'config.json'), 'utf8')) as OciSpec;
      e.seccomp = compiledSeccomp(spec) ?? null;
    }
    return e.seccomp ?? undefined;
  }

  async exec(id: string, execId: string, o: ExecOptions): Promise<ExecHandle> {
    const e = this.entry(id);
    if (!isAlive(e.info.initPid, e.info.initStart)) throw new ConflictError(`Container ${id} is not running`);
    const dir = path.join(e.bundleDir, 'exec', execId);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    await fsp.rm(path.join(dir, 'exit.json'), { force: true });
    const socketPath = this.socketPathFor(id, execId);
    // the namespaces the init does not share with berthd; the shim joins them from the init it checks again
    const namespaces: NsName[] = [];
    for (const ns of NS_FILES) {
      let same = false;
      try {
        same = readlinkSync(`/proc/self/ns/${ns}`) === readlinkSync(`/proc/${e.info.initPid}/ns/${ns}`);
      } catch {
        same = ns === 'user';
      }
      if (!same) namespaces.push(ns);
    }
    const seccomp = o.unconfined ? undefined : await this.containerSeccomp(e);
    const records = compileLaunchPlan(
      { ociVersion: '1.0.2-dev', process: o.process },
      {
        mode: 'exec',
        id: `${id}/${execId}`,
        socketPath,
        exitFile: path.join(dir, 'exit.json'),
        stateFile: path.join(dir, 'shim.json'),
        tty: o.tty,
        openStdin: o.openStdin,
        ...(o.consoleSize ? { consoleSize: o.consoleSize } : {}),
        nsOf: { pid: e.info.initPid, startTime: e.info.initStart, namespaces },
        cgroupProcs: e.cgroup?.procsFiles() ?? [],
        ...(seccomp ? { seccompBpf: seccomp.bpf, seccompFlags: seccomp.flags } : {}),
      },
    );
    const planPath = await writeLaunchFiles(dir, undefined, records);
    await spawnShim(this.opts, 'exec', planPath, path.join(e.bundleDir, 'shim.log'));
    e.execSockets.add(socketPath);
    const info = JSON.parse(await fsp.readFile(path.join(dir, 'shim.json'), 'utf8')) as ShimInfo;
    const conn = await ShimConnection.connect(socketPath);
    const h = await attachHandle(
      conn,
      { stdin: o.openStdin, stdout: o.stdout ?? true, stderr: o.stderr ?? true, ...(o.direct ? { direct: o.direct } : {}) },
      o.stdinOnce ?? true,
    );
    const exitFile = path.join(dir, 'exit.json');
    let pid: number;
    try {
      pid = await conn.start();
    } catch (err) {
      conn.close();
      const st = await waitExitFile(exitFile, socketPath, info.shimPid, info.shimStart);
      throw new ContainerStartError(st.error ?? errorMessage(err), st.exitCode);
    }
    const exit = h.exited.then(async (st) => st ?? waitExitFile(exitFile, socketPath, info.shimPid, info.shimStart));
    exit.then(
      () => e.execSockets.delete(socketPath),
      () => undefined,
    );
    const handle: ExecHandle = {
      execId,
      pid,
      output: h.output,
      resize: (height, width) => conn.resize(height, width),
      kill: (signal) => conn.kill(signal),
      exit,
    };
    if (h.stdin) handle.stdin = h.stdin;
    return handle;
  }

  async adopt(id: string, bundleDir: string, opts: { stdinOnce?: boolean } = {}): Promise<'created' | 'running' | ExitStatus> {
    const exitFile = path.join(bundleDir, 'exit.json');
    let info: ShimInfo | undefined;
    try {
      info = JSON.parse(await fsp.readFile(path.join(bundleDir, 'shim.json'), 'utf8')) as ShimInfo;
    } catch {
      info = undefined;
    }
    const socketPath = this.socketPathFor(id);
    let cgroup: Cgroup | undefined;
    if (this.opts.cgroups) {
      try {
        const spec = JSON.parse(await fsp.readFile(path.join(bundleDir, 'config.json'), 'utf8')) as OciSpec;
        if (spec.linux?.cgroupsPath) cgroup = this.opts.cgroups.open(spec.linux.cgroupsPath);
      } catch (err) {
        this.log.warn({ err, id }, 'adopt: cannot read config.json');
      }
    }
    const stdinOnce = opts.stdinOnce ?? false;
    let tty = false;
    try {
      const plan = await fsp.readFile(path.join(bundleDir, 'plan'), 'latin1');
      tty = /\ntty 1\n1\n/.test(plan);
    } catch {
      // no plan: defaults
    }
    const e: Entry = {
      id,
      bundleDir,
      socketPath,
      stdinOnce,
      tty,
      info: info ?? { shimPid: 0, shimStart: -1, initPid: 0, initStart: -1 },
      execSockets: new Set(),
    };
    if (cgroup) e.cgroup = cgroup;
    this.entries.set(id, e);
    if (info && isAlive(info.shimPid, info.shimStart)) {
      try {
        const st = await (await this.control(e)).state();
        if (st.state !== 'exited') return st.state;
      } catch (err) {
        this.log.warn({ err, id }, 'adopt: shim alive but its socket does not answer');
      }
      return this.waitExit(id);
    }
    const st = await readExit(exitFile);
    if (st) return st;
    return lostExit('berth-shim is gone and left no exit status', info?.initPid ?? 0);
  }

  /** Stops the shim if still alive (SIGKILL to every container process), destroys the cgroup, removes sockets. */
  async delete(id: string): Promise<void> {
    const e = this.entry(id);
    const t0 = performance.now();
    const ms: Record<string, number> = {};
    const mark = (k: string): void => {
      ms[k] = Math.round((performance.now() - t0) * 10) / 10;
    };
    if (isAlive(e.info.shimPid, e.info.shimStart)) {
      if (!existsSync(path.join(e.bundleDir, 'exit.json'))) {
        await this.kill(id, 9, { all: true }).catch((err: unknown) => this.log.debug({ err, id }, 'delete: kill'));
      }
      // The shim is usually flushing its last frames to this daemon's own connections, which close on the next
      // turns of the event loop: it ends within a few ms. Poll every ms for the first 20 (a doubling step found it
      // gone only at 3 or 7 ms), then back off.
      const deadline = Date.now() + 15_000;
      for (let n = 0; isAlive(e.info.shimPid, e.info.shimStart) && Date.now() < deadline; n++) await delay(n < 20 ? 1 : 10);
      if (isAlive(e.info.shimPid, e.info.shimStart)) {
        this.log.warn({ id, shimPid: e.info.shimPid }, 'shim did not exit: killing it');
        try {
          process.kill(e.info.shimPid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    mark('shim');
    e.ctl?.close();
    if (e.cgroup) await e.cgroup.destroy();
    mark('cgroup');
    // the shim unlinks its sockets as it ends: usually nothing is left
    await Promise.all([e.socketPath, ...e.execSockets].map(unlinkIfPresent));
    this.entries.delete(id);
    mark('sockets');
    this.log.debug({ id, ms }, 'container deleted');
  }

  /** Forgets a container without touching its shim (tests simulate a daemon restart with this). */
  release(id: string): void {
    const e = this.entries.get(id);
    e?.ctl?.close();
    this.entries.delete(id);
  }
}

/** unlink(2) of a file that may be gone already: one syscall where fs.rm({ force }) makes an lstat first. */
async function unlinkIfPresent(file: string): Promise<void> {
  try {
    await fsp.unlink(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
