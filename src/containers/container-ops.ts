// Containers API, part 2: cp (archive), diff, export, commit, top, stats, pause/unpause, update, rename, prune.
// HTTP-free like ContainerService, which it builds on (records, lifecycle lock, persistence).

import { directorySize } from '../util/directory-size.js';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { ConflictError, InvalidParameterError, NotFoundError, errorMessage } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { ContainerConfigJson } from '../images/image-config.js';
import type { ImageService } from '../images/image-service.js';
import type { ContainerNetwork } from '../network/container-network.js';
import type { CgroupManager } from '../runtime/cgroups/index.js';
import type { HostConfigResources } from './resources.js';
import { hostConfigToLinuxResources, mergeResourcesUpdate, verifyResources } from './resources.js';
import { Filters, labelTermHolds } from '../util/filters.js';
import type { Logger } from '../util/logger.js';
import { parseTimestampParam } from '../util/time.js';
import { ArchiveExtractor, ArchiveOps, type PathStat } from './archive.js';
import { containerChanges, type Change } from './changes.js';
import { commitHolder, createCommitImage, writeCommitLayer, type CommitOptions } from './commit.js';
import type { ContainerService } from './container-service.js';
import { ContainerViews, type RootView } from './container-views.js';
import type { ExecService } from './exec-service.js';
import { HealthMonitor } from './health.js';
import { validateContainerName } from './names.js';
import { validateRestartPolicy } from './restart-policy.js';
import { StatsCollector } from './stats.js';
import { top, type TopResult } from './top.js';
import { tarTree } from './tree-tar.js';
import type { ContainerView, HostConfig, RestartPolicy } from './types.js';
import { cgroupPathOf } from './paths.js';
import { resolveUser } from './user-resolve.js';

export interface ContainerOpsDeps {
  dataRoot: string;
  execRoot: string;
  containers: ContainerService;
  execs: ExecService;
  images: ImageService;
  network: ContainerNetwork;
  cgroups: CgroupManager;
  events: EventBus;
  log: Logger;
}

/** How long `commit` (pause=true) may keep a container frozen before it is thawed regardless. */
const MAX_COMMIT_PAUSE_MS = 60_000;

export type UpdateBody = HostConfigResources & { RestartPolicy?: RestartPolicy };

/** The `until` filter value → nanoseconds since the epoch (the one parser every until/since uses). */
export function untilNano(v: string): bigint {
  return parseTimestampParam('until', v);
}

export class ContainerOps {
  readonly views: ContainerViews;
  readonly stats: StatsCollector;
  readonly health: HealthMonitor;
  private readonly log: Logger;

  constructor(private readonly d: ContainerOpsDeps) {
    this.log = d.log;
    this.views = new ContainerViews({ dataRoot: d.dataRoot, execRoot: d.execRoot, layers: d.images.layers, cgroups: d.cgroups, log: d.log });
    this.views.cleanupLeftovers();
    this.stats = new StatsCollector(d.cgroups);
    this.health = new HealthMonitor({ containers: d.containers, execs: d.execs, events: d.events, log: d.log.child({ sub: 'health' }) });
    this.health.resume();
  }

  shutdown(): void {
    this.health.shutdown();
  }

  /** `?size=1` of list and inspect: the writable layer's bytes, and those plus the image's. */
  async sizes(ref: string): Promise<{ SizeRw: number; SizeRootFs: number }> {
    const c = this.d.containers.get(ref);
    const rw = await directorySize(this.views.upperDir(c)).catch(() => 0);
    return { SizeRw: rw, SizeRootFs: rw + (this.d.images.get(c.imageId)?.size ?? 0) };
  }

  private attrs(c: ContainerView, extra: Record<string, string> = {}): Record<string, string> {
    return { ...(c.config.Labels ?? {}), image: c.config.Image, name: c.name, ...extra };
  }

  private cgroup(c: ContainerView): ReturnType<CgroupManager['open']> {
    return this.d.cgroups.open(cgroupPathOf(c));
  }

  // ---------------------------------------------------------------------------------------------------------
  // cp

  /** A read view: the live root of a running container, a read-only mount of a stopped one. */
  private async readView(c: ContainerView): Promise<RootView> {
    return (await this.views.live(c)) ?? this.views.mounted(c, false);
  }

  /** HEAD /containers/{id}/archive */
  async statPath(ref: string, path: string): Promise<PathStat> {
    const c = this.d.containers.get(ref);
    const view = await this.readView(c);
    try {
      const t = ArchiveOps.statPath(view, path, ref);
      t.resolved.close();
      return t.stat;
    } finally {
      view.release();
    }
  }

  /** GET /containers/{id}/archive: the stat (for the header) and the tar stream (releases the view at its end). */
  async getArchive(ref: string, path: string): Promise<{ stat: PathStat; tar: AsyncGenerator<Buffer> }> {
    const c = this.d.containers.get(ref);
    const view = await this.readView(c);
    let target;
    try {
      target = ArchiveOps.statPath(view, path, ref);
    } catch (e) {
      view.release();
      throw e;
    }
    this.d.events.publish('container', 'archive-path', c.id, this.attrs(c));
    const log = this.log;
    const tar = (async function* () {
      try {
        yield* ArchiveOps.tarOf(view, target, (p, why) => log.debug({ id: c.id, path: p, why }, 'cp: entry left out'));
      } finally {
        view.release();
      }
    })();
    return { stat: target.stat, tar };
  }

  /** PUT /containers/{id}/archive */
  async putArchive(ref: string, path: string, body: Readable, o: { noOverwriteDirNonDir: boolean; copyUIDGID: boolean }): Promise<void> {
    const c = this.d.containers.get(ref);
    const mounts = c.mounts.map((m) => ({ destination: m.Destination, rw: m.RW }));
    const readonlyRootfs = c.hostConfig.ReadonlyRootfs === true;
    const run = async (view: RootView): Promise<void> => {
      const dest = ArchiveExtractor.prepare(view, path, ref, { mounts, readonlyRootfs });
      let chown: { uid: number; gid: number } | undefined;
      if (o.copyUIDGID && c.config.User) {
        const dirs = [this.views.upperDir(c), ...this.views.lowerDirs(c)];
        const u = await resolveUser(dirs, c.config.User);
        chown = { uid: u.uid, gid: u.gid };
      }
      await new ArchiveExtractor(view.root, dest, { noOverwriteDirNonDir: o.noOverwriteDirNonDir, mounts, readonlyRootfs, ...(chown ? { chown } : {}) }).extract(body);
      this.d.events.publish('container', 'extract-to-dir', c.id, this.attrs(c));
    };
    const live = await this.views.live(c);
    if (live) {
      try {
        await run(live);
      } finally {
        live.release();
      }
      return;
    }
    // Stopped: a writable mount of its layer, under the lifecycle lock so it cannot start meanwhile.
    await this.d.containers.exclusive(c.id, async () => {
      const again = await this.views.live(c);
      const view = again ?? this.views.mounted(c, true);
      try {
        await run(view);
      } finally {
        view.release();
      }
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // diff, export, commit

  /** GET /containers/{id}/changes: null when nothing changed, as dockerd. */
  changes(ref: string): Change[] | null {
    const c = this.d.containers.get(ref);
    if (c.driver === 'vfs') throw new InvalidParameterError('docker diff is not supported with the vfs storage driver');
    const upper = this.views.upper(c);
    let lower: RootView | undefined;
    try {
      lower = this.views.lower(c);
      const out = containerChanges(upper.rootFd, lower.root.rootFd);
      return out.length === 0 ? null : out;
    } finally {
      upper.close();
      lower?.release();
    }
  }

  /** GET /containers/{id}/export: the root filesystem (without volumes) as a tar stream. */
  export(ref: string): AsyncGenerator<Buffer> {
    const c = this.d.containers.get(ref);
    if (c.driver === 'vfs') throw new InvalidParameterError('docker export is not supported with the vfs storage driver');
    const view = this.views.rootfsOnly(c);
    this.d.events.publish('container', 'export', c.id, this.attrs(c));
    return (async function* () {
      try {
        yield* tarTree(view.root.rootFd, '.', '', '/');
      } finally {
        view.release();
      }
    })();
  }

  /** POST /commit: a new layer from the container's changes and an image on top of its image. */
  async commit(ref: string, o: CommitOptions & { pause: boolean }): Promise<string> {
    const c = this.d.containers.get(ref);
    if (c.driver === 'vfs') throw new InvalidParameterError('docker commit is not supported with the vfs storage driver');
    if (c.state.Status === 'removing' || c.state.Dead) throw new ConflictError(`You cannot commit container ${c.id} which is being removed or is dead`);
    const holder = commitHolder();
    const images = this.d.images;
    try {
      let froze = false;
      let thawTimer: NodeJS.Timeout | undefined;
      const cg = this.cgroup(c);
      if (o.pause && c.state.Running && !c.state.Paused) {
        try {
          await cg.freeze();
          froze = true;
          thawTimer = setTimeout(() => {
            this.log.warn({ id: c.id }, `commit kept the container paused for ${MAX_COMMIT_PAUSE_MS / 1000}s: resuming it`);
            void cg.thaw().catch(() => undefined);
          }, MAX_COMMIT_PAUSE_MS);
        } catch (e) {
          this.log.warn({ err: errorMessage(e), id: c.id }, 'commit: pausing the container failed; committing it running');
        }
      }
      let layer;
      const upper = this.views.upper(c);
      try {
        layer = await writeCommitLayer(images, c, upper, holder);
      } finally {
        upper.close();
        if (thawTimer) clearTimeout(thawTimer);
        if (froze) await cg.thaw().catch((e: unknown) => this.log.error({ err: errorMessage(e), id: c.id }, 'commit: resuming the container failed'));
      }
      const id = createCommitImage(images, c, layer, holder, o);
      const ref2 = o.repo ? `${o.repo}${o.tag ? `:${o.tag}` : ''}` : '';
      this.d.events.publish('container', 'commit', c.id, this.attrs(c, { comment: o.comment ?? '', imageID: id, imageRef: ref2, author: o.author ?? '' }));
      return id;
    } finally {
      images.layers.release(holder);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // top, stats

  async top(ref: string, psArgs: string | undefined): Promise<TopResult> {
    const c = this.d.containers.get(ref);
    if (!c.state.Running) throw new ConflictError(`Container ${c.id} is not running`);
    if (c.state.Restarting) throw new ConflictError(`Container ${c.id} is restarting, wait until the container is running`);
    const pids = await this.cgroup(c).pids();
    return top(psArgs, pids);
  }

  statsOnce(ref: string, oneShot: boolean): Promise<Record<string, unknown>> {
    const c = this.d.containers.get(ref);
    return this.stats.once(c, oneShot);
  }

  statsStream(ref: string, signal: AbortSignal): AsyncGenerator<Record<string, unknown>> {
    const c = this.d.containers.get(ref);
    const containers = this.d.containers;
    return this.stats.stream(c, () => containers.find(c.id) !== undefined && c.state.Running, signal);
  }

  // ---------------------------------------------------------------------------------------------------------
  // pause, update, rename, prune

  pause(ref: string): Promise<void> {
    return this.d.containers.pause(ref);
  }

  unpause(ref: string): Promise<void> {
    return this.d.containers.unpause(ref);
  }

  /** POST /containers/{id}/update: resources applied live to the cgroup, restart policy for the next exit. */
  async update(ref: string, body: UpdateBody, by?: 'cri'): Promise<{ Warnings: string[] | null }> {
    return this.d.containers.update(ref, async (c) => {
      const prefix = `Cannot update container ${c.id}: `;
      const wrap = (e: unknown): never => {
        if (e instanceof ConflictError) throw new ConflictError(prefix + e.message);
        if (e instanceof InvalidParameterError) throw new InvalidParameterError(prefix + e.message);
        throw e;
      };
      if (c.state.Status === 'removing' || c.state.Dead) throw new ConflictError(`${prefix}container is marked for removal and cannot be "update"`);
      const rp = body.RestartPolicy;
      const changePolicy = rp !== undefined && rp !== null && rp.Name !== '';
      if (changePolicy) {
        if (c.hostConfig.AutoRemove && rp.Name !== 'no') {
          throw new InvalidParameterError(`${prefix}Restart policy cannot be updated because AutoRemove is enabled for the container`);
        }
        try {
          validateRestartPolicy(rp, false);
        } catch (e) {
          wrap(e);
        }
      }
      const { RestartPolicy: _rp, ...resources } = body;
      void _rp;
      let merged: HostConfigResources;
      let warnings: string[] = [];
      try {
        merged = mergeResourcesUpdate(c.hostConfig as HostConfigResources, resources);
        const v = verifyResources(merged, await this.d.cgroups.sysInfo(), { update: true, numCpus: os.cpus().length });
        merged = v.resources;
        warnings = v.warnings;
      } catch (e) {
        return wrap(e);
      }
      if (c.state.Running) {
        const linux = await hostConfigToLinuxResources(merged, { update: true });
        try {
          warnings.push(...(await this.cgroup(c).update(linux)));
        } catch (e) {
          throw new InvalidParameterError(`${prefix}${errorMessage(e)}`);
        }
      }
      const { Devices: _devices, ...updated } = merged;
      void _devices;
      const hostConfig = {
        ...(c.hostConfig as HostConfig),
        ...updated,
        ...(changePolicy ? { RestartPolicy: { Name: rp.Name, MaximumRetryCount: rp.MaximumRetryCount ?? 0 } } : {}),
      };
      return { hostConfig, result: { Warnings: warnings.length > 0 ? warnings : null } };
    }, by);
  }

  /** POST /containers/{id}/rename?name= */
  async rename(ref: string, newName: string | undefined): Promise<void> {
    const c = this.d.containers.get(ref);
    if (!newName || newName === '/') throw new InvalidParameterError('Neither old nor new names may be empty');
    const name = validateContainerName(newName);
    const oldName = c.name;
    if (name === oldName) throw new InvalidParameterError('Renaming a container with the same name as its current name');
    const holder = this.d.containers.find(name);
    const taken = (): ConflictError =>
      new ConflictError(
        `Error when allocating new name: Conflict. The container name "/${name}" is already in use by container "${holder?.id ?? this.d.containers.find(name)?.id ?? ''}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    if (holder && holder.id !== c.id && holder.name === name) throw taken();
    try {
      await this.d.containers.rename(c.id, name);
    } catch (e) {
      if (e instanceof ConflictError && !c.cri) throw taken(); // a CRI container's refusal passes as it is
      throw e;
    }
    try {
      this.d.network.setContainerName(c.id, name);
    } catch (e) {
      this.log.warn({ err: errorMessage(e), id: c.id }, 'rename: updating the network name failed');
    }
    this.d.events.publish('container', 'rename', c.id, this.attrs(c, { oldName: `/${oldName}` }));
  }

  /** POST /containers/prune: every stopped container matching the filters. */
  async prune(filters: string | undefined): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }> {
    const f = Filters.parse(filters, ['until', 'label', 'label!']);
    let until: bigint | undefined;
    if (f.has('until')) {
      const vals = f.get('until');
      if (vals.length > 1) throw new InvalidParameterError('more than one until filter specified');
      until = untilNano(vals[0] ?? '');
    }
    const deleted: string[] = [];
    let space = 0;
    for (const c of this.d.containers.all()) {
      if (c.state.Running || c.state.Paused || c.state.Restarting || c.state.Status === 'restarting' || c.state.Status === 'removing') continue;
      if (c.cri) continue; // the kubelet's: it removes them through the CRI
      if (until !== undefined && BigInt(Date.parse(c.created)) * 1_000_000n >= until) continue;
      if (!f.matchesLabels(c.config.Labels)) continue;
      if (f.has('label!') && f.get('label!').some((t) => labelTermHolds(c.config.Labels ?? {}, t))) continue;
      const size = await directorySize(this.views.upperDir(c)).catch(() => 0);
      try {
        await this.d.containers.remove(c.id, {});
        this.d.execs.forgetContainer(c.id);
        deleted.push(c.id);
        space += size;
      } catch (e) {
        this.log.warn({ err: errorMessage(e), id: c.id }, 'prune: removing the container failed');
      }
    }
    this.d.events.publish('container', 'prune', '', { reclaimed: String(space) });
    return { ContainersDeleted: deleted.length > 0 ? deleted : null, SpaceReclaimed: space };
  }

  /** POST /commit's `container` parameter must name an existing container (404 otherwise). */
  requireContainer(ref: string | undefined): ContainerView {
    if (!ref) throw new NotFoundError('No such container: ');
    return this.d.containers.get(ref);
  }
}

export type { ContainerConfigJson };
