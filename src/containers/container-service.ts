// The container service: the one writer of container state. It holds the records (in memory, written through to
// SQLite), runs each container's lifecycle operations one at a time (serial), and exposes intent methods for
// every change other modules make; they get read-only views. Its reads (look-ups, ps, inspect, logs, network
// settings) are in container-reads.ts, which it extends. The mechanism lives beside it: launcher.ts (a run's
// set-up), container-dirs.ts (the bundle directory), container-queries.ts (ps, inspect, logs), create-checks.ts.

import { BerthError, ConflictError, NotFoundError, errorMessage } from '../errors.js';
import type { EndpointRequest } from '../network/types.js';
import { ContainerStartError, type AttachHandle, type AttachWant, type ExitStatus } from '../runtime/executor-api.js';
import type { Logger } from '../util/logger.js';
import { eachLimited } from '../util/each-limited.js';
import { nowNano, rfc3339Nano } from '../util/time.js';
import { ContainerReads, type ContainerServiceDeps } from './container-reads.js';
import { newContainerRecord, type CreateRequest } from './create-request.js';
import { withEndpoint, withoutEndpoint } from './endpoint-config.js';
import { Launcher } from './launcher.js';
import { generateContainerName } from './names.js';
import { cgroupPathOf } from './paths.js';
import { signalNumber, stopSequence, within } from './signals.js';
import { recordedState, refuseRemovalOf, stateOf } from './state.js';
import type { ContainerRecord, ContainerState, ContainerView, HostConfig, RecordedState, StoredContainer } from './types.js';
import { Waiters, type WaitCondition, type WaitResult } from './waiters.js';

export type { CreateRequest };
export type { AttachSession, ContainerServiceDeps } from './container-reads.js';

/** Containers: records, lifecycle, attach, logs. HTTP-free: routes call it, it calls the layers below. */
export class ContainerService extends ContainerReads {
  private readonly waiters = new Waiters();
  /** Containers a restart is stopping: their end does not auto-remove them (dockerd's restart, too). */
  private readonly restarting = new Set<string>();
  private readonly log: Logger;
  private readonly launcher: Launcher;

  constructor(d: ContainerServiceDeps) {
    super(d);
    this.log = d.log;
    this.launcher = new Launcher({ ...d, dirs: this.dirs, lookup: (ref) => this.records.require(ref), find: (ref) => this.records.find(ref) });
    for (const r of d.repo.all()) {
      // rows written before endpoint settings had one owner (the network service) carry a stale copy: dropped
      delete (r as { networkSettings?: unknown }).networkSettings;
      this.records.add({ ...r, state: stateOf(r.state) });
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Helpers (the reads are in container-reads.ts)

  /** The mutable record: for this service alone, the only writer of container state. */
  private record(ref: string): ContainerRecord {
    return this.records.require(ref);
  }

  /** Runs lifecycle operations of one container one at a time. */
  private serial<T>(id: string, op: () => Promise<T>): Promise<T> {
    return this.runs.serial(id, op);
  }

  /** The one place a container's state changes: recorded fields patched, the flags derived from Status again. */
  private setState(c: ContainerRecord, patch: Partial<RecordedState>): void {
    c.state = stateOf({ ...c.state, ...patch });
  }

  private save(c: ContainerRecord): void {
    if (!this.d.repo.update(stored(c))) throw new ConflictError(`Conflict. The container name "/${c.name}" is already in use`);
  }

  private attrs(c: ContainerRecord, extra: Record<string, string> = {}): Record<string, string> {
    return { ...(c.config.Labels ?? {}), image: c.config.Image, name: c.name, ...extra };
  }

  /**
   * CRI pods and containers belong to the kubelet (as containerd's k8s.io namespace keeps them from other clients):
   * the Docker API sees them but does not start, stop, kill, restart, pause, unpause, update, rename or remove them.
   */
  private ownerCheck(c: ContainerRecord, by: 'cri' | undefined): void {
    if (c.cri && by !== 'cri') {
      throw new ConflictError(`container ${c.id} is managed by the Kubernetes CRI (${c.cri.kind === 'sandbox' ? 'pod sandbox' : 'pod container'}): use crictl or the kubelet`);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Create

  async create(req: CreateRequest): Promise<{ Id: string; Warnings: string[] }> {
    const { record, created, warnings } = await newContainerRecord(req, {
      images: this.d.images,
      cgroups: this.d.cgroups,
      logConfig: this.d.logConfig,
      driver: this.d.layers.driver,
    });
    const { id } = record;
    const name = req.name ? record.name : undefined;

    // The name is reserved atomically by the UNIQUE column; generated names retry.
    for (let attempt = 0; ; attempt++) {
      if (this.d.repo.insert(stored(record), created)) break;
      if (name !== undefined) {
        const holder = this.records.find(name);
        throw new ConflictError(
          `Conflict. The container name "/${name}" is already in use by container "${holder?.id ?? ''}". You have to remove (or rename) that container to be able to reuse that name.`,
        );
      }
      if (attempt > 20) throw new BerthError('could not generate a unique container name');
      record.name = generateContainerName(attempt);
    }
    this.records.add(record);

    try {
      // The container holds its image's layers: `rmi -f` of the image must not delete them under it.
      if (record.chainId) this.d.layers.hold(id, record.chainId);
      await this.dirs.prepare(id);
      const mounts = await this.launcher.resolveMounts(record, () => this.d.views.imageRootfs(record));
      // stored again only when there are mounts: without (the usual run) the row inserted above is complete
      if (mounts.length > 0 || record.mounts.length > 0) {
        record.mounts = mounts;
        this.save(record);
      }
    } catch (e) {
      this.records.delete(id);
      this.d.repo.delete(id);
      this.d.layers.release(id);
      await this.dirs.removeNow(id);
      throw e;
    }
    this.d.events.publish('container', 'create', id, this.attrs(record));
    return { Id: id, Warnings: warnings };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Start

  start(ref: string, by?: 'cri'): Promise<'started' | 'already'> {
    const c = this.record(ref);
    this.ownerCheck(c, by);
    return this.serial(c.id, () => this.startLocked(c));
  }

  private async startLocked(c: ContainerRecord): Promise<'started' | 'already'> {
    if (!this.records.has(c.id)) throw new NotFoundError(`No such container: ${c.id}`);
    if (c.state.Paused) throw new ConflictError('cannot start a paused container, try unpause instead');
    if (c.state.Running) return 'already';
    if (c.state.Status === 'removing' || c.state.Status === 'dead') {
      throw new ConflictError(`container is marked for removal and cannot be started`);
    }
    this.runs.cancelRestart(c.id);
    c.manuallyStopped = false;
    try {
      await this.launch(c);
    } catch (e) {
      await this.runs.settleAttaches(c.id);
      // launch() undid what it had set up: nothing to release.
      await this.finishRun(c, { kind: 'failed-start', exitCode: e instanceof ContainerStartError ? e.exitCode : 128, error: errorMessage(e) });
      throw e;
    }
    return 'started';
  }

  /** Launches a run and records it: the one place a container becomes running. */
  private launch(c: ContainerRecord): Promise<void> {
    return this.launcher.launch(c, {
      created: async () => {
        await this.runs.settleAttaches(c.id, (want) => this.d.executor.attach(c.id, want));
        this.runs.beginRun(c.id);
      },
      started: (pid) => {
        c.hasBeenStarted = true;
        this.setState(c, { Status: 'running', OOMKilled: false, Pid: pid, ExitCode: 0, Error: '', StartedAt: rfc3339Nano(nowNano()) });
        this.save(c);
        this.d.events.publish('container', 'start', c.id, this.attrs(c));
        this.watchExit(c);
      },
    });
  }

  private watchExit(c: ContainerRecord): void {
    this.d.executor.waitExit(c.id).then(
      (st) => this.serial(c.id, () => this.onExit(c, st)),
      (e: unknown) => this.log.error({ err: errorMessage(e), id: c.id }, 'waiting for container exit failed'),
    );
  }

  /** The process ended on its own (or was signalled). */
  private async onExit(c: ContainerRecord, st: ExitStatus): Promise<void> {
    if (!this.records.has(c.id) || !c.state.Running) return;
    await this.finishRun(c, { kind: 'exited', exitCode: st.exitCode, error: st.error ?? '', finishedAt: st.finishedAt });
  }

  /**
   * Every way a run ends goes through here: a start that failed (launch undid its set-up; the container stays
   * "created" if it never ran, as dockerd), a process that exited, a running container removed with force.
   * It releases what the run held (shim, network, mounts), records the end, publishes oom/die, wakes waiters,
   * then applies the restart policy or AutoRemove (not for a removal, which goes on itself).
   */
  private async finishRun(c: ContainerRecord, end: RunEnd): Promise<void> {
    const ran = end.kind !== 'failed-start';
    const startedAt = Date.parse(c.state.StartedAt);
    let oom = false;
    if (ran) {
      ({ oom } = await this.launcher.release(c));
      this.setState(c, {
        Status: 'exited',
        OOMKilled: oom,
        Pid: 0,
        ExitCode: end.exitCode,
        Error: end.error ?? '',
        FinishedAt: end.finishedAt || rfc3339Nano(nowNano()),
      });
    } else {
      this.setState(c, { Status: c.hasBeenStarted ? 'exited' : 'created', Pid: 0, ExitCode: end.exitCode, Error: end.error ?? '' });
    }
    if (oom) this.d.events.publish('container', 'oom', c.id, this.attrs(c));
    this.d.events.publish('container', 'die', c.id, this.attrs(c, { exitCode: String(end.exitCode) }));
    if (ran) this.runs.endRun(c.id);
    const exited: WaitResult = { StatusCode: end.exitCode, Error: ran ? null : { Message: end.error ?? '' } };

    const delay = end.kind === 'exited' ? this.runs.restartDelay(c.id, c.hostConfig.RestartPolicy, end.exitCode, c.restartCount, c.manuallyStopped, Date.now() - startedAt) : undefined;
    if (delay !== undefined && !c.hostConfig.AutoRemove) {
      this.setState(c, { Status: 'restarting' });
      this.save(c);
      this.waiters.exited(c.id, exited);
      this.runs.scheduleRestart(c.id, delay, () => {
        void this.serial(c.id, async () => {
          if (!this.records.has(c.id) || c.state.Status !== 'restarting') return;
          c.restartCount++;
          try {
            await this.launch(c);
            this.d.events.publish('container', 'restart', c.id, this.attrs(c));
          } catch (e) {
            this.log.warn({ err: errorMessage(e), id: c.id }, 'restart failed');
            this.setState(c, { Status: 'exited', Error: errorMessage(e) });
            this.save(c);
          }
        });
      });
      return;
    }
    this.save(c);
    this.waiters.exited(c.id, exited);
    if (end.kind === 'removed') return;
    if (c.hostConfig.AutoRemove && !this.restarting.has(c.id)) {
      await this.removeLocked(c, { force: true, removeVolumes: true }).catch((e: unknown) =>
        this.log.warn({ err: errorMessage(e), id: c.id }, 'auto-remove failed'),
      );
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Stop, kill, restart, wait

  /**
   * dockerd's stop: the stop signal, then SIGKILL after the timeout; 'already' when not running.
   * Stop and kill do not take the lifecycle lock, on purpose: they wait for the exit, and the exit is recorded by
   * finishRun in that same lock (watchExit queues it), so holding the lock here would wait for itself until the
   * timeout. What they write themselves (manuallyStopped, the cancelled restart) is one synchronous step.
   */
  stop(ref: string, opts: { timeout?: number; signal?: string; by?: 'cri' } = {}): Promise<'stopped' | 'already'> {
    const c = this.record(ref);
    this.ownerCheck(c, opts.by);
    if (this.runs.cancelRestart(c.id)) {
      c.manuallyStopped = true;
      this.setState(c, { Status: 'exited' });
      this.save(c);
      return Promise.resolve('stopped');
    }
    if (!c.state.Running) return Promise.resolve('already');
    c.manuallyStopped = true;
    this.save(c);
    return this.stopRunning(c, opts).then(() => {
      this.d.events.publish('container', 'stop', c.id, this.attrs(c));
      return 'stopped' as const;
    });
  }

  private async stopRunning(c: ContainerRecord, opts: { timeout?: number; signal?: string }): Promise<void> {
    const stopped = this.runs.stopped(c.id) ?? Promise.resolve();
    if (c.state.Paused) await this.unpauseCgroup(c).catch(() => undefined);
    await stopSequence({
      signal: signalNumber(opts.signal || c.config.StopSignal || 'SIGTERM'),
      timeout: opts.timeout ?? c.config.StopTimeout ?? 10,
      stopped,
      send: (sig) => this.signal(c, sig),
    });
  }

  private async signal(c: ContainerRecord, sig: number): Promise<void> {
    this.d.events.publish('container', 'kill', c.id, this.attrs(c, { signal: String(sig) }));
    await this.d.executor.kill(c.id, sig, { all: sig === 9 });
  }

  async kill(ref: string, signal?: string, by?: 'cri'): Promise<void> {
    const c = this.record(ref);
    this.ownerCheck(c, by);
    if (!c.state.Running) throw new ConflictError(`Cannot kill container: ${ref}: Container ${c.id} is not running`);
    const sig = signalNumber(signal || 'SIGKILL');
    // dockerd marks a killed container as manually stopped: its restart policy does not bring it back.
    if (sig === 9 || sig === 15 || sig === signalNumber(c.config.StopSignal || 'SIGTERM')) {
      c.manuallyStopped = true;
      this.save(c);
    }
    const stopped = this.runs.stopped(c.id);
    await this.signal(c, sig);
    // As dockerd's Kill: a SIGKILL returns once the container is seen stopped (bounded), so an inspect right after
    // the kill shows it exited with 137 (docker-py KillTest.test_kill).
    if (sig === 9 && stopped) await within(stopped, 10_000);
  }

  async restart(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    const c = this.record(ref);
    this.ownerCheck(c, undefined);
    this.restarting.add(c.id);
    try {
      if (c.state.Running) await this.stopRunning(c, opts);
      await this.serial(c.id, () => this.startLocked(c));
    } finally {
      this.restarting.delete(c.id);
    }
    this.d.events.publish('container', 'restart', c.id, this.attrs(c));
  }

  wait(ref: string, condition: WaitCondition): { id: string; result: Promise<WaitResult> } {
    const c = this.record(ref);
    if (condition === 'not-running' && !c.state.Running && c.state.Status !== 'restarting') {
      return { id: c.id, result: Promise.resolve({ StatusCode: c.state.ExitCode, Error: null }) };
    }
    return { id: c.id, result: this.waiters.add(c.id, condition) };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Remove

  remove(ref: string, opts: { force?: boolean; removeVolumes?: boolean; by?: 'cri' }): Promise<void> {
    const c = this.record(ref);
    this.ownerCheck(c, opts.by);
    if (!opts.force) refuseRemovalOf(c);
    // Like dockerd's rm, the answer comes once the network namespace is unmounted too (the network service
    // tears it down in the background, and its veths after it; AutoRemove does not wait for that).
    return this.serial(c.id, () => this.removeLocked(c, opts)).then(() => this.d.network.unmounted());
  }

  private async removeLocked(c: ContainerRecord, opts: { force?: boolean; removeVolumes?: boolean }): Promise<void> {
    if (!this.records.has(c.id)) return;
    this.runs.cancelRestart(c.id);
    if (c.state.Running) {
      c.manuallyStopped = true;
      c.hostConfig = { ...c.hostConfig, AutoRemove: false };
      await this.d.executor.kill(c.id, 9, { all: true }).catch(() => undefined);
      // The exit handler runs in this container's serial queue, after us: finish its work here.
      let st: ExitStatus | undefined;
      await within(this.d.executor.waitExit(c.id).then((s) => (st = s)), 15_000);
      await this.finishRun(c, { kind: 'removed', exitCode: st?.exitCode ?? 137, error: st?.error ?? '', finishedAt: st?.finishedAt });
    } else {
      // A container that exited: its executor entry (if a restart policy kept it) is gone already.
      await this.d.executor.delete(c.id).catch(() => undefined);
    }
    this.setState(c, { Status: 'removing' });
    const anonymous = c.mounts.filter((m) => m.Anonymous && m.Name).map((m) => m.Name as string);
    this.records.delete(c.id);
    this.d.repo.delete(c.id);
    this.runs.forget(c.id);
    await this.dirs.discard(c.id);
    this.d.layers.release(c.id);
    if (opts.removeVolumes && anonymous.length > 0) {
      await this.d.volumes.removeAnonymousVolumes(anonymous, c.id).catch((e: unknown) =>
        this.log.warn({ err: errorMessage(e), id: c.id }, 'removing anonymous volumes failed'),
      );
    }
    this.d.events.publish('container', 'destroy', c.id, this.attrs(c));
    this.waiters.removed(c.id, { StatusCode: c.state.ExitCode, Error: null });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Attach

  /**
   * Attach: live output (and stdin) of the current or next run. When the container is not running,
   * the session waits for the next start (docker run / start -a attach first).
   */
  async attach(ref: string, want: AttachWant): Promise<{ c: ContainerView; handle: Promise<AttachHandle | undefined> }> {
    const c = this.record(ref);
    const wantStdin = want.stdin && c.config.OpenStdin;
    const w = { ...want, stdin: wantStdin };
    this.d.events.publish('container', 'attach', c.id, this.attrs(c));
    if (c.state.Running) return { c, handle: this.d.executor.attach(c.id, w) };
    return { c, handle: this.runs.waitForStart(c.id, w) };
  }

  async resize(ref: string, height: number, width: number): Promise<void> {
    const c = this.record(ref);
    if (!c.state.Running) throw new ConflictError(`Container ${c.id} is not running`);
    // Without a TTY there is nothing to resize: containerd answers success, so dockerd does (dockerode resize()).
    if (c.config.Tty !== true) return;
    await this.d.executor.resize(c.id, height, width);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Network endpoints of a stopped container, links

  /** network connect on a stopped container: remembered in its NetworkingConfig, applied at start. */
  attachStopped(id: string, network: string, cfg: EndpointRequest): void {
    const c = this.record(id);
    c.networkingConfig = withEndpoint(c, network, cfg);
    this.save(c);
  }

  /**
   * docker rm --link /<parent>/<alias>: the parent forgets the legacy link (HostConfig.Links, and its hosts
   * entry while it runs). dockerd's errors: the default link name of a container cannot be removed, an
   * unknown parent or link is "No such container".
   */
  async removeLink(parentRef: string, alias: string): Promise<void> {
    const c = this.records.find(parentRef);
    const has = (l: string): boolean => (l.split(':')[1] ?? l.split(':')[0] ?? '').replace(/^.*\//, '') === alias;
    if (!c || !(c.hostConfig.Links ?? []).some(has)) throw new NotFoundError(`No such container: ${parentRef.replace(/^\//, '')}/${alias}`);
    await this.serial(c.id, async () => {
      c.hostConfig = { ...c.hostConfig, Links: (c.hostConfig.Links ?? []).filter((l) => !has(l)) };
      this.save(c);
      if (c.state.Running) await this.d.network.removeLink(c.id, alias);
    });
  }

  /** network disconnect on a stopped container; false when it was not attached. */
  detachStopped(id: string, network: string): boolean {
    const c = this.record(id);
    const nc = withoutEndpoint(c, network);
    if (!nc) return false;
    c.networkingConfig = nc;
    this.save(c);
    return true;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Daemon start and stop

  /**
   * After a daemon restart: re-adopt live shims, record exits that happened while berthd was down,
   * and re-apply restart policies (always / unless-stopped start again, as dockerd does).
   */
  async restore(): Promise<string[]> {
    this.dirs.emptyTrash();
    const liveIds: string[] = [];
    // Each container is adopted on its own (reads of its bundle, a round trip to its shim): several at a time, so
    // a start with many running containers is not a sum of round trips.
    const running = this.records.all().filter((c) => c.state.Running || c.state.Status === 'restarting');
    await eachLimited(running, RESTORE_CONCURRENCY, async (c) => {
      const outcome = await this.launcher.adopt(c);
      if (outcome === 'live') {
        liveIds.push(c.id);
        this.runs.beginRun(c.id);
        this.watchExit(c);
        this.log.info({ id: c.id }, 'container re-adopted');
      } else {
        // The run ended while berthd was away: recorded as any exit (the restart policy then applies).
        const st = outcome;
        await this.serial(c.id, () => this.finishRun(c, { kind: 'exited', exitCode: st.exitCode, error: st.error ?? '', finishedAt: st.finishedAt }));
      }
    });
    return liveIds;
  }

  /** Containers with restart policy always / unless-stopped that were not running when berthd stopped. */
  async startRestartPolicyContainers(): Promise<void> {
    const due = this.records.all().filter((c) => {
      const p = c.hostConfig.RestartPolicy?.Name;
      // dockerd: `always` starts again at daemon start even when stopped by hand; unless-stopped does not
      if (c.state.Running || !c.hasBeenStarted) return false;
      return p === 'always' || (p === 'unless-stopped' && !c.manuallyStopped);
    });
    await eachLimited(due, RESTORE_CONCURRENCY, (c) =>
      this.start(c.id).catch((e: unknown) => this.log.warn({ err: errorMessage(e), id: c.id }, 'restart policy start failed')),
    );
  }

  /** Daemon shutdown: containers keep running; only timers stop. */
  shutdown(): void {
    this.runs.shutdown();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Intent methods: every change another module makes to a container goes through one of these.

  /** docker pause: freezes the cgroup of a running container. */
  pause(ref: string, by?: 'cri'): Promise<void> {
    const c = this.record(ref);
    this.ownerCheck(c, by);
    return this.serial(c.id, async () => {
      if (!c.state.Running) throw new ConflictError(`Container ${c.id} is not running`);
      if (c.state.Paused) throw new ConflictError(`Container ${c.id} is already paused`);
      if (c.state.Restarting) throw new ConflictError(`Container ${c.id} is restarting, wait until the container is running`);
      await this.d.cgroups.open(cgroupPathOf(c)).freeze();
      this.setPaused(c, true);
      this.d.events.publish('container', 'pause', c.id, this.attrs(c));
    });
  }

  /** docker unpause: thaws it. */
  unpause(ref: string, by?: 'cri'): Promise<void> {
    const c = this.record(ref);
    this.ownerCheck(c, by);
    return this.serial(c.id, async () => {
      if (!c.state.Paused) throw new ConflictError(`Container ${c.id} is not paused`);
      await this.unpauseCgroup(c);
      this.d.events.publish('container', 'unpause', c.id, this.attrs(c));
    });
  }

  /** A new name (validated by the caller); a ConflictError when another container holds it. */
  rename(ref: string, name: string, by?: 'cri'): Promise<{ oldName: string }> {
    const c = this.record(ref);
    this.ownerCheck(c, by);
    return this.serial(c.id, () => {
      const oldName = c.name;
      c.name = name;
      try {
        this.save(c);
      } catch (e) {
        c.name = oldName;
        throw e;
      }
      return Promise.resolve({ oldName });
    });
  }

  /**
   * docker update: `decide` reads the container (and may apply resources to its running cgroup) under the
   * lifecycle lock and returns the new HostConfig, which this service records (and publishes `update`).
   */
  update<T>(ref: string, decide: (c: ContainerView) => Promise<{ hostConfig: HostConfig; result: T }>, by?: 'cri'): Promise<T> {
    const c = this.record(ref);
    this.ownerCheck(c, by);
    return this.serial(c.id, async () => {
      const { hostConfig, result } = await decide(c);
      c.hostConfig = hostConfig;
      this.save(c);
      this.d.events.publish('container', 'update', c.id, this.attrs(c));
      return result;
    });
  }

  /**
   * The health state of a running container (HealthMonitor), `undefined` to clear it. Not under the lifecycle
   * lock on purpose: it is one synchronous write (nothing can interleave with it), and queueing it behind a start
   * would leave a just-started container without its "starting" health for an inspect that follows the start.
   * `whenRunning`: only written while the container still runs (a probe result that arrives after the exit is dropped).
   */
  setHealth(id: string, health: ContainerState['Health'], opts: { whenRunning?: boolean } = {}): boolean {
    const c = this.records.withId(id);
    if (!c || (opts.whenRunning && !c.state.Running)) return false;
    if (health) this.setState(c, { Health: health });
    else if (c.state.Health) {
      const { Health: _h, ...rest } = recordedState(c.state);
      void _h;
      c.state = stateOf(rest);
    } else return true;
    this.save(c);
    return true;
  }

  private setPaused(c: ContainerRecord, paused: boolean): void {
    this.setState(c, { Status: paused ? 'paused' : 'running' });
    this.save(c);
  }

  /** The CRI layer's data on a CRI container or sandbox (pod IPs once its network is up). */
  setCriData(id: string, data: Record<string, unknown>): void {
    const c = this.records.withId(id);
    if (!c?.cri) throw new NotFoundError(`No such container: ${id}`);
    c.cri = { ...c.cri, data: { ...c.cri.data, ...data } };
    this.save(c);
  }

  /** The CRI layer reopens a CRI container's log (the kubelet rotated it). */
  async reopenLog(id: string): Promise<void> {
    const c = this.record(id);
    if (!c.state.Running) throw new ConflictError(`container ${id} is not running`);
    await this.d.executor.reopenLog(id);
  }

  /** Runs `op` under the container's lifecycle lock: no start, stop or remove of it meanwhile. */
  exclusive<T>(id: string, op: () => Promise<T>): Promise<T> {
    return this.serial(id, op);
  }

  private async unpauseCgroup(c: ContainerRecord): Promise<void> {
    await this.d.cgroups.open(cgroupPathOf(c)).thaw();
    this.setPaused(c, false);
  }
}

/** How a run ended (ContainerService.finishRun). */
interface RunEnd {
  kind: 'failed-start' | 'exited' | 'removed';
  exitCode: number;
  error?: string;
  finishedAt?: string;
}


/** Containers restored (or started by their restart policy) at once at daemon start. */
const RESTORE_CONCURRENCY = 8;

/** A record as the metadata store keeps it (the state without its derived flags). */
function stored(c: ContainerRecord): StoredContainer {
  return { ...c, state: recordedState(c.state) };
}
