// The read-only half of the container service: look-ups, ps, inspect, logs, a container's network settings and
// which containers use an image or a volume. It writes nothing; ContainerService (container-service.ts) extends it
// with every write of container state. Also the service's dependencies, each by the part of it the service uses.

import type { Readable, Writable } from 'node:stream';
import type { EventBus } from '../events/event-bus.js';
import type { ImageService } from '../images/image-service.js';
import type { ContainerRepo } from '../metadata/container-repo.js';
import type { ContainerNetwork } from '../network/container-network.js';
import type { NetworkSettings } from '../network/types.js';
import type { CgroupManager } from '../runtime/cgroups/index.js';
import type { ContainerRuntime } from '../runtime/executor-api.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import type { Logger } from '../util/logger.js';
import type { VolumeService } from '../volumes/volume-service.js';
import { ContainerDirs } from './container-dirs.js';
import { ContainerIndex } from './container-index.js';
import { inspectContainer, listContainers, readContainerLogs, type ListOptions, type LogsOptions, type QueryDeps } from './container-queries.js';
import type { ContainerViews } from './container-views.js';
import { endpointsOf } from './endpoint-config.js';
import { LiveRuns } from './live-runs.js';
import type { LogEntry } from './log-reader.js';
import { isRunning } from './state.js';
import type { ContainerView, StoredContainer } from './types.js';

/** What the container service depends on: each collaborator by the part of it the service uses (tests fake them). */
export interface ContainerServiceDeps {
  dataRoot: string;
  /** The containers table (SQLite): records are written through to it and read from it at start. */
  repo: Pick<ContainerRepo<StoredContainer>, 'insert' | 'update' | 'delete' | 'all'>;
  images: Pick<ImageService, 'resolve' | 'tryResolve'>;
  layers: Pick<LayerStore, 'driver' | 'hold' | 'release' | 'lowerDirs'>;
  volumes: VolumeService;
  network: ContainerNetwork;
  executor: ContainerRuntime;
  cgroups: Pick<CgroupManager, 'version' | 'sysInfo' | 'open'>;
  /** Read-only views of container filesystems (the image's root for copy-up at create). */
  views: Pick<ContainerViews, 'imageRootfs'>;
  events: Pick<EventBus, 'publish'>;
  log: Logger;
  /** daemon.json log-driver and log-opts (only what daemon.json sets: they show in each container's LogConfig). */
  logConfig: { type: string; opts: Record<string, string> };
  initPath: string;
}

/** What an attached client gets: output chunks, optional stdin, and the end of the stream. */
export interface AttachSession {
  tty: boolean;
  output: Readable;
  stdin?: Writable;
  close(): void;
}

/** Reads of container state; the records, the live runs and the bundle directories it reads are written by the subclass. */
export abstract class ContainerReads {
  protected readonly records = new ContainerIndex();
  protected readonly runs = new LiveRuns();
  protected readonly dirs: ContainerDirs;

  protected constructor(protected readonly d: ContainerServiceDeps) {
    this.dirs = new ContainerDirs(d.dataRoot, d.log);
  }

  /** By full ID, name (with or without "/") or unique ID prefix; dockerd's 404 text otherwise. */
  get(ref: string): ContainerView {
    return this.records.require(ref);
  }

  find(ref: string): ContainerView | undefined {
    return this.records.find(ref);
  }

  /** Read-only views of every container. */
  all(): ContainerView[] {
    return this.records.all();
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    return this.records.counts();
  }

  list(o: ListOptions): Record<string, unknown>[] {
    return listContainers(this.all(), o, (ref) => this.get(ref), this.queryDeps());
  }

  inspect(ref: string, _size = false): Record<string, unknown> {
    return inspectContainer(this.get(ref), this.queryDeps());
  }

  private queryDeps(): QueryDeps {
    return { dirs: this.dirs, images: this.d.images, layers: this.d.layers, network: this.d.network, settingsOf: (c) => this.networkSettings(c) };
  }

  /**
   * A container's NetworkSettings, from their one owner, the network service: the live sandbox's while the container
   * runs, else its configured networks with empty addresses.
   */
  networkSettings(c: ContainerView): NetworkSettings {
    return (isRunning(c.state) ? this.d.network.settings(c.id) : undefined) ?? this.d.network.stoppedSettings(endpointsOf(c), c.hostConfig.NetworkMode ?? 'bridge');
  }

  /** For other services: which containers use an image / a volume. */
  usersOfImage(imageId: string): { id: string; running: boolean }[] {
    return this.records.all().filter((c) => c.imageId === imageId).map((c) => ({ id: c.id, running: c.state.Running }));
  }

  usersOfVolume(name: string): string[] {
    return this.records.all().filter((c) => c.mounts.some((m) => m.Name === name)).map((c) => c.id);
  }

  /** The json-file log as Docker's logs endpoint serves it, in batches of entries (one per chunk read). */
  logs(ref: string, o: LogsOptions): { c: ContainerView; batches: AsyncGenerator<LogEntry[]> } {
    const c = this.records.require(ref);
    return { c, batches: readContainerLogs(c, o, this.dirs, this.runs.stopped(c.id)) };
  }
}
