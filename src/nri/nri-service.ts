import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { errorMessage } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { AdjustmentConflictError, AdjustmentMerger, adjustmentMessage, ownersMessage, type MergedAdjustment } from './adjustment.js';
import { checkPluginName, isFatal, PluginConn, VALID_EVENTS, type NriEventName } from './plugin.js';
import { loadNriCodecs, NRI_VERSION, type NriMsg } from './proto.js';
import { TtrpcError } from './ttrpc.js';

/** containerd's default NRI socket, where plugins look for the runtime. */
export const DEFAULT_NRI_SOCKET = '/var/run/nri/nri.sock';
export const DEFAULT_REGISTRATION_TIMEOUT_MS = 5_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 2_000;

export interface NriOptions {
  socketPath: string;
  registrationTimeoutMs?: number;
  requestTimeoutMs?: number;
  runtimeName: string;
  runtimeVersion: string;
  /** Pre-installed plugins launched at start (executables named NN-name; containerd's /opt/nri/plugins). */
  pluginPath?: string;
  /** Their configuration drop-ins: NN-name.conf or name.conf (containerd's /etc/nri/conf.d). */
  pluginConfigPath?: string;
}

/** What the CRI gives the NRI service: the pods and containers a new plugin is synchronized with, and updates. */
export interface NriStateSource {
  /** NRI PodSandbox and Container messages of every existing pod and container. */
  snapshot(): { pods: NriMsg[]; containers: NriMsg[] };
  /** Applies container updates (NRI ContainerUpdate messages); returns the ones that failed. */
  update(updates: NriMsg[]): Promise<NriMsg[]>;
}

/** A plugin's CreateContainer answer refused the container (or plugins conflicted). */
export class NriPluginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NriPluginError';
  }
}

/**
 * A readers-writer gate: CRI operations that create pods or containers hold it shared from their NRI event until
 * the object is in the store; a plugin's synchronization holds it exclusively from its snapshot until it is on the
 * list of plugins, so an object is either in the snapshot or delivered to the plugin as an event, never lost.
 * Writers go first (a waiting synchronization stops new readers).
 */
class SyncGate {
  private readers = 0;
  private writer = false;
  private readonly waitingWriters: (() => void)[] = [];
  private readonly waitingReaders: (() => void)[] = [];

  async shared(): Promise<() => void> {
    if (this.writer || this.waitingWriters.length > 0) await new Promise<void>((r) => this.waitingReaders.push(r));
    else this.readers++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.readers--;
      this.next();
    };
  }

  async exclusive(): Promise<() => void> {
    if (this.writer || this.readers > 0) await new Promise<void>((r) => this.waitingWriters.push(r));
    else this.writer = true;
    return () => {
      this.writer = false;
      this.next();
    };
  }

  private next(): void {
    if (this.writer || this.readers > 0) return;
    const w = this.waitingWriters.shift();
    if (w) {
      this.writer = true;
      w();
      return;
    }
    for (const r of this.waitingReaders.splice(0)) {
      this.readers++;
      r();
    }
  }
}

/**
 * The runtime side of the Node Resource Interface (github.com/containerd/nri): external plugins connect to the
 * NRI socket, register (name and two-digit index), are configured (the events they subscribe to) and
 * synchronized with the existing pods and containers; from then on the CRI's pod and container lifecycle calls
 * the hooks below, which deliver the events to the plugins in index order, one event at a time. CreateContainer
 * answers are merged into one adjustment (conflicting plugins fail the create). A plugin that times out, breaks the
 * protocol or disconnects is dropped and the event goes on without it; a plugin's own error fails
 * RunPodSandbox/CreateContainer/UpdateContainer and is only logged for the other events. Nothing here blocks the
 * daemon or reaches into the stores: the CRI hands in NRI messages and a NriStateSource.
 */
export class NriService {
  private plugins: PluginConn[] = [];
  private server: Server | undefined;
  private source: NriStateSource | undefined;
  private readonly gate = new SyncGate();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly registrationTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private closed = false;
  private readonly conns = new Set<PluginConn>();
  /** Pre-installed plugins' processes (killed with the service). */
  private readonly launched = new Set<ChildProcess>();

  constructor(
    private readonly opts: NriOptions,
    private readonly log: Logger,
    /** Called before a plugin's synchronization when no state source is set yet (starts the CRI). */
    private readonly ensureSource: () => Promise<void> = async () => undefined,
  ) {
    this.registrationTimeoutMs = opts.registrationTimeoutMs ?? DEFAULT_REGISTRATION_TIMEOUT_MS;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }

  /** Listens on the NRI socket (0600, in a 0700 directory it creates). Refuses a socket another runtime serves. */
  async start(): Promise<void> {
    const path = this.opts.socketPath;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (await socketAnswers(path)) throw new Error(`NRI socket ${path} is served by another process`);
    rmSync(path, { force: true });
    const server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    this.server = server;
    this.log.info({ socket: path }, 'NRI socket listening');
    if (this.opts.pluginPath) void this.launchPlugins(this.opts.pluginPath, this.opts.pluginConfigPath ?? '');
  }

  /**
   * Launches the pre-installed plugins: each executable `NN-name` of the plugin directory, with one end of a
   * socket pair as its fd 3 (NRI_PLUGIN_SOCKET=3, NRI_PLUGIN_NAME, NRI_PLUGIN_IDX and nothing else in its
   * environment, as containerd), its drop-in configuration passed in Configure. A plugin that fails to start,
   * register or synchronize is killed and left out; one that exits later is dropped like any plugin.
   */
  private async launchPlugins(dir: string, confDir: string): Promise<void> {
    let entries: string[];
    try {
      entries = (await readdir(dir)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ dir, err: errorMessage(e) }, 'NRI: cannot read the plugin directory');
      return;
    }
    try {
      await loadNriCodecs();
    } catch (e) {
      this.log.error({ err: errorMessage(e) }, 'NRI: loading the NRI interface failed');
      return;
    }
    for (const file of entries) {
      const m = /^([0-9]{2})-(.+)$/.exec(file);
      const path = join(dir, file);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile() || (st.mode & 0o111) === 0) continue;
      if (!m || checkPluginName(m[2] as string) !== undefined) {
        this.log.warn({ plugin: path }, 'NRI: pre-installed plugin not launched: its name is not NN-name');
        continue;
      }
      const idx = m[1] as string;
      const name = m[2] as string;
      if (this.closed) return;
      let config = '';
      for (const f of [`${idx}-${name}.conf`, `${name}.conf`]) {
        const text = confDir === '' ? undefined : await readFile(join(confDir, f), 'utf8').catch(() => undefined);
        if (text !== undefined) {
          config = text;
          break;
        }
      }
      this.launch(path, name, idx, config);
    }
  }

  private launch(path: string, name: string, idx: string, config: string): void {
    let child: ChildProcess;
    try {
      child = spawn(path, [], {
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        env: { NRI_PLUGIN_NAME: name, NRI_PLUGIN_IDX: idx, NRI_PLUGIN_SOCKET: '3' },
        detached: false,
      });
    } catch (e) {
      this.log.warn({ plugin: path, err: errorMessage(e) }, 'NRI: pre-installed plugin failed to start');
      return;
    }
    const socket = child.stdio[3] as Socket | null;
    child.on('error', (e) => this.log.warn({ plugin: path, err: errorMessage(e) }, 'NRI: pre-installed plugin failed to start'));
    child.stderr?.on('data', (b: Buffer) => this.log.debug({ plugin: `${idx}-${name}`, stderr: b.toString('utf8', 0, Math.min(b.length, 1024)) }, 'NRI plugin output'));
    child.on('exit', (code, signal) => {
      this.launched.delete(child);
      this.log.info({ plugin: `${idx}-${name}`, code, signal }, 'NRI pre-installed plugin exited');
      socket?.destroy();
    });
    if (!socket) {
      child.kill('SIGKILL');
      return;
    }
    this.launched.add(child);
    this.log.info({ plugin: `${idx}-${name}`, pid: child.pid }, 'NRI pre-installed plugin launched');
    const p = this.connect(socket, { name, idx, config });
    p.onClose(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.conns) p.close();
    for (const c of this.launched) c.kill('SIGKILL');
    this.plugins = [];
    if (this.server) {
      const s = this.server;
      this.server = undefined;
      await new Promise<void>((resolve) => s.close(() => resolve()));
      rmSync(this.opts.socketPath, { force: true });
    }
  }

  setStateSource(source: NriStateSource): void {
    this.source = source;
  }

  /** The registered, synchronized plugins in invocation order ("<idx>-<name>"). */
  pluginNames(): string[] {
    return this.active().map((p) => p.id);
  }

  private active(): PluginConn[] {
    this.plugins = this.plugins.filter((p) => !p.closed);
    return this.plugins;
  }

  private accept(socket: Socket): void {
    socket.pause();
    loadNriCodecs().then(
      () => {
        this.acceptLoaded(socket);
        socket.resume();
      },
      (e: unknown) => {
        this.log.error({ err: errorMessage(e) }, 'NRI: loading the NRI interface failed');
        socket.destroy();
      },
    );
  }

  private acceptLoaded(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.connect(socket);
  }

  private connect(socket: Socket, preset?: { name: string; idx: string; config: string }): PluginConn {
    const p = new PluginConn(socket, { updateContainers: (plugin, updates) => this.applyUpdates(plugin, updates) }, this.log, preset);
    this.conns.add(p);
    p.onClose(() => {
      this.conns.delete(p);
      this.plugins = this.plugins.filter((x) => x !== p);
    });
    void this.register(p).catch((e: unknown) => {
      this.log.warn({ plugin: p.id, err: errorMessage(e) }, 'NRI plugin dropped');
      p.close();
    });
    return p;
  }

  private async register(p: PluginConn): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        p.registered,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`plugin registration timed out (${this.registrationTimeoutMs} ms)`)), this.registrationTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    const cfg = await p.call(
      'Configure',
      {
        config: p.config,
        runtime_name: this.opts.runtimeName,
        runtime_version: this.opts.runtimeVersion,
        registration_timeout: String(this.registrationTimeoutMs),
        request_timeout: String(this.requestTimeoutMs),
        NRI_version: NRI_VERSION,
      },
      this.requestTimeoutMs,
    );
    let events = Number(cfg.events ?? 0);
    if (events === 0) events = VALID_EVENTS;
    if ((events & ~VALID_EVENTS) !== 0) throw new Error(`invalid plugin events: 0x${(events & ~VALID_EVENTS).toString(16)}`);
    p.events = events;
    if (!this.source) await this.ensureSource();
    const release = await this.gate.exclusive();
    try {
      const { pods, containers } = this.source?.snapshot() ?? { pods: [], containers: [] };
      const rpl = await p.call('Synchronize', { pods, containers, more: false }, this.requestTimeoutMs);
      if (p.closed) throw new Error('connection closed during synchronization');
      const updates = Array.isArray(rpl.update) ? (rpl.update as NriMsg[]) : [];
      if (updates.length > 0) await this.applyUpdates(p.id, updates);
      this.plugins = [...this.active(), p].sort((a, b) => (a.idx < b.idx ? -1 : a.idx > b.idx ? 1 : 0));
      this.log.info({ plugin: p.id, pods: pods.length, containers: containers.length, order: this.plugins.map((x) => x.id) }, 'NRI plugin synchronized');
    } finally {
      release();
    }
  }

  private async applyUpdates(plugin: string, updates: NriMsg[]): Promise<NriMsg[]> {
    if (!this.source) return updates;
    this.log.info({ plugin, count: updates.length }, 'NRI plugin requested container updates');
    return this.source.update(updates);
  }

  /** Holds off plugin synchronization while a pod or container is created (see SyncGate); call the result when done. */
  blockSync(): Promise<() => void> {
    return this.gate.shared();
  }

  /** Runs fn after every event queued before it (events reach the plugins one at a time, in order). */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Delivers one event to every subscribed plugin in order; collects the answers. A fatal failure drops the
   * plugin and goes on; a plugin's error answer is returned as NriPluginError.
   */
  private dispatch(event: NriEventName, req: NriMsg): Promise<{ plugin: string; reply: NriMsg }[]> {
    const plugins = this.active().filter((p) => p.subscribed(event));
    if (plugins.length === 0) return Promise.resolve([]);
    return this.serialize(() => this.deliverAll(plugins, event, req));
  }

  /** Delivers one event to the given plugins in order (the caller holds the event queue). */
  private async deliverAll(plugins: PluginConn[], event: NriEventName, req: NriMsg): Promise<{ plugin: string; reply: NriMsg }[]> {
    const replies: { plugin: string; reply: NriMsg }[] = [];
    for (const p of plugins) {
      if (p.closed) continue;
      try {
        replies.push({ plugin: p.id, reply: await p.deliver(event, req, this.requestTimeoutMs) });
      } catch (e) {
        if (isFatal(e)) {
          this.log.error({ plugin: p.id, event, err: errorMessage(e) }, 'NRI plugin failed to handle an event: dropped');
          p.close();
          continue;
        }
        throw new NriPluginError(`NRI plugin "${p.id}" failed to handle ${event}: ${e instanceof TtrpcError ? e.message : errorMessage(e)}`);
      }
    }
    return replies;
  }

  /** An event whose failure changes nothing: logged. */
  private async notify(event: NriEventName, req: NriMsg): Promise<NriMsg[]> {
    try {
      return (await this.dispatch(event, req)).map((r) => r.reply);
    } catch (e) {
      this.log.warn({ event, err: errorMessage(e) }, 'NRI event failed');
      return [];
    }
  }

  private async updatesOf(replies: NriMsg[]): Promise<void> {
    const updates = replies.flatMap((r) => (Array.isArray(r.update) ? (r.update as NriMsg[]) : []));
    if (updates.length > 0 && this.source) {
      const failed = await this.source.update(updates);
      if (failed.length > 0) this.log.warn({ failed: failed.map((u) => u.container_id) }, 'NRI container updates failed');
    }
  }

  async runPodSandbox(pod: NriMsg): Promise<void> {
    await this.dispatch('RUN_POD_SANDBOX', { pod });
  }

  async stopPodSandbox(pod: NriMsg): Promise<void> {
    await this.notify('STOP_POD_SANDBOX', { pod });
  }

  async removePodSandbox(pod: NriMsg): Promise<void> {
    await this.notify('REMOVE_POD_SANDBOX', { pod });
  }

  /** The merged adjustment of every plugin; throws NriPluginError when a plugin fails or plugins conflict. */
  async createContainer(pod: NriMsg, container: NriMsg): Promise<MergedAdjustment | undefined> {
    const active = this.active();
    const plugins = active.filter((p) => p.subscribed('CREATE_CONTAINER'));
    const validators = active.filter((p) => p.subscribed('VALIDATE_CONTAINER_ADJUSTMENT'));
    if (plugins.length === 0 && validators.length === 0) return undefined;
    const { replies, merger } = await this.serialize(async () => {
      const replies = await this.deliverAll(plugins, 'CREATE_CONTAINER', { pod, container });
      const merger = new AdjustmentMerger();
      try {
        for (const r of replies) merger.add(r.plugin, (r.reply.adjust as NriMsg | null) ?? null);
      } catch (e) {
        if (e instanceof AdjustmentConflictError) throw new NriPluginError(`NRI: ${e.message}`);
        throw e;
      }
      await this.validate(validators, pod, container, merger, replies, active);
      return { replies, merger };
    });
    await this.updatesOf(replies.map((r) => r.reply));
    return merger.result;
  }

  /**
   * ValidateContainerAdjustment: every validator (concurrently) sees the container, the merged adjustment, the
   * updates and which plugin owns which field; a rejection fails the create. Fail-closed: a validator that errs
   * or times out fails the create too (and one that timed out or disconnected is dropped).
   */
  private async validate(validators: PluginConn[], pod: NriMsg, container: NriMsg, merger: AdjustmentMerger, replies: { plugin: string; reply: NriMsg }[], plugins: PluginConn[]): Promise<void> {
    const live = validators.filter((v) => !v.closed);
    if (live.length === 0) return;
    const req: NriMsg = {
      pod,
      container,
      adjust: adjustmentMessage(merger.result),
      update: replies.flatMap((r) => (Array.isArray(r.reply.update) ? (r.reply.update as NriMsg[]) : [])),
      owners: ownersMessage(String(container.id ?? ''), merger),
      plugins: plugins.map((p) => ({ name: p.name, index: p.idx })),
    };
    const results = await Promise.all(
      live.map(async (v) => {
        try {
          const rpl = await v.call('ValidateContainerAdjustment', req, this.requestTimeoutMs);
          return rpl.reject === true ? `validator "${v.id}" rejected the container adjustment: ${String(rpl.reason ?? '')}` : undefined;
        } catch (e) {
          if (isFatal(e)) v.close();
          return `validator "${v.id}" failed: ${errorMessage(e)}`;
        }
      }),
    );
    const problem = results.find((x) => x !== undefined);
    if (problem) throw new NriPluginError(`NRI: ${problem}`);
  }

  async postCreateContainer(pod: NriMsg, container: NriMsg): Promise<void> {
    await this.notify('POST_CREATE_CONTAINER', { pod, container });
  }

  async startContainer(pod: NriMsg, container: NriMsg): Promise<void> {
    await this.notify('START_CONTAINER', { pod, container });
  }

  async postStartContainer(pod: NriMsg, container: NriMsg): Promise<void> {
    await this.notify('POST_START_CONTAINER', { pod, container });
  }

  /** UpdateContainer: plugins may answer with further updates (applied); a plugin's error fails the update. */
  async updateContainer(pod: NriMsg, container: NriMsg, linuxResources: NriMsg): Promise<void> {
    const replies = await this.dispatch('UPDATE_CONTAINER', { pod, container, linux_resources: linuxResources });
    await this.updatesOf(replies.map((r) => r.reply));
  }

  async postUpdateContainer(pod: NriMsg, container: NriMsg): Promise<void> {
    await this.notify('POST_UPDATE_CONTAINER', { pod, container });
  }

  async stopContainer(pod: NriMsg, container: NriMsg): Promise<void> {
    await this.updatesOf(await this.notify('STOP_CONTAINER', { pod, container }));
  }

  async removeContainer(pod: NriMsg, container: NriMsg): Promise<void> {
    await this.notify('REMOVE_CONTAINER', { pod, container });
  }
}

/** True when something accepts connections on the unix socket at path. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
