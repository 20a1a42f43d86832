import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  BerthError,
  ConflictError,
  InvalidParameterError,
  NotFoundError,
  NotImplementedError,
  errorMessage,
} from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { ImageService } from '../images/image-service.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import type { ContainerNetwork } from '../network/container-network.js';
import type { EndpointRequest } from '../network/types.js';
import type { VolumeService } from '../volumes/volume-service.js';
import {
  prepareContainerMounts,
  releaseContainerMounts,
  resolveContainerMounts,
  restoreContainerMounts,
} from '../volumes/container-mounts.js';
import type { CgroupManager } from '../runtime/cgroups/index.js';
import { adaptResources, hostConfigToLinuxResources, verifyResources } from './resources.js';
import { buildDeviceConfig } from './devices.js';
import type { AttachHandle, ExitStatus, Executor } from '../runtime/executor.js';
import { ContainerStartError } from '../runtime/executor.js';
import type { ContainerRepo } from '../metadata/container-repo.js';
import type { Logger } from '../util/logger.js';
import { Filters, labelTermHolds } from '../util/filters.js';
import { nowNano, parseTimestampParam, rfc3339Nano } from '../util/time.js';
import { commandOf, mergeImageConfig } from './config-merge.js';
import { generateContainerName, validateContainerName } from './names.js';
import { inspectEntry, listEntry, ZERO_TIME } from './presenters.js';
import { RestartBackoff, validateRestartPolicy } from './restart-policy.js';
import { buildSpec, containerCapabilities, parseSecurityOpts } from './spec-builder.js';
import { logAttributes, logLimits, resolveLogConfig } from './log-options.js';
import { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformMatches } from '../registry/platform.js';
import type { ContainerViews } from './container-views.js';
import { CONTAINER_DIR_MODE } from '../data-root.js';
import { resolveUser } from './user-resolve.js';
import { Waiters, type WaitCondition, type WaitResult } from './waiters.js';
import type { ContainerConfig, ContainerRecord, ContainerState, ContainerView, CriAttachment, HostConfig } from './types.js';
import { cgroupPathOf, containerDir } from './paths.js';
import { signalNumber } from './signals.js';
import { readLogBatches, type LogEntry } from './log-reader.js';


export interface ContainerServiceDeps {
  dataRoot: string;
  repo: ContainerRepo<ContainerRecord>;
  images: ImageService;
  layers: LayerStore;
  volumes: VolumeService;
  network: ContainerNetwork;
  executor: Executor;
  cgroups: CgroupManager;
  /** Read-only views of container filesystems (the image's root for copy-up at create). */
  views: ContainerViews;
  events: EventBus;
  log: Logger;
  /** daemon.json log-driver and log-opts (only what daemon.json sets: they show in each container's LogConfig). */
  logConfig: { type: string; opts: Record<string, string> };
  initPath: string;
}

export interface CreateRequest {
  name?: string;
  /** `platform` of the create request (os[/arch[/variant]]): the image must be built for it. */
  platform?: string;
  /** Set by the CRI layer only (never from the Docker API). */
  cri?: CriAttachment;
  body: Partial<ContainerConfig> & { HostConfig?: HostConfig; NetworkingConfig?: ContainerRecord['networkingConfig'] };
}

/** What an attached client gets: output chunks, optional stdin, and the end of the stream. */
export interface AttachSession {
  tty: boolean;
  output: Readable;
  stdin?: Writable;
  close(): void;
}

interface Live {
  /** Attach sessions waiting for the next start (docker run attaches before it starts). */
  pendingAttach: { want: { stdin: boolean; stdout: boolean; stderr: boolean }; resolve: (h: AttachHandle | undefined) => void }[];
  restartTimer?: NodeJS.Timeout;
  backoff: RestartBackoff;
  /** Resolves when the current run ends (log followers stop there). */
  stopped?: Promise<void>;
  markStopped?: () => void;
  /** Serialises lifecycle operations per container. */
  busy: Promise<unknown>;
}

const LIST_FILTERS = ['id', 'name', 'label', 'status', 'ancestor', 'before', 'since', 'exited', 'health', 'network', 'volume', 'publish', 'expose', 'is-task', 'label!'];

function emptyState(): ContainerRecord['state'] {
  return {
    Status: 'created',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: ZERO_TIME,
    FinishedAt: ZERO_TIME,
  };
}

/** Containers: records, lifecycle, attach, logs. HTTP-free: routes call it, it calls the layers below. */
export class ContainerService {
  private readonly records = new Map<string, ContainerRecord>();
  private readonly live = new Map<string, Live>();
  private readonly waiters = new Waiters();
  private readonly log: Logger;

  constructor(private readonly d: ContainerServiceDeps) {
    this.log = d.log;
    for (const r of d.repo.all()) this.records.set(r.id, r);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Look-ups

  /** By full ID, name (with or without "/") or unique ID prefix; dockerd's 404 text otherwise. */
  get(ref: string): ContainerView {
    return this.record(ref);
  }

  find(ref: string): ContainerView | undefined {
    return this.findRecord(ref);
  }

  /** Read-only views of every container. */
  all(): ContainerView[] {
    return [...this.records.values()];
  }

  /** The mutable record: for this service alone, the only writer of container state. */
  private record(ref: string): ContainerRecord {
    const c = this.findRecord(ref);
    if (!c) throw new NotFoundError(`No such container: ${ref}`);
    return c;
  }

  private findRecord(ref: string): ContainerRecord | undefined {
    const byId = this.records.get(ref);
    if (byId) return byId;
    const name = ref.replace(/^\//, '');
    for (const r of this.records.values()) if (r.name === name) return r;
    if (/^[0-9a-f]+$/.test(ref) && ref.length > 0) {
      const matches = [...this.records.values()].filter((r) => r.id.startsWith(ref));
      if (matches.length > 1) throw new InvalidParameterError(`multiple IDs found with provided prefix: ${ref}`);
      return matches[0];
    }
    return undefined;
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    let running = 0;
    let paused = 0;
    for (const r of this.records.values()) {
      if (r.state.Paused) paused++;
      else if (r.state.Running) running++;
    }
    return { total: this.records.size, running, paused, stopped: this.records.size - running - paused };
  }

  private liveOf(id: string): Live {
    let l = this.live.get(id);
    if (!l) {
      l = { pendingAttach: [], backoff: new RestartBackoff(), busy: Promise.resolve() };
      this.live.set(id, l);
    }
    return l;
  }

  /** Runs lifecycle operations of one container one at a time. */
  private serial<T>(id: string, op: () => Promise<T>): Promise<T> {
    const l = this.liveOf(id);
    const next = l.busy.then(op, op);
    l.busy = next.catch(() => undefined);
    return next;
  }

  private dir(id: string): string {
    return containerDir(this.d.dataRoot, id);
  }

  /** Where removed containers' directories wait for their deletion in the background. */
  /** Staged volume subpaths of a running container: outside its directory, so removal never recurses into them. */
  private subpathDir(id: string): string {
    return join(this.d.dataRoot, 'volume-subpaths', id);
  }

  private trashDir(): string {
    return join(this.d.dataRoot, 'containers-trash');
  }

  /**
   * Takes a removed container's directory away at once (a rename into the trash dir) and deletes it in the
   * background: the record is gone and ids are random, so nothing can reuse it. Leftovers of a daemon that
   * stopped mid-deletion are cleared by restore().
   */
  private async discardDir(id: string): Promise<void> {
    const trashed = join(this.trashDir(), `${id}-${randomBytes(4).toString('hex')}`);
    try {
      try {
        renameSync(this.dir(id), trashed);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !existsSync(this.dir(id))) throw e;
        mkdirSync(this.trashDir(), { recursive: true, mode: 0o700 });
        renameSync(this.dir(id), trashed);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.log.debug({ err: errorMessage(e), id }, 'cannot move the container directory to the trash: deleting it in place');
      await rm(this.dir(id), { recursive: true, force: true });
      return;
    }
    void rm(trashed, { recursive: true, force: true }).catch((e: unknown) =>
      this.log.warn({ err: errorMessage(e), id }, 'deleting a removed container directory failed'),
    );
  }

  /** Deletes what removals left in the trash dir when the daemon stopped (in the background). */
  private emptyTrash(): void {
    let names: string[];
    try {
      names = readdirSync(this.trashDir());
    } catch {
      return;
    }
    for (const n of names) {
      void rm(join(this.trashDir(), n), { recursive: true, force: true }).catch((e: unknown) =>
        this.log.warn({ err: errorMessage(e), path: n }, 'emptying the container trash failed'),
      );
    }
  }

  logPath(c: ContainerRecord): string {
    return join(this.dir(c.id), `${c.id}-json.log`);
  }

  private save(c: ContainerRecord): void {
    if (!this.d.repo.update(c)) throw new ConflictError(`Conflict. The container name "/${c.name}" is already in use`);
  }

  private attrs(c: ContainerRecord, extra: Record<string, string> = {}): Record<string, string> {
    return { ...(c.config.Labels ?? {}), image: c.config.Image, name: c.name, ...extra };
  }

  /**
   * CRI pods and containers belong to the kubelet (as containerd's k8s.io namespace keeps them from other clients):
   * the Docker API sees them but does not start, stop, kill, restart or remove them.
   */
  private ownerCheck(c: ContainerRecord, by: 'cri' | undefined): void {
    if (c.cri && by !== 'cri') {
      throw new ConflictError(`container ${c.id} is managed by the Kubernetes CRI (${c.cri.kind === 'sandbox' ? 'pod sandbox' : 'pod container'}): use crictl or the kubelet`);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Create

  async create(req: CreateRequest): Promise<{ Id: string; Warnings: string[] }> {
    const body = req.body ?? {};
    const hc: HostConfig = { ...(body.HostConfig ?? {}) };
    const warnings: string[] = [];
    if (typeof body.Image !== 'string' || body.Image === '') {
      throw new InvalidParameterError('Config cannot be empty in order to create a container');
    }
    const name = req.name ? validateContainerName(req.name) : undefined;
    const image = this.d.images.resolve(body.Image);
    if (req.platform) checkImagePlatform(body.Image, image.config, req.platform);
    // A pod's containers join their sandbox's UTS namespace; the Docker API itself has no container: UTS mode.
    refuseUnsupportedFields(hc, { utsFromContainer: req.cri !== undefined });
    if ((hc.CgroupnsMode ?? '') === '') hc.CgroupnsMode = this.d.cgroups.version === '2' ? 'private' : 'host';

    // Validation with dockerd's messages, before anything is written.
    validateRestartPolicy(hc.RestartPolicy, hc.AutoRemove === true);
    parseSecurityOpts(hc.SecurityOpt);
    containerCapabilities(hc);
    const verified = verifyResources(hc as Parameters<typeof verifyResources>[0], await this.d.cgroups.sysInfo(), { numCpus: os.cpus().length });
    Object.assign(hc, adaptResources(verified.resources));
    warnings.push(...verified.warnings);
    const logConfig = resolveLogConfig(hc.LogConfig, this.d.logConfig);
    hc.Runtime = resolveRuntime(hc.Runtime);
    const networkingConfig = migrateContainerMac(body, hc.NetworkMode, warnings);
    if (hc.OomScoreAdj !== undefined && (hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000)) {
      throw new InvalidParameterError(`Invalid value ${hc.OomScoreAdj}, range for oom score adj is [-1000, 1000]`);
    }
    for (const u of hc.Ulimits ?? []) {
      if (u.Soft > u.Hard) throw new InvalidParameterError(`ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
    }

    const id = randomBytes(32).toString('hex');
    const config = mergeImageConfig({ ...body, Image: body.Image }, image.config.config, id);
    const { path, args } = commandOf(config);
    const created = nowNano();
    const record: ContainerRecord = {
      id,
      name: name ?? generateContainerName(),
      created: rfc3339Nano(created),
      imageId: image.id,
      path,
      args,
      config,
      hostConfig: {
        NetworkMode: 'bridge',
        RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
        ...hc,
        LogConfig: logConfig,
        ...(hc.NetworkMode === undefined || hc.NetworkMode === '' || hc.NetworkMode === 'default' ? { NetworkMode: 'bridge' } : {}),
        // Config.NetworkDisabled (docker-py network_disabled=True): no network at all, as network mode none.
        ...(body.NetworkDisabled === true ? { NetworkMode: 'none' } : {}),
      },
      networkingConfig,
      state: emptyState(),
      restartCount: 0,
      mounts: [],
      networkSettings: null,
      chainId: image.chainId,
      hasBeenStarted: false,
      manuallyStopped: false,
      driver: this.d.layers.driver,
      ...(req.cri ? { cri: req.cri } : {}),
    };

    // The name is reserved atomically by the UNIQUE column; generated names retry.
    for (let attempt = 0; ; attempt++) {
      if (this.d.repo.insert(record, created)) break;
      if (name !== undefined) {
        const holder = this.findRecord(name);
        throw new ConflictError(
          `Conflict. The container name "/${name}" is already in use by container "${holder?.id ?? ''}". You have to remove (or rename) that container to be able to reuse that name.`,
        );
      }
      if (attempt > 20) throw new BerthError('could not generate a unique container name');
      record.name = generateContainerName(attempt);
    }
    this.records.set(id, record);

    try {
      // The container holds its image's layers: `rmi -f` of the image must not delete them under it.
      if (record.chainId) this.d.layers.hold(id, record.chainId);
      await this.prepareDirectory(record);
      const resolved = await resolveContainerMounts(this.d.volumes, {
        containerId: id,
        binds: hc.Binds ?? null,
        mounts: (hc.Mounts ?? null) as never,
        volumesFrom: hc.VolumesFrom ?? null,
        tmpfs: hc.Tmpfs ?? null,
        volumes: config.Volumes,
        ...(hc.VolumeDriver ? { volumeDriver: hc.VolumeDriver } : {}),
        lookupContainer: (ref) => {
          const other = this.findRecord(ref);
          return other ? { id: other.id, mounts: other.mounts } : undefined;
        },
        openRootfs: () => this.d.views.imageRootfs(record),
        log: this.log,
      });
      record.mounts = resolved.mounts;
      record.networkSettings = this.d.network.stoppedSettings(this.endpointsOf(record), record.hostConfig.NetworkMode ?? 'bridge') as unknown as Record<string, unknown>;
      this.save(record);
    } catch (e) {
      this.records.delete(id);
      this.d.repo.delete(id);
      this.d.layers.release(id);
      await rm(this.dir(id), { recursive: true, force: true });
      throw e;
    }
    this.d.events.publish('container', 'create', id, this.attrs(record));
    return { Id: id, Warnings: warnings };
  }

  private endpointsOf(c: ContainerRecord): Record<string, EndpointRequest> {
    const out: Record<string, EndpointRequest> = {};
    const mode = c.hostConfig.NetworkMode ?? 'bridge';
    for (const [key, ep] of Object.entries(c.networkingConfig.EndpointsConfig ?? {})) {
      // The CLI keys the endpoint of the container's own network "default".
      const net = key === 'default' ? mode : key;
      if (mode === 'none' || mode === 'host' || mode.startsWith('container:')) continue;
      const e = ep as { Aliases?: string[] | null; IPAMConfig?: { IPv4Address?: string } | null; MacAddress?: string; Links?: string[] | null; DriverOpts?: Record<string, string> | null };
      out[net] = {
        ...(e.Aliases ? { aliases: e.Aliases } : {}),
        ...(e.IPAMConfig?.IPv4Address ? { ipv4Address: e.IPAMConfig.IPv4Address } : {}),
        ...(e.MacAddress ? { macAddress: e.MacAddress } : {}),
        ...(e.Links ? { links: e.Links } : {}),
        ...(e.DriverOpts ? { driverOpts: e.DriverOpts } : {}),
      };
    }
    return out;
  }

  /** The container directory: RW layer, the init layer with mount-point placeholders, log. */
  private async prepareDirectory(c: ContainerRecord): Promise<void> {
    const dir = this.dir(c.id);
    // Private (as dockerd's): other users must never reach upper/, where container root can plant setuid files.
    await mkdir(dir, { recursive: true, mode: CONTAINER_DIR_MODE });
    await mkdir(join(dir, 'upper'), { mode: 0o755 });
    await mkdir(join(dir, 'work'), { recursive: true, mode: 0o700 });
    // Docker's init layer: placeholders so the bind targets exist without showing up in `docker diff`.
    const init = join(dir, 'init');
    for (const d of ['dev/pts', 'dev/shm', 'proc', 'sys', 'etc']) await mkdir(join(init, d), { recursive: true, mode: 0o755 });
    for (const f of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf', '.dockerenv', 'dev/console']) {
      await writeFile(join(init, f), '', { mode: 0o755 });
    }
    await symlink('/proc/mounts', join(init, 'etc/mtab')).catch(() => undefined);
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
    const l = this.liveOf(c.id);
    if (l.restartTimer) {
      clearTimeout(l.restartTimer);
      delete l.restartTimer;
    }
    c.manuallyStopped = false;
    try {
      await this.launch(c);
    } catch (e) {
      for (const p of l.pendingAttach.splice(0)) p.resolve(undefined);
      // launch() undid what it had set up: nothing to release.
      await this.finishRun(c, { kind: 'failed-start', exitCode: e instanceof ContainerStartError ? e.exitCode : 128, error: errorMessage(e) });
      throw e;
    }
    return 'started';
  }

  /** Everything start needs, in order: mounts, network, spec, shim; undone on failure. */
  private async launch(c: ContainerRecord): Promise<void> {
    const dir = this.dir(c.id);
    const hc = c.hostConfig;
    const lowerDirs = [join(dir, 'init'), ...(c.chainId ? this.d.layers.lowerDirs(c.chainId) : [])];
    const cleanups: (() => Promise<void>)[] = [];
    const t0 = performance.now();
    const marks: Record<string, number> = {};
    const mark = (k: string): void => {
      marks[k] = Math.round((performance.now() - t0) * 10) / 10;
    };
    try {
      const userMounts = await prepareContainerMounts(this.d.volumes, c.id, c.mounts, hc.Tmpfs ?? null, this.subpathDir(c.id));
      cleanups.push(() => releaseContainerMounts(this.d.volumes, c.id, c.mounts, this.log, this.subpathDir(c.id)));

      // independent of the network sandbox: resolved while it is being set up
      const userP = resolveUser([join(dir, 'upper'), ...lowerDirs], c.config.User ?? '', (hc.GroupAdd ?? []) as string[]);
      const resourcesP = hostConfigToLinuxResources(hc as Parameters<typeof hostConfigToLinuxResources>[0]);
      const devicesP = buildDeviceConfig({
        Privileged: hc.Privileged === true,
        Devices: hc.Devices ?? null,
        DeviceCgroupRules: hc.DeviceCgroupRules ?? null,
      });
      for (const p of [userP, resourcesP, devicesP] as Promise<unknown>[]) p.catch(() => undefined); // awaited below
      const namespacePaths: Parameters<typeof buildSpec>[0]['namespacePaths'] = {};
      const mode = hc.NetworkMode ?? 'bridge';
      const sandbox = await this.d.network.createSandbox(c.id, {
        name: c.name,
        mode,
        hostname: c.config.Hostname,
        ...(c.config.Domainname ? { domainname: c.config.Domainname } : {}),
        endpoints: this.endpointsOf(c),
        portBindings: (hc.PortBindings ?? {}) as never,
        publishAll: hc.PublishAllPorts === true,
        exposedPorts: Object.keys(c.config.ExposedPorts ?? {}),
        dns: hc.Dns ?? [],
        dnsSearch: hc.DnsSearch ?? [],
        dnsOptions: hc.DnsOptions ?? [],
        extraHosts: hc.ExtraHosts ?? [],
        links: hc.Links ?? [],
        filesDir: dir,
      });
      cleanups.push(() => this.d.network.releaseSandbox(c.id));
      mark('network');
      namespacePaths.network = sandbox.netnsPath ?? 'host';
      for (const [key, ns] of [['PidMode', 'pid'], ['IpcMode', 'ipc'], ['UTSMode', 'uts']] as const) {
        const v = String(hc[key] ?? '');
        if (v === 'host') namespacePaths[ns] = 'host';
        else if (v.startsWith('container:')) {
          const other = this.record(v.slice('container:'.length));
          if (!other.state.Running) throw new ConflictError(`cannot join ${ns} namespace of a non running container: ${other.id}`);
          namespacePaths[ns] = `/proc/${other.state.Pid}/ns/${ns}`;
        }
      }

      const user = await userP;
      const resources = await resourcesP;
      const devices = await devicesP;
      const spec = buildSpec({
        id: c.id,
        // Legacy links' variables come first: the container's own Env overrides them (dockerd's order).
        config: sandbox.linkEnv && sandbox.linkEnv.length > 0 ? { ...c.config, Env: withLinkEnv(sandbox.linkEnv, c.config.Env ?? []) } : c.config,
        hostConfig: hc,
        user,
        etcFiles: { hosts: sandbox.hostsPath, resolvConf: sandbox.resolvConfPath, hostname: sandbox.hostnamePath },
        userMounts: userMounts as never,
        namespacePaths,
        resources,
        devices: devices.devices,
        deviceRules: devices.rules,
        cgroupsPath: cgroupPathOf(c),
        cgroupV2: this.d.cgroups.version === '2',
        initPath: this.d.initPath,
      });
      mark('spec');
      const limits = logLimits(hc.LogConfig ?? { Type: 'json-file', Config: {} });
      const rootfs =
        this.d.layers.driver === 'vfs'
          ? { type: 'bind' as const, path: await this.vfsRootfs(c) }
          : { type: 'overlay' as const, lowerDirs, upperDir: join(dir, 'upper'), workDir: join(dir, 'work') };
      await this.d.executor.create(c.id, {
        bundleDir: dir,
        spec,
        rootfs,
        ...(c.cri?.logPath
          ? { logPath: c.cri.logPath, logFormat: 'cri' as const }
          : limits.enabled
            ? {
                logPath: this.logPath(c),
                logOpts: {
                  maxSize: limits.maxSize,
                  maxFile: limits.maxFile,
                  compress: limits.compress,
                  attrs: logAttributes(hc.LogConfig ?? { Type: 'json-file', Config: {} }, {
                    id: c.id,
                    name: c.name,
                    imageId: c.imageId,
                    imageName: c.config.Image,
                    labels: c.config.Labels ?? {},
                    env: c.config.Env ?? [],
                  }),
                },
              }
            : {}),
        tty: c.config.Tty,
        openStdin: c.config.OpenStdin,
        stdinOnce: c.config.StdinOnce,
        ...(hc.ConsoleSize && hc.ConsoleSize[0] > 0 ? { consoleSize: { height: hc.ConsoleSize[0], width: hc.ConsoleSize[1] } } : {}),
      });
      cleanups.push(() => this.d.executor.delete(c.id));
      mark('create');

      // Attach sessions that were waiting for this start get the stream before the process runs.
      const l = this.liveOf(c.id);
      for (const p of l.pendingAttach.splice(0)) {
        p.resolve(await this.d.executor.attach(c.id, p.want));
      }
      let markStopped: () => void = () => undefined;
      l.stopped = new Promise<void>((resolve) => {
        markStopped = resolve;
      });
      l.markStopped = markStopped;

      mark('attach');
      const { pid } = await this.d.executor.start(c.id);
      mark('exec');
      c.hasBeenStarted = true;
      c.networkSettings = sandbox.settings as unknown as Record<string, unknown>;
      c.state = {
        ...c.state,
        Status: 'running',
        Running: true,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: pid,
        ExitCode: 0,
        Error: '',
        StartedAt: rfc3339Nano(nowNano()),
      };
      this.save(c);
      this.d.events.publish('container', 'start', c.id, this.attrs(c));
      this.watchExit(c);
      mark('done');
      this.log.debug({ id: c.id, ms: marks }, 'launch timings');
    } catch (e) {
      for (const undo of cleanups.reverse()) {
        await undo().catch((err: unknown) => this.log.warn({ err: errorMessage(err), id: c.id }, 'undo after failed start'));
      }
      throw e;
    }
  }

  /** vfs: the container's root is a full private copy of the image. */
  private async vfsRootfs(c: ContainerRecord): Promise<string> {
    const target = join(this.dir(c.id), 'fs');
    if (!existsSync(target)) {
      const src = c.chainId ? this.d.layers.lowerDirs(c.chainId)[0] : undefined;
      if (src) await cp(src, target, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
      else await mkdir(target, { recursive: true });
    }
    return target;
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
    const t0 = performance.now();
    const marks: Record<string, number> = {};
    const mark = (k: string): void => {
      marks[k] = Math.round((performance.now() - t0) * 10) / 10;
    };
    const ran = end.kind !== 'failed-start';
    const startedAt = Date.parse(c.state.StartedAt);
    let oom = false;
    if (ran) {
      oom = await this.oomKilled(c);
      mark('oom');
      try {
        await this.d.executor.delete(c.id);
      } catch (e) {
        this.log.warn({ err: errorMessage(e), id: c.id }, 'removing the shim after exit failed');
      }
      mark('shim');
      await this.d.network.releaseSandbox(c.id).catch((e: unknown) => this.log.warn({ err: errorMessage(e), id: c.id }, 'releasing the network failed'));
      mark('network');
      await releaseContainerMounts(this.d.volumes, c.id, c.mounts, this.log, this.subpathDir(c.id));
      mark('mounts');
      this.log.debug({ id: c.id, ms: marks }, 'exit timings');
      c.state = {
        ...c.state,
        Status: 'exited',
        Running: false,
        Paused: false,
        Restarting: false,
        OOMKilled: oom,
        Pid: 0,
        ExitCode: end.exitCode,
        Error: end.error ?? '',
        FinishedAt: end.finishedAt || rfc3339Nano(nowNano()),
      };
      c.networkSettings = this.d.network.stoppedSettings(this.endpointsOf(c), c.hostConfig.NetworkMode ?? 'bridge') as unknown as Record<string, unknown>;
    } else {
      c.state = { ...c.state, Status: c.hasBeenStarted ? 'exited' : 'created', Running: false, Pid: 0, ExitCode: end.exitCode, Error: end.error ?? '' };
    }
    if (oom) this.d.events.publish('container', 'oom', c.id, this.attrs(c));
    this.d.events.publish('container', 'die', c.id, this.attrs(c, { exitCode: String(end.exitCode) }));
    const l = this.liveOf(c.id);
    if (ran) l.markStopped?.();
    const exited: WaitResult = { StatusCode: end.exitCode, Error: ran ? null : { Message: end.error ?? '' } };

    const delay = end.kind === 'exited' ? l.backoff.decide(c.hostConfig.RestartPolicy, end.exitCode, c.restartCount, c.manuallyStopped, Date.now() - startedAt) : undefined;
    if (delay !== undefined && !c.hostConfig.AutoRemove) {
      c.state.Status = 'restarting';
      c.state.Restarting = true;
      this.save(c);
      this.waiters.exited(c.id, exited);
      l.restartTimer = setTimeout(() => {
        delete l.restartTimer;
        void this.serial(c.id, async () => {
          if (!this.records.has(c.id) || c.state.Status !== 'restarting') return;
          c.restartCount++;
          try {
            await this.launch(c);
            this.d.events.publish('container', 'restart', c.id, this.attrs(c));
          } catch (e) {
            this.log.warn({ err: errorMessage(e), id: c.id }, 'restart failed');
            c.state = { ...c.state, Status: 'exited', Restarting: false, Error: errorMessage(e) };
            this.save(c);
          }
        });
      }, delay);
      return;
    }
    this.save(c);
    this.waiters.exited(c.id, exited);
    if (end.kind === 'removed') return;
    if (c.hostConfig.AutoRemove) {
      await this.removeLocked(c, { force: true, removeVolumes: true }).catch((e: unknown) =>
        this.log.warn({ err: errorMessage(e), id: c.id }, 'auto-remove failed'),
      );
    }
  }

  private async oomKilled(c: ContainerRecord): Promise<boolean> {
    try {
      return (await this.d.cgroups.open(cgroupPathOf(c)).oomKillCount()) > 0;
    } catch {
      return false;
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
    const l = this.liveOf(c.id);
    if (l.restartTimer) {
      clearTimeout(l.restartTimer);
      delete l.restartTimer;
      c.manuallyStopped = true;
      c.state = { ...c.state, Status: 'exited', Restarting: false };
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
    const l = this.liveOf(c.id);
    const stopped = l.stopped ?? Promise.resolve();
    const sigName = opts.signal || c.config.StopSignal || 'SIGTERM';
    const sig = signalNumber(sigName);
    const timeout = opts.timeout ?? c.config.StopTimeout ?? 10;
    if (c.state.Paused) await this.unpauseCgroup(c).catch(() => undefined);
    if (sig !== 9) {
      await this.signal(c, sig).catch(() => undefined);
      if (timeout < 0) {
        await stopped;
        return;
      }
      const done = await Promise.race([stopped.then(() => true), sleep(timeout * 1000).then(() => false)]);
      if (done) return;
    }
    await this.signal(c, 9).catch(() => undefined);
    await Promise.race([stopped, sleep(30_000)]);
  }

  private async signal(c: ContainerRecord, sig: number): Promise<void> {
    this.d.events.publish('container', 'kill', c.id, this.attrs(c, { signal: String(sig) }));
    await this.d.executor.kill(c.id, sig, { all: sig === 9 });
  }

  async kill(ref: string, signal?: string): Promise<void> {
    const c = this.record(ref);
    this.ownerCheck(c, undefined);
    if (!c.state.Running) throw new ConflictError(`Cannot kill container: ${ref}: Container ${c.id} is not running`);
    const sig = signalNumber(signal || 'SIGKILL');
    // dockerd marks a killed container as manually stopped: its restart policy does not bring it back.
    if (sig === 9 || sig === 15 || sig === signalNumber(c.config.StopSignal || 'SIGTERM')) {
      c.manuallyStopped = true;
      this.save(c);
    }
    const stopped = this.liveOf(c.id).stopped;
    await this.signal(c, sig);
    // As dockerd's Kill: a SIGKILL returns once the container is seen stopped (bounded), so an inspect right after
    // the kill shows it exited with 137 (docker-py KillTest.test_kill).
    if (sig === 9 && stopped) await Promise.race([stopped, sleep(10_000)]);
  }

  async restart(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    const c = this.record(ref);
    this.ownerCheck(c, undefined);
    if (c.state.Running) await this.stopRunning(c, opts);
    await this.serial(c.id, () => this.startLocked(c));
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
    if (!opts.force) {
      // dockerd's cleanupContainer: a paused, running or restarting container needs force (or a stop first).
      if (c.state.Paused) {
        throw new ConflictError(
          `You cannot remove a paused container ${c.id}. Unpause and then stop the container before attempting removal or force remove`,
        );
      }
      const state = c.state.Running ? 'running' : c.state.Restarting || c.state.Status === 'restarting' ? 'restarting' : undefined;
      if (state) {
        throw new ConflictError(`You cannot remove a ${state} container ${c.id}. Stop the container before attempting removal or force remove`);
      }
    }
    // Like dockerd's rm, the answer comes once the network namespace and links are gone too (the network
    // service tears them down in the background; AutoRemove does not wait for that).
    return this.serial(c.id, () => this.removeLocked(c, opts)).then(() => this.d.network.settled());
  }

  private async removeLocked(c: ContainerRecord, opts: { force?: boolean; removeVolumes?: boolean }): Promise<void> {
    if (!this.records.has(c.id)) return;
    const l = this.liveOf(c.id);
    if (l.restartTimer) clearTimeout(l.restartTimer);
    if (c.state.Running) {
      c.manuallyStopped = true;
      c.hostConfig = { ...c.hostConfig, AutoRemove: false };
      await this.d.executor.kill(c.id, 9, { all: true }).catch(() => undefined);
      // The exit handler runs in this container's serial queue, after us: finish its work here.
      const st = await Promise.race([this.d.executor.waitExit(c.id), sleep(15_000).then(() => undefined)]);
      await this.finishRun(c, { kind: 'removed', exitCode: st?.exitCode ?? 137, error: st?.error ?? '', finishedAt: st?.finishedAt });
    } else {
      // A container that exited: its executor entry (if a restart policy kept it) is gone already.
      await this.d.executor.delete(c.id).catch(() => undefined);
    }
    c.state = { ...c.state, Status: 'removing' };
    const anonymous = c.mounts.filter((m) => m.Anonymous && m.Name).map((m) => m.Name as string);
    this.records.delete(c.id);
    this.d.repo.delete(c.id);
    this.live.delete(c.id);
    await this.discardDir(c.id);
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
  // Attach and logs

  /**
   * Attach: live output (and stdin) of the current or next run. When the container is not running,
   * the session waits for the next start (docker run / start -a attach first).
   */
  async attach(ref: string, want: { stdin: boolean; stdout: boolean; stderr: boolean }): Promise<{ c: ContainerRecord; handle: Promise<AttachHandle | undefined> }> {
    const c = this.record(ref);
    const wantStdin = want.stdin && c.config.OpenStdin;
    const w = { ...want, stdin: wantStdin };
    this.d.events.publish('container', 'attach', c.id, this.attrs(c));
    if (c.state.Running) return { c, handle: this.d.executor.attach(c.id, w) };
    const l = this.liveOf(c.id);
    return {
      c,
      handle: new Promise((resolve) => l.pendingAttach.push({ want: w, resolve })),
    };
  }

  async resize(ref: string, height: number, width: number): Promise<void> {
    const c = this.record(ref);
    if (!c.state.Running) throw new ConflictError(`Container ${c.id} is not running`);
    // Without a TTY there is nothing to resize: containerd answers success, so dockerd does (dockerode resize()).
    if (c.config.Tty !== true) return;
    await this.d.executor.resize(c.id, height, width);
  }

  /** The json-file log as Docker's logs endpoint serves it, in batches of entries (one per chunk read). */
  logs(
    ref: string,
    o: { stdout: boolean; stderr: boolean; since?: string; until?: string; tail?: string; follow: boolean; signal: AbortSignal },
  ): { c: ContainerRecord; batches: AsyncGenerator<LogEntry[]> } {
    const c = this.record(ref);
    const limits = logLimits(c.hostConfig.LogConfig ?? { Type: 'json-file', Config: {} });
    if (!limits.enabled) throw new NotImplementedError('configured logging driver does not support reading');
    if (!o.stdout && !o.stderr) throw new InvalidParameterError('Bad parameters: you must choose at least one stream');
    let tail: number | undefined;
    if (o.tail !== undefined && o.tail !== '' && o.tail !== 'all') {
      if (!/^-?\d+$/.test(o.tail)) throw new InvalidParameterError(`invalid value for tail: ${o.tail}`);
      const n = Number(o.tail);
      tail = n < 0 ? undefined : n;
    }
    const since = o.since && o.since !== '0' ? parseTimestampParam('since', o.since) : undefined;
    const until = o.until && o.until !== '0' ? parseTimestampParam('until', o.until) : undefined;
    const l = this.liveOf(c.id);
    const follow = o.follow && (c.state.Running || c.state.Status === 'restarting');
    // a CRI container logs in the kubelet's file, in the CRI format (the reader takes both)
    const batches = readLogBatches(c.cri?.logPath || this.logPath(c), {
      stdout: o.stdout,
      stderr: o.stderr,
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
      ...(tail !== undefined ? { tail } : {}),
      follow,
      ...(l.stopped ? { stopped: l.stopped } : {}),
      signal: o.signal,
      maxFile: limits.maxFile,
    });
    return { c, batches };
  }

  // ---------------------------------------------------------------------------------------------------------
  // List and inspect

  list(o: { all: boolean; limit?: number; size: boolean; filters?: string }): Record<string, unknown>[] {
    const f = Filters.parse(o.filters, LIST_FILTERS);
    let list = [...this.records.values()].sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
    const all = o.all || (o.limit !== undefined && o.limit > 0) || f.has('status') || f.has('exited');
    const beforeC = f.has('before') ? this.record(f.get('before')[0] ?? '') : undefined;
    const sinceC = f.has('since') ? this.record(f.get('since')[0] ?? '') : undefined;
    list = list.filter((c) => {
      if (!all && !c.state.Running) return false;
      if (!f.matchesAny('id', [c.id]) && !f.get('id').some((p) => c.id.startsWith(p))) return false;
      if (f.has('name') && !f.get('name').some((n) => new RegExp(n.replace(/^\//, '')).test(c.name))) return false;
      if (!f.matchesLabels(c.config.Labels)) return false;
      if (f.has('label!') && f.get('label!').some((t) => labelTermHolds(c.config.Labels ?? {}, t))) return false;
      if (!f.matches('status', c.state.Status)) return false;
      if (f.has('exited') && (c.state.Running || !f.get('exited').includes(String(c.state.ExitCode)))) return false;
      if (f.has('health') && !f.get('health').includes(c.state.Health?.Status ?? 'none')) return false;
      if (f.has('ancestor') && !f.get('ancestor').some((a) => this.isAncestor(c, a))) return false;
      if (beforeC && c.created >= beforeC.created) return false;
      if (sinceC && c.created <= sinceC.created) return false;
      if (f.has('volume') && !f.get('volume').some((v) => c.mounts.some((m) => m.Name === v || m.Destination === v || m.Source === v))) return false;
      if (f.has('network')) {
        const nets = Object.keys((c.networkSettings as { Networks?: object } | null)?.Networks ?? {});
        if (!f.get('network').some((n) => nets.includes(n) || (c.hostConfig.NetworkMode ?? '') === n)) return false;
      }
      if (f.has('expose') && !f.get('expose').some((p) => Object.keys(c.config.ExposedPorts ?? {}).includes(p.includes('/') ? p : `${p}/tcp`))) return false;
      if (f.has('publish')) {
        const ports = Object.entries((c.networkSettings as { Ports?: Record<string, { HostPort: string }[] | null> } | null)?.Ports ?? {});
        const ok = f.get('publish').some((p) => {
          const [port, proto = 'tcp'] = p.split('/');
          return ports.some(([k, v]) => (v ?? []).some((b) => b.HostPort === port) && k.endsWith(`/${proto}`)) ||
            ports.some(([k, v]) => k === `${port}/${proto}` && v !== null);
        });
        if (!ok) return false;
      }
      return true;
    });
    if (o.limit !== undefined && o.limit > 0) list = list.slice(0, o.limit);
    return list.map((c) => listEntry(c, { ports: this.d.network.portList(c.id) }));
  }

  private isAncestor(c: ContainerRecord, ref: string): boolean {
    const img = this.d.images.tryResolve(ref);
    return img !== undefined && img.id === c.imageId;
  }

  inspect(ref: string, _size = false): Record<string, unknown> {
    const c = this.record(ref);
    const dir = this.dir(c.id);
    const lower = c.chainId ? this.d.layers.lowerDirs(c.chainId) : [];
    const ns = c.state.Running ? (this.d.network.settings(c.id) ?? c.networkSettings) : c.networkSettings;
    return inspectEntry(
      c,
      {
        resolvConfPath: join(dir, 'resolv.conf'),
        hostnamePath: join(dir, 'hostname'),
        hostsPath: join(dir, 'hosts'),
        logPath: this.logPath(c),
        graphDriver: {
          Name: c.driver,
          Data:
            c.driver === 'overlay2'
              ? { LowerDir: [join(dir, 'init'), ...lower].join(':'), MergedDir: join(dir, 'rootfs'), UpperDir: join(dir, 'upper'), WorkDir: join(dir, 'work') }
              : null,
        },
      },
      ns,
    );
  }

  /** network connect on a stopped container: remembered in its NetworkingConfig, applied at start. */
  attachStopped(id: string, network: string, cfg: EndpointRequest): void {
    const c = this.record(id);
    const eps = { ...(c.networkingConfig.EndpointsConfig ?? {}) };
    for (const key of Object.keys(eps)) if (key === network || (key === 'default' && c.hostConfig.NetworkMode === network)) delete eps[key];
    eps[network] = {
      Aliases: cfg.aliases ?? null,
      IPAMConfig: cfg.ipv4Address ? { IPv4Address: cfg.ipv4Address } : null,
      Links: cfg.links ?? null,
      ...(cfg.macAddress ? { MacAddress: cfg.macAddress } : {}),
      ...(cfg.driverOpts ? { DriverOpts: cfg.driverOpts } : {}),
    };
    c.networkingConfig = { ...c.networkingConfig, EndpointsConfig: eps };
    c.networkSettings = this.d.network.stoppedSettings(this.endpointsOf(c), c.hostConfig.NetworkMode ?? 'bridge') as unknown as Record<string, unknown>;
    this.save(c);
  }

  /**
   * docker rm --link /<parent>/<alias>: the parent forgets the legacy link (HostConfig.Links, and its hosts
   * entry while it runs). dockerd's errors: the default link name of a container cannot be removed, an
   * unknown parent or link is "No such container".
   */
  async removeLink(parentRef: string, alias: string): Promise<void> {
    const c = this.findRecord(parentRef);
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
    const eps = { ...(c.networkingConfig.EndpointsConfig ?? {}) };
    const primary = c.hostConfig.NetworkMode === network;
    let found = primary;
    for (const key of Object.keys(eps)) {
      if (key === network || (key === 'default' && primary)) {
        delete eps[key];
        found = true;
      }
    }
    if (!found) return false;
    c.networkingConfig = { ...c.networkingConfig, EndpointsConfig: eps };
    this.save(c);
    return true;
  }

  /** For other services: which containers use an image / a volume. */
  usersOfImage(imageId: string): { id: string; running: boolean }[] {
    return [...this.records.values()].filter((c) => c.imageId === imageId).map((c) => ({ id: c.id, running: c.state.Running }));
  }

  usersOfVolume(name: string): string[] {
    return [...this.records.values()].filter((c) => c.mounts.some((m) => m.Name === name)).map((c) => c.id);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Daemon start and stop

  /**
   * After a daemon restart: re-adopt live shims, record exits that happened while berthd was down,
   * and re-apply restart policies (always / unless-stopped start again, as dockerd does).
   */
  async restore(): Promise<string[]> {
    this.emptyTrash();
    const liveIds: string[] = [];
    // Each container is adopted on its own (reads of its bundle, a round trip to its shim): several at a time, so
    // a start with many running containers is not a sum of round trips.
    const running = [...this.records.values()].filter((c) => c.state.Running || c.state.Status === 'restarting');
    await eachLimited(running, RESTORE_CONCURRENCY, async (c) => {
      const dir = this.dir(c.id);
      let outcome: Awaited<ReturnType<Executor['adopt']>>;
      try {
        outcome = await this.d.executor.adopt(c.id, dir);
      } catch (e) {
        this.log.warn({ err: errorMessage(e), id: c.id }, 'adopting container failed');
        outcome = { exitCode: 255, signal: 0, oomKilled: null, finishedAt: rfc3339Nano(nowNano()), pid: 0, error: errorMessage(e) };
      }
      if (outcome === 'running' || outcome === 'created') {
        liveIds.push(c.id);
        await restoreContainerMounts(this.d.volumes, c.id, c.mounts).catch(() => undefined);
        const l = this.liveOf(c.id);
        let markStopped: () => void = () => undefined;
        l.stopped = new Promise<void>((resolve) => {
          markStopped = resolve;
        });
        l.markStopped = markStopped;
        this.watchExit(c);
        this.log.info({ id: c.id }, 'container re-adopted');
      } else {
        const st = outcome;
        // onExit needs the state "running" to act; it then applies the restart policy.
        c.state.Running = true;
        await this.serial(c.id, () => this.onExit(c, st));
      }
    });
    return liveIds;
  }

  /** Containers with restart policy always / unless-stopped that were not running when berthd stopped. */
  async startRestartPolicyContainers(): Promise<void> {
    const due = [...this.records.values()].filter((c) => {
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
    for (const l of this.live.values()) if (l.restartTimer) clearTimeout(l.restartTimer);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Intent methods: every change another module makes to a container goes through one of these.

  /** docker pause: freezes the cgroup of a running container. */
  pause(ref: string): Promise<void> {
    const c = this.record(ref);
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
  unpause(ref: string): Promise<void> {
    const c = this.record(ref);
    return this.serial(c.id, async () => {
      if (!c.state.Paused) throw new ConflictError(`Container ${c.id} is not paused`);
      await this.unpauseCgroup(c);
      this.d.events.publish('container', 'unpause', c.id, this.attrs(c));
    });
  }

  /** A new name (validated by the caller); a ConflictError when another container holds it. */
  rename(ref: string, name: string): Promise<{ oldName: string }> {
    const c = this.record(ref);
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
  update<T>(ref: string, decide: (c: ContainerView) => Promise<{ hostConfig: HostConfig; result: T }>): Promise<T> {
    const c = this.record(ref);
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
    const c = this.records.get(id);
    if (!c || (opts.whenRunning && !c.state.Running)) return false;
    if (health) c.state = { ...c.state, Health: health };
    else if (c.state.Health) {
      const { Health: _h, ...rest } = c.state;
      void _h;
      c.state = rest;
    } else return true;
    this.save(c);
    return true;
  }

  private setPaused(c: ContainerRecord, paused: boolean): void {
    c.state = { ...c.state, Paused: paused, Status: paused ? 'paused' : 'running' };
    this.save(c);
  }

  /** The CRI layer's data on a CRI container or sandbox (pod IPs once its network is up). */
  setCriData(id: string, data: Record<string, unknown>): void {
    const c = this.records.get(id);
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The runtimes a container may name: Berth's shim runs every container, reported as dockerd's default "runc". */
const RUNTIMES = new Set(['runc', 'io.containerd.runc.v2']);

export function resolveRuntime(requested: string | undefined): string {
  if (requested === undefined || requested === '') return 'runc';
  if (!RUNTIMES.has(requested)) throw new InvalidParameterError(`unknown or invalid runtime name: ${requested}`);
  return requested;
}

/**
 * The container-wide Config.MacAddress (deprecated in API 1.44, still what docker-py sends) applies to the endpoint
 * of the container's own network, as dockerd migrates it; an endpoint MAC that disagrees is refused.
 */
export function migrateContainerMac(
  body: { MacAddress?: string; NetworkingConfig?: ContainerRecord['networkingConfig'] },
  networkMode: string | undefined,
  warnings: string[],
): ContainerRecord['networkingConfig'] {
  const nc = body.NetworkingConfig ?? {};
  const mac = body.MacAddress;
  if (!mac) return nc;
  const mode = networkMode === undefined || networkMode === '' || networkMode === 'default' ? 'bridge' : networkMode;
  if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
    throw new InvalidParameterError('conflicting options: mac-address and the network mode');
  }
  const endpoints = { ...(nc.EndpointsConfig ?? {}) };
  const key = endpoints[mode] !== undefined ? mode : endpoints.default !== undefined ? 'default' : mode;
  const ep = endpoints[key] ?? {};
  const epMac = typeof ep.MacAddress === 'string' ? ep.MacAddress : '';
  if (epMac !== '' && epMac.toLowerCase() !== mac.toLowerCase()) {
    throw new InvalidParameterError('the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty');
  }
  endpoints[key] = { ...ep, MacAddress: mac };
  warnings.push('The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig instead.');
  return { ...nc, EndpointsConfig: endpoints };
}

/** Legacy link variables followed by the container's own Env; a name set in both keeps the container's value. */
function withLinkEnv(linkEnv: readonly string[], env: readonly string[]): string[] {
  const own = new Set(env.map((e) => e.split('=')[0]));
  return [...linkEnv.filter((e) => !own.has(e.split('=')[0])), ...env];
}

/**
 * `POST /containers/create?platform=…`: an image built for another platform is "not found" for it, with dockerd's
 * message, so the docker CLI goes on to pull the right one.
 */
export function checkImagePlatform(ref: string, image: { os?: string; architecture?: string; variant?: string }, platform: string): void {
  const want = parsePlatform(platform);
  const host = hostPlatform();
  const actual = normalizePlatform({
    os: image.os || 'linux',
    architecture: image.architecture || host.architecture,
    ...(image.variant ? { variant: image.variant } : {}),
  });
  if (!platformMatches(actual, want)) {
    // containerd's Format drops arm64's default variant (linux/arm64, not linux/arm64/v8).
    const fmt = (p: typeof want): string => formatPlatform(p.architecture === 'arm64' && p.variant === 'v8' ? { os: p.os, architecture: p.architecture } : p);
    throw new NotFoundError(`image with reference ${ref} was found but does not match the specified platform: wanted ${fmt(want)}, actual: ${fmt(actual)}`);
  }
}

const NAMESPACE_MODES: ReadonlyArray<readonly [key: 'IpcMode' | 'PidMode' | 'UTSMode' | 'CgroupnsMode', label: string, modes: readonly string[], container: boolean]> = [
  ['IpcMode', 'IPC mode', ['', 'none', 'private', 'shareable', 'host'], true],
  ['PidMode', 'PID mode', ['', 'host'], true],
  ['UTSMode', 'UTS mode', ['', 'host'], false],
  ['CgroupnsMode', 'cgroup namespace mode', ['', 'host', 'private'], false],
];

/** Go's %v of [][]string: [[gpu] [compute utility]]. */
function goStringLists(v: unknown): string {
  const lists = Array.isArray(v) ? v : [];
  return `[${lists.map((l) => `[${(Array.isArray(l) ? l : []).map(String).join(' ')}]`).join(' ')}]`;
}

/**
 * HostConfig fields Berth cannot honour are refused with dockerd's own messages (what dockerd says when the
 * feature is absent on its host), never accepted and dropped; unknown namespace modes as dockerd's verification.
 */
export function refuseUnsupportedFields(hc: HostConfig, o: { utsFromContainer?: boolean } = {}): void {
  for (const [key, label, modes, container] of NAMESPACE_MODES) {
    const v = hc[key] ?? '';
    const joins = container || (key === 'UTSMode' && o.utsFromContainer === true);
    if (typeof v !== 'string' || !(modes.includes(v) || (joins && /^container:.+/.test(v)))) {
      throw new InvalidParameterError(`invalid ${label}: ${String(v)}`);
    }
  }
  // No device drivers (NVIDIA, CDI) are registered: dockerd's answer when none matches the request.
  const requests = Array.isArray(hc.DeviceRequests) ? (hc.DeviceRequests as { Driver?: string; Capabilities?: unknown }[]) : [];
  for (const r of requests) {
    throw new InvalidParameterError(`could not select device driver "${r.Driver ?? ''}" with capabilities: ${goStringLists(r.Capabilities)}`);
  }
  const isolation = hc.Isolation ?? '';
  if (isolation !== '' && isolation !== 'default') {
    throw new InvalidParameterError(`Invalid isolation: ${JSON.stringify(isolation)} - linux only supports 'default'`);
  }
  // Without user-namespace remapping (Berth has none), "host" is what every container gets.
  const userns = hc.UsernsMode ?? '';
  if (userns !== '' && userns !== 'host') throw new InvalidParameterError(`invalid USER mode: ${String(userns)}`);
  if (typeof hc.Cgroup === 'string' && hc.Cgroup !== '') {
    throw new InvalidParameterError(`sharing another container's cgroup (Cgroup: ${hc.Cgroup}) is not supported by Berth`);
  }
  // Per-container size limits need overlay on xfs with project quotas, which Berth's storage does not set up.
  if (hc.StorageOpt && typeof hc.StorageOpt === 'object' && Object.keys(hc.StorageOpt).length > 0) {
    throw new InvalidParameterError("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
  }
}

/** Containers restored (or started by their restart policy) at once at daemon start. */
const RESTORE_CONCURRENCY = 8;

/** Runs `fn` on every item, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
