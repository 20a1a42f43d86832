// A container's run set up and taken down: launch() prepares its volumes, network sandbox, OCI spec and shim, in
// order, each undone when a later step fails; release() frees them after the run. Mechanism for ContainerService,
// which alone records what a run did (the launch hooks run inside it).

import { chown } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError, errorMessage } from '../errors.js';
import type { ContainerNetwork } from '../network/container-network.js';
import type { CgroupManager } from '../runtime/cgroups/index.js';
import { lostExit, type ContainerRuntime, type ExitStatus } from '../runtime/executor-api.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import type { Logger } from '../util/logger.js';
import type { VolumeService } from '../volumes/volume-service.js';
import { prepareContainerMounts, releaseContainerMounts, resolveContainerMounts, restoreContainerMounts, type ContainerMount } from '../volumes/container-mounts.js';
import type { RootfsReader } from '../volumes/copy-up.js';
import type { ContainerDirs } from './container-dirs.js';
import { buildDeviceConfig } from './devices.js';
import { logAttributes, logLimits } from './log-options.js';
import { endpointsOf } from './endpoint-config.js';
import { cgroupPathOf } from './paths.js';
import { hostConfigToLinuxResources } from './resources.js';
import { buildSpec } from './spec-builder.js';
import type { ContainerRecord, ContainerView } from './types.js';
import { resolveUser } from './user-resolve.js';

export interface LauncherDeps {
  layers: Pick<LayerStore, 'driver' | 'lowerDirs'>;
  volumes: VolumeService;
  network: ContainerNetwork;
  executor: ContainerRuntime;
  cgroups: Pick<CgroupManager, 'version' | 'open'>;
  dirs: ContainerDirs;
  initPath: string;
  log: Logger;
  /** Another container by reference (the target of --pid/--ipc/--uts container:<x>); throws NotFoundError. */
  lookup(ref: string): ContainerView;
  /** Another container by reference, undefined when there is none (--volumes-from). */
  find(ref: string): ContainerView | undefined;
}

/** What the caller does at the two points of a launch; a hook that throws undoes the launch like any failed step. */
export interface LaunchHooks {
  /** The shim is ready, the process not yet started: attach sessions that wait for this start connect here. */
  created(): Promise<void>;
  /** The process runs (record it). */
  started(pid: number): void;
}

export class Launcher {
  constructor(private readonly d: LauncherDeps) {}

  /** Everything start needs, in order: mounts, network, spec, shim; undone on failure. */
  /** `c` is read, never written (ContainerService records what the hooks report). */
  async launch(c: ContainerRecord, hooks: LaunchHooks): Promise<void> {
    const dir = this.d.dirs.dir(c.id);
    const hc = c.hostConfig;
    const lowerDirs = [this.d.dirs.initLayer(c.id), ...(c.chainId ? this.d.layers.lowerDirs(c.chainId) : [])];
    const cleanups: (() => Promise<void>)[] = [];
    const t0 = performance.now();
    const marks: Record<string, number> = {};
    const mark = (k: string): void => {
      marks[k] = Math.round((performance.now() - t0) * 10) / 10;
    };
    try {
      const userMounts = await prepareContainerMounts(this.d.volumes, c.id, c.mounts, hc.Tmpfs ?? null, this.d.dirs.subpathDir(c.id));
      cleanups.push(() => releaseContainerMounts(this.d.volumes, c.id, c.mounts, this.d.log, this.d.dirs.subpathDir(c.id)));

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
        endpoints: endpointsOf(c),
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
      const userns = c.cri?.userns;
      if (userns?.join) {
        const holder = this.d.lookup(userns.join);
        if (!holder.state.Running) throw new ConflictError(`cannot join user namespace of a non running container: ${holder.id}`);
        namespacePaths.user = `/proc/${holder.state.Pid}/ns/user`;
      } else if (userns && sandbox.netnsPath) {
        // a network namespace is owned by the user namespace it is made in: the holder makes its own, which the
        // CRI then puts at the sandbox's path (src/cri/pod-userns.ts); one made on the host could not be configured
        // from inside, nor /sys mounted for it
        delete namespacePaths.network;
      }
      for (const [key, ns] of [['PidMode', 'pid'], ['IpcMode', 'ipc'], ['UTSMode', 'uts']] as const) {
        const v = String(hc[key] ?? '');
        if (v === 'host') namespacePaths[ns] = 'host';
        else if (v.startsWith('container:')) {
          const other = this.d.lookup(v.slice('container:'.length));
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
        // binds the kubelet asked idmapped (CRI Mount mappings): the top mount; a submount of another file system
        // may not support idmapping
        userMounts: (userns?.idmapped?.length
          ? userMounts.map((m) => (m.type === 'bind' && userns.idmapped?.includes(m.destination) ? { ...m, options: [...(m.options ?? []), 'idmap'] } : m))
          : userMounts) as never,
        namespacePaths,
        resources,
        devices: devices.devices,
        deviceRules: devices.rules,
        cgroupsPath: cgroupPathOf(c),
        cgroupV2: this.d.cgroups.version === '2',
        initPath: this.d.initPath,
        ...(userns ? { userns: { uidMappings: [...userns.uidMappings], gidMappings: [...userns.gidMappings] } } : {}),
      });
      mark('spec');
      // the idmapped layers show root's files as the container root's; the upper directory is not idmapped (what
      // the container writes is owned by the mapped ids on the host), so its root belongs to the mapped root
      if (userns && this.d.layers.driver !== 'vfs') await chown(join(dir, 'upper'), hostIdOf(userns.uidMappings, 0), hostIdOf(userns.gidMappings, 0));
      const rootfs =
        this.d.layers.driver === 'vfs'
          ? { type: 'bind' as const, path: await this.d.dirs.vfsRootfs(c.id, c.chainId ? this.d.layers.lowerDirs(c.chainId)[0] : undefined) }
          : { type: 'overlay' as const, lowerDirs, upperDir: join(dir, 'upper'), workDir: join(dir, 'work') };
      await this.d.executor.create(c.id, {
        bundleDir: dir,
        spec,
        rootfs,
        ...this.logOptions(c),
        tty: c.config.Tty,
        openStdin: c.config.OpenStdin,
        stdinOnce: c.config.StdinOnce,
        ...(hc.ConsoleSize && hc.ConsoleSize[0] > 0 ? { consoleSize: { height: hc.ConsoleSize[0], width: hc.ConsoleSize[1] } } : {}),
      });
      cleanups.push(() => this.d.executor.delete(c.id));
      mark('create');

      // Attach sessions that were waiting for this start get the stream before the process runs.
      await hooks.created();
      mark('attach');
      const { pid } = await this.d.executor.start(c.id);
      mark('exec');
      hooks.started(pid);
      mark('done');
      this.d.log.debug({ id: c.id, ms: marks }, 'launch timings');
    } catch (e) {
      for (const undo of cleanups.reverse()) {
        await undo().catch((err: unknown) => this.d.log.warn({ err: errorMessage(err), id: c.id }, 'undo after failed start'));
      }
      throw e;
    }
  }

  /**
   * At create: the container's mounts from its Binds, Mounts, VolumesFrom, Tmpfs and the image's VOLUMEs (volumes
   * created and reserved for it; the image's content copied up from `openRootfs`).
   */
  async resolveMounts(c: ContainerRecord, openRootfs: () => RootfsReader): Promise<ContainerMount[]> {
    const hc = c.hostConfig;
    const resolved = await resolveContainerMounts(this.d.volumes, {
      containerId: c.id,
      binds: hc.Binds ?? null,
      mounts: (hc.Mounts ?? null) as never,
      volumesFrom: hc.VolumesFrom ?? null,
      tmpfs: hc.Tmpfs ?? null,
      volumes: c.config.Volumes,
      ...(hc.VolumeDriver ? { volumeDriver: hc.VolumeDriver } : {}),
      lookupContainer: (ref) => {
        const other = this.d.find(ref);
        return other ? { id: other.id, mounts: other.mounts as ContainerMount[] } : undefined;
      },
      openRootfs,
      log: this.d.log,
    });
    return resolved.mounts;
  }

  /**
   * After a run ended (the mirror of launch): whether the cgroup saw an OOM kill, then the shim and cgroup, the
   * network sandbox and the volume mounts released. Failures are logged: what can be released is.
   */
  async release(c: ContainerRecord): Promise<{ oom: boolean }> {
    const t0 = performance.now();
    const marks: Record<string, number> = {};
    const mark = (k: string): void => {
      marks[k] = Math.round((performance.now() - t0) * 10) / 10;
    };
    const oom = await this.oomKilled(c);
    mark('oom');
    try {
      await this.d.executor.delete(c.id);
    } catch (e) {
      this.d.log.warn({ err: errorMessage(e), id: c.id }, 'removing the shim after exit failed');
    }
    mark('shim');
    await this.d.network.releaseSandbox(c.id).catch((e: unknown) => this.d.log.warn({ err: errorMessage(e), id: c.id }, 'releasing the network failed'));
    mark('network');
    await releaseContainerMounts(this.d.volumes, c.id, c.mounts, this.d.log, this.d.dirs.subpathDir(c.id));
    mark('mounts');
    this.d.log.debug({ id: c.id, ms: marks }, 'exit timings');
    return { oom };
  }

  /**
   * After a daemon restart, a container recorded as running: its shim adopted again ('live', its volume mounts
   * restored too), or how its run ended while berthd was away.
   */
  async adopt(c: ContainerRecord): Promise<'live' | ExitStatus> {
    let outcome: Awaited<ReturnType<ContainerRuntime['adopt']>>;
    try {
      outcome = await this.d.executor.adopt(c.id, this.d.dirs.dir(c.id));
    } catch (e) {
      this.d.log.warn({ err: errorMessage(e), id: c.id }, 'adopting container failed');
      return lostExit(errorMessage(e));
    }
    if (outcome !== 'running' && outcome !== 'created') return outcome;
    await restoreContainerMounts(this.d.volumes, c.id, c.mounts).catch(() => undefined);
    return 'live';
  }

  private async oomKilled(c: ContainerRecord): Promise<boolean> {
    try {
      return (await this.d.cgroups.open(cgroupPathOf(c)).oomKillCount()) > 0;
    } catch {
      return false;
    }
  }

  /** The run's log: the kubelet's file (CRI format) for a CRI container, else json-file with its rotation limits. */
  private logOptions(c: ContainerRecord): { logPath?: string; logFormat?: 'cri'; logOpts?: { maxSize?: number; maxFile?: number; compress?: boolean; attrs?: Record<string, string> } } {
    const hc = c.hostConfig;
    if (c.cri?.logPath) return { logPath: c.cri.logPath, logFormat: 'cri' };
    const limits = logLimits(hc.LogConfig ?? { Type: 'json-file', Config: {} });
    if (!limits.enabled) return {};
    return {
      logPath: this.d.dirs.logPath(c.id),
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
    };
  }
}

/** The host id a container id maps to (the container id itself when no mapping holds it). */
export function hostIdOf(maps: readonly { containerID: number; hostID: number; size: number }[], id: number): number {
  const m = maps.find((x) => id >= x.containerID && id < x.containerID + x.size);
  return m ? m.hostID + (id - m.containerID) : id;
}

/** Legacy link variables followed by the container's own Env; a name set in both keeps the container's value. */
function withLinkEnv(linkEnv: readonly string[], env: readonly string[]): string[] {
  const own = new Set(env.map((e) => e.split('=')[0]));
  return [...linkEnv.filter((e) => !own.has(e.split('=')[0])), ...env];
}
