import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConflictError, InvalidParameterError, NotFoundError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { DirectOutput, ExecHandle, Executor } from '../runtime/executor.js';
import { containerPaths } from './paths.js';
import { privilegedCapabilities } from '../runtime/capabilities.js';
import type { OciSpec } from '../runtime/oci-spec.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import type { ContainerService } from './container-service.js';
import { resolveUser } from './user-resolve.js';

export interface ExecCreateBody {
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  DetachKeys?: string;
  Tty?: boolean;
  ConsoleSize?: [number, number] | null;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Privileged?: boolean;
  User?: string;
  WorkingDir?: string;
}

interface ExecRecord {
  id: string;
  containerId: string;
  body: ExecCreateBody;
  running: boolean;
  exitCode: number | null;
  pid: number;
  handle?: ExecHandle;
  started: boolean;
  /** Resizes waiting for the process to start (or fail). */
  waiters?: (() => void)[];
}

/** docker exec: records per exec ID, run through the executor's exec mode. */
export class ExecService {
  private readonly execs = new Map<string, ExecRecord>();

  constructor(
    private readonly containers: ContainerService,
    private readonly executor: Executor,
    private readonly layers: LayerStore,
    private readonly events: EventBus,
    private readonly dataRoot: string,
  ) {}

  create(containerRef: string, body: ExecCreateBody): string {
    const c = this.containers.get(containerRef);
    if (!c.state.Running) throw new ConflictError(`Container ${c.id} is not running`);
    if (c.state.Paused) throw new ConflictError(`Container ${c.id} is paused, unpause the container before exec`);
    if (c.state.Restarting) throw new ConflictError(`Container ${c.id} is restarting, wait until the container is running`);
    if (!Array.isArray(body.Cmd) || body.Cmd.length === 0) throw new InvalidParameterError('No exec command specified');
    const id = randomBytes(32).toString('hex');
    this.execs.set(id, { id, containerId: c.id, body, running: false, exitCode: null, pid: 0, started: false });
    this.events.publish('container', `exec_create: ${body.Cmd.join(' ')}`, c.id, {
      ...(c.config.Labels ?? {}),
      image: c.config.Image,
      name: c.name,
      execID: id,
    });
    return id;
  }

  get(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw new NotFoundError(`No such exec instance: ${id}`);
    return e;
  }

  /**
   * Starts the process; the caller streams handle.output and calls finished() once it ends. With `direct`, the
   * output may go to the client's socket without berthd (AttachWant.direct).
   */
  async start(id: string, direct?: () => DirectOutput | undefined): Promise<{ exec: ExecRecord; handle: ExecHandle; tty: boolean }> {
    const e = this.get(id);
    if (e.started) throw new ConflictError(`Error: Exec command ${id} has already run`);
    const c = this.containers.get(e.containerId);
    if (!c.state.Running) throw new ConflictError(`Container ${c.id} is not running`);
    if (c.state.Paused) throw new ConflictError(`Container ${c.id} is paused, unpause the container before exec`);
    e.started = true;
    const paths = containerPaths(this.dataRoot, c.id);
    const spec = JSON.parse(await readFile(paths.config, 'utf8')) as OciSpec;
    const base = spec.process;
    const b = e.body;
    const lowerDirs = [paths.upper, paths.init, ...(c.chainId ? this.layers.lowerDirs(c.chainId) : [])];
    const user = b.User ? await resolveUser(lowerDirs, b.User) : undefined;
    const caps = b.Privileged ? privilegedCapabilities() : base?.capabilities?.bounding ?? [];
    const env = [...(base?.env ?? [])];
    for (const kv of b.Env ?? []) {
      const k = kv.split('=')[0];
      const i = env.findIndex((x) => x.split('=')[0] === k);
      if (i >= 0) env[i] = kv;
      else env.push(kv);
    }
    const tty = b.Tty === true;
    this.events.publish('container', `exec_start: ${(b.Cmd ?? []).join(' ')}`, c.id, {
      ...(c.config.Labels ?? {}),
      image: c.config.Image,
      name: c.name,
      execID: id,
    });
    try {
      const handle = await this.executor.exec(c.id, id, {
        process: {
          terminal: tty,
          user: user ? { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids } : (base?.user ?? { uid: 0, gid: 0 }),
          args: b.Cmd ?? [],
          env,
          cwd: b.WorkingDir || base?.cwd || '/',
          capabilities: { bounding: caps, effective: caps, permitted: caps },
          noNewPrivileges: base?.noNewPrivileges ?? false,
        },
        tty,
        openStdin: b.AttachStdin === true,
        stdinOnce: true,
        ...(b.ConsoleSize && b.ConsoleSize[0] > 0 ? { consoleSize: { height: b.ConsoleSize[0], width: b.ConsoleSize[1] } } : {}),
        ...(b.Privileged ? { unconfined: true } : {}),
        stdout: b.AttachStdout !== false,
        stderr: b.AttachStderr !== false,
        ...(direct ? { direct } : {}),
      });
      e.running = true;
      e.pid = handle.pid;
      e.handle = handle;
      wake(e);
      handle.exit.then(
        (st) => this.finish(e, st.exitCode),
        () => this.finish(e, 126),
      );
      return { exec: e, handle, tty };
    } catch (err) {
      // dockerd records 126 for every exec that fails to start, a missing binary included (its 127 is for run).
      this.finish(e, 126);
      throw err;
    }
  }

  private finish(e: ExecRecord, code: number): void {
    if (!e.running && e.exitCode !== null) return;
    e.running = false;
    e.exitCode = code;
    delete e.handle;
    wake(e);
    const c = this.containers.find(e.containerId);
    this.events.publish('container', 'exec_die', e.containerId, {
      ...(c?.config.Labels ?? {}),
      image: c?.config.Image ?? '',
      name: c?.name ?? '',
      execID: e.id,
      exitCode: String(code),
    });
  }

  /** Records a failure found before the process ran (the code the CLI will exit with). */
  failed(id: string, code: number): void {
    const e = this.get(id);
    e.started = true;
    this.finish(e, code);
  }

  async resize(id: string, height: number, width: number): Promise<void> {
    const e = this.get(id);
    if (e.body.Tty !== true) return; // nothing to resize without a TTY (dockerd answers 200)
    // Clients resize right after a hijacked start, before the process runs: dockerd waits up to 10 s for it.
    if (!e.handle && e.exitCode === null) await whenStarted(e, 10_000);
    if (!e.handle) throw new ConflictError(`Exec ${id} is not running`);
    await e.handle.resize(height, width);
  }

  inspect(id: string): Record<string, unknown> {
    const e = this.get(id);
    const b = e.body;
    return {
      CanRemove: false,
      ContainerID: e.containerId,
      DetachKeys: b.DetachKeys ?? '',
      ExitCode: e.exitCode,
      ID: e.id,
      OpenStderr: b.AttachStderr === true,
      OpenStdin: b.AttachStdin === true,
      OpenStdout: b.AttachStdout === true,
      ProcessConfig: {
        arguments: (b.Cmd ?? []).slice(1),
        entrypoint: (b.Cmd ?? [])[0] ?? '',
        privileged: b.Privileged === true,
        tty: b.Tty === true,
        user: b.User ?? '',
      },
      Running: e.running,
      Pid: e.pid,
    };
  }

  /** Forgets the execs of a removed container. */
  forgetContainer(containerId: string): void {
    for (const [id, e] of this.execs) if (e.containerId === containerId) this.execs.delete(id);
  }
}

function wake(e: ExecRecord): void {
  const waiters = e.waiters ?? [];
  delete e.waiters;
  for (const w of waiters) w();
}

/** Resolves once the exec has started or ended, or after timeoutMs. */
function whenStarted(e: ExecRecord, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done(): void {
      clearTimeout(timer);
      resolve();
    }
    (e.waiters ??= []).push(done);
  });
}
