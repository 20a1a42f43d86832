import { randomBytes } from 'node:crypto';
import type { Logger } from '../util/logger.js';
import type { EventBus } from '../events/event-bus.js';
import type { VolumeRecord, VolumeRepo } from '../metadata/volume-repo.js';
import { Filters } from '../util/filters.js';
import { nowNano } from '../util/time.js';
import { BerthError, ConflictError, InvalidParameterError, NotFoundError, errorMessage } from '../errors.js';
import { directorySize } from '../util/directory-size.js';
import { LOCAL_DRIVER, LocalDriver, needsMount, validateVolumeName, validateVolumeOptions } from './local-driver.js';

/** dockerd 23+ marks volumes created without a name with this label; prune and `rm -v` look for it. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

export const VOLUME_LIST_FILTERS = ['dangling', 'driver', 'label', 'name'] as const;
export const VOLUME_PRUNE_FILTERS = ['label', 'label!', 'all'] as const;

/** The Volume object of the Engine API. */
export interface ApiVolume {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local';
  UsageData?: { Size: number; RefCount: number };
}

export interface VolumeCreateRequest {
  /** Empty or absent: an anonymous volume with a generated 64-hex name. */
  name?: string;
  driver?: string;
  driverOpts?: Record<string, string> | null;
  labels?: Record<string, string> | null;
}

export interface VolumePruneReport {
  VolumesDeleted: string[];
  SpaceReclaimed: number;
}

/** Returns the IDs of the containers that reference a volume (registered by the containers service). */
export type VolumeUsageChecker = (volumeName: string) => string[];

/** Go's time.RFC3339 in the daemon's local zone, as dockerd prints volume CreatedAt. */
export function rfc3339Local(ms: number): string {
  const d = new Date(ms);
  const offMin = -d.getTimezoneOffset();
  const local = new Date(ms + offMin * 60_000);
  const base = local.toISOString().slice(0, 19);
  if (offMin === 0) return `${base}Z`;
  const sign = offMin > 0 ? '+' : '-';
  const abs = Math.abs(offMin);
  return `${base}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** Go regexp.MatchString semantics for the `name` filter: exact, else an unanchored regular expression. */
function nameMatches(f: Filters, name: string): boolean {
  if (!f.has('name')) return true;
  return f.get('name').some((term) => {
    if (term === name) return true;
    try {
      return new RegExp(term).test(name);
    } catch {
      return false;
    }
  });
}

/** dockerd's MatchKVList: every `k` / `k=v` term must hold; no labels never match. */
function kvListMatches(f: Filters, key: string, labels: Record<string, string> | null): boolean {
  const terms = f.get(key);
  if (terms.length === 0) return true;
  if (!labels || Object.keys(labels).length === 0) return false;
  return terms.every((t) => {
    const eq = t.indexOf('=');
    const k = eq < 0 ? t : t.slice(0, eq);
    if (!Object.prototype.hasOwnProperty.call(labels, k)) return false;
    return eq < 0 || labels[k] === t.slice(eq + 1);
  });
}

/** Filters' boolean values the way dockerd's GetBoolOrDefault reads them. */
function filterBool(f: Filters, key: string): boolean | undefined {
  if (!f.has(key)) return undefined;
  const vals = f.get(key).map((v) => v.toLowerCase());
  const t = vals.includes('1') || vals.includes('true');
  const fa = vals.includes('0') || vals.includes('false');
  if (t === fa) throw new InvalidParameterError(`invalid filter '${key}=${f.get(key).join(',')}'`);
  return t;
}

/**
 * Volumes: metadata in SQLite, data under `<data-root>/volumes` through the local driver.
 * Usage (which containers reference a volume) comes from a checker the containers service registers.
 */
export class VolumeService {
  private usageChecker: VolumeUsageChecker = () => [];
  private readonly locks = new Map<string, Promise<unknown>>();
  private pruneRunning = false;
  private readonly reservations = new Map<string, Set<string>>();

  constructor(
    private readonly repo: VolumeRepo,
    readonly driver: LocalDriver,
    private readonly events: EventBus,
    private readonly log: Logger,
  ) {}

  /**
   * Prepares the volumes directory and reconciles it with the records: a volume directory without a
   * record (a crash between mkdir and insert, or data carried over from another engine) is adopted as
   * dockerd's local driver would list it; a record whose directory is gone is dropped.
   */
  async init(): Promise<void> {
    await this.driver.init();
    const onDisk = new Map((await this.driver.scan()).map((e) => [e.name, e]));
    for (const rec of this.repo.list()) {
      if (onDisk.has(rec.name)) continue;
      this.log.warn({ volume: rec.name }, 'volume directory is missing; dropping its record');
      this.repo.delete(rec.name);
    }
    for (const e of onDisk.values()) {
      if (this.repo.get(e.name)) continue;
      this.log.info({ volume: e.name }, 'adopting volume directory without a record');
      this.repo.insert({ name: e.name, driver: LOCAL_DRIVER, labels: null, options: null, createdNano: e.createdNano, anonymous: false });
    }
  }

  setUsageChecker(checker: VolumeUsageChecker): void {
    this.usageChecker = checker;
  }

  /** IDs of the containers referencing the volume (registered users plus pending reservations). */
  usedBy(name: string): string[] {
    const ids = this.usageChecker(name);
    const pending = this.reservations.get(name);
    if (!pending || pending.size === 0) return ids;
    return [...new Set([...ids, ...pending])];
  }

  /**
   * Holds a volume for a container that is being created (dockerd's create reference): until released,
   * prune and remove treat it as in use, closing the gap before the container record exists.
   * Returns the release function; a reservation also lapses after `ttlMs` as a safety net.
   */
  reserve(name: string, containerId: string, ttlMs = 10 * 60_000): () => void {
    let set = this.reservations.get(name);
    if (!set) {
      set = new Set();
      this.reservations.set(name, set);
    }
    set.add(containerId);
    let done = false;
    const release = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const cur = this.reservations.get(name);
      cur?.delete(containerId);
      if (cur && cur.size === 0) this.reservations.delete(name);
    };
    const timer = setTimeout(release, ttlMs);
    timer.unref();
    return release;
  }

  /** Serialises operations on one volume name. */
  private async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    }
  }

  toApi(v: VolumeRecord): ApiVolume {
    return {
      CreatedAt: rfc3339Local(Number(v.createdNano / 1_000_000n)),
      Driver: v.driver,
      Labels: v.labels,
      Mountpoint: this.driver.dataPath(v.name),
      Name: v.name,
      Options: v.options,
      Scope: 'local',
    };
  }

  record(name: string): VolumeRecord | undefined {
    return this.repo.get(name);
  }

  /**
   * Creates a volume, or returns the existing one of that name (labels and options of the first
   * creation stay, as in dockerd). `created` says whether it is new.
   */
  async create(req: VolumeCreateRequest): Promise<{ volume: ApiVolume; created: boolean; record: VolumeRecord }> {
    let name = req.name ?? '';
    let labels = req.labels === undefined ? null : req.labels;
    const anonymous = name === '';
    if (anonymous) {
      name = randomBytes(32).toString('hex');
      labels = { ...(labels ?? {}), [ANONYMOUS_LABEL]: '' };
    }
    return this.withLock(name, async () => {
      try {
        validateVolumeName(name);
        const existing = this.repo.get(name);
        const driverName = req.driver ?? '';
        if (driverName !== '' && driverName !== LOCAL_DRIVER) {
          throw new NotFoundError(`error looking up volume plugin ${driverName}: plugin "${driverName}" not found`);
        }
        if (existing) return { volume: this.toApi(existing), created: false, record: existing };
        const options = req.driverOpts === undefined ? null : req.driverOpts;
        validateVolumeOptions(options);
        await this.driver.create(name);
        const rec: VolumeRecord = { name, driver: LOCAL_DRIVER, labels, options, createdNano: nowNano(), anonymous };
        try {
          this.repo.insert(rec);
        } catch (e) {
          await this.driver.remove(name, null).catch(() => undefined);
          throw e;
        }
        this.log.debug({ volume: name, anonymous }, 'volume created');
        this.events.publish('volume', 'create', name, { driver: rec.driver });
        return { volume: this.toApi(rec), created: true, record: rec };
      } catch (e) {
        throw prefixError(e, `create ${name}`);
      }
    });
  }

  get(name: string): ApiVolume {
    const rec = this.repo.get(name);
    if (!rec) throw new NotFoundError(`get ${name}: no such volume`);
    return this.toApi(rec);
  }

  list(filters: Filters = Filters.empty): { Volumes: ApiVolume[]; Warnings: null } {
    for (const k of filters.keys()) {
      if (!(VOLUME_LIST_FILTERS as readonly string[]).includes(k)) throw new InvalidParameterError(`invalid filter '${k}'`);
    }
    const dangling = filterBool(filters, 'dangling');
    const out = this.repo
      .list()
      .filter((v) => filters.matchesAny('driver', [v.driver]))
      .filter((v) => nameMatches(filters, v.name))
      .filter((v) => kvListMatches(filters, 'label', v.labels))
      .filter((v) => dangling === undefined || (this.usedBy(v.name).length === 0) === dangling)
      .map((v) => this.toApi(v));
    return { Volumes: out, Warnings: null };
  }

  /** Removes a volume; in use → 409 even with force (nothing a container references is deleted). */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.withLock(name, async () => {
      const rec = this.repo.get(name);
      if (!rec) {
        if (opts.force) return;
        throw new NotFoundError(`get ${name}: no such volume`);
      }
      const refs = this.usedBy(name);
      if (refs.length > 0) throw new ConflictError(`remove ${name}: volume is in use - [${refs.join(', ')}]`);
      try {
        await this.driver.remove(name, rec.options);
      } catch (e) {
        if (!opts.force) throw prefixError(e, `remove ${name}`);
        this.log.warn({ volume: name, err: errorMessage(e) }, 'removing volume data failed; purging its record (force)');
      }
      this.repo.delete(name);
      this.events.publish('volume', 'destroy', name, { driver: rec.driver });
    });
  }

  /**
   * Removes unused local volumes without mount options: anonymous ones only, unless `all=true`
   * (API < 1.42 callers get all=true added by the route).
   */
  async prune(filters: Filters = Filters.empty): Promise<VolumePruneReport> {
    for (const k of filters.keys()) {
      if (!(VOLUME_PRUNE_FILTERS as readonly string[]).includes(k)) throw new InvalidParameterError(`invalid filter '${k}'`);
    }
    if (this.pruneRunning) throw new ConflictError('a prune operation is already running');
    this.pruneRunning = true;
    try {
      const all = filters.get('all');
      if (all.length > 1) throw new InvalidParameterError(`invalid filter 'all=[${all.join(' ')}]': only one value is expected`);
      let pruneAll = false;
      if (all.length === 1) {
        const v = (all[0] ?? '').toLowerCase();
        if (['1', 't', 'true'].includes(v)) pruneAll = true;
        else if (!['0', 'f', 'false'].includes(v)) {
          throw new InvalidParameterError(`invalid filter 'all': strconv.ParseBool: parsing ${JSON.stringify(all[0])}: invalid syntax`);
        }
      }
      const report: VolumePruneReport = { VolumesDeleted: [], SpaceReclaimed: 0 };
      for (const v of this.repo.list()) {
        if (v.driver !== LOCAL_DRIVER || (v.options && Object.keys(v.options).length > 0)) continue;
        if (!pruneAll && !(v.labels && ANONYMOUS_LABEL in v.labels)) continue;
        if (!kvListMatches(filters, 'label', v.labels)) continue;
        if (filters.has('label!') && kvListMatches(filters, 'label!', v.labels)) continue;
        if (this.usedBy(v.name).length > 0) continue;
        let size = 0;
        try {
          size = await directorySize(this.driver.dataPath(v.name));
        } catch (e) {
          this.log.warn({ volume: v.name, err: errorMessage(e) }, 'could not determine size of volume');
        }
        try {
          await this.remove(v.name);
        } catch (e) {
          this.log.warn({ volume: v.name, err: errorMessage(e) }, 'could not remove volume');
          continue;
        }
        report.SpaceReclaimed += size;
        report.VolumesDeleted.push(v.name);
      }
      this.events.publish('volume', 'prune', '', { reclaimed: String(report.SpaceReclaimed) });
      return report;
    } finally {
      this.pruneRunning = false;
    }
  }

  /** Local volumes without mount options, with UsageData (for GET /system/df). */
  async diskUsage(): Promise<ApiVolume[]> {
    const out: ApiVolume[] = [];
    for (const v of this.repo.list()) {
      if (v.driver !== LOCAL_DRIVER || (v.options && Object.keys(v.options).length > 0)) continue;
      let size = -1;
      try {
        size = await directorySize(this.driver.dataPath(v.name));
      } catch (e) {
        this.log.warn({ volume: v.name, err: errorMessage(e) }, 'failed to determine size of volume');
      }
      out.push({ ...this.toApi(v), UsageData: { Size: size, RefCount: this.usedBy(v.name).length } });
    }
    return out;
  }

  /**
   * Makes a volume ready for a container that starts: mounts its filesystem when its options ask for
   * one (refcounted per container), publishes `mount`. Returns the host path to bind.
   */
  async mount(
    name: string,
    containerId: string,
    attrs: { destination: string; rw: boolean; propagation?: string },
  ): Promise<string> {
    const rec = this.repo.get(name);
    if (!rec) throw new NotFoundError(`get ${name}: no such volume`);
    let path: string;
    try {
      path = await this.driver.mount(name, rec.options, containerId);
    } catch (e) {
      throw prefixError(e, `error while mounting volume '${this.driver.dataPath(name)}'`, true);
    }
    this.events.publish('volume', 'mount', name, {
      driver: rec.driver,
      container: containerId,
      destination: attrs.destination,
      'read/write': String(attrs.rw),
      propagation: attrs.propagation ?? '',
    });
    return path;
  }

  /** The container stopped: drops its mount reference (the last one unmounts), publishes `unmount`. */
  async unmount(name: string, containerId: string): Promise<void> {
    const rec = this.repo.get(name);
    if (!rec) return;
    await this.driver.unmount(name, rec.options, containerId);
    this.events.publish('volume', 'unmount', name, { driver: rec.driver, container: containerId });
  }

  /**
   * After a daemon restart, a running container's volumes are still mounted: re-take the container's
   * mount reference without mounting again or publishing events (dockerd's LiveRestoreVolume).
   */
  async restoreMount(name: string, containerId: string): Promise<void> {
    const rec = this.repo.get(name);
    if (!rec) return;
    await this.driver.mount(name, rec.options, containerId);
  }

  /** Whether a volume's options make the daemon mount something on its `_data`. */
  needsMount(name: string): boolean {
    return needsMount(this.repo.get(name)?.options);
  }

  /**
   * `docker rm -v` / `--rm`: removes those of `names` that are anonymous and no longer used by any
   * container other than `exceptContainerId`; volumes still in use are kept without error (as dockerd).
   * Returns the names removed.
   */
  async removeAnonymousVolumes(names: readonly string[], exceptContainerId?: string): Promise<string[]> {
    const removed: string[] = [];
    for (const name of new Set(names)) {
      const rec = this.repo.get(name);
      if (!rec || !rec.anonymous) continue;
      const users = this.usedBy(name).filter((id) => id !== exceptContainerId);
      if (users.length > 0) continue;
      await this.withLock(name, async () => {
        if (!this.repo.get(name)) return;
        await this.driver.remove(name, rec.options);
        this.repo.delete(name);
        this.events.publish('volume', 'destroy', name, { driver: rec.driver });
        removed.push(name);
      }).catch((e: unknown) => this.log.warn({ volume: name, err: errorMessage(e) }, 'could not remove anonymous volume'));
    }
    return removed;
  }
}

/** Keeps the error's class (and so its status) while adding dockerd's `<op> <name>: ` prefix. */
function prefixError(e: unknown, prefix: string, always = false): Error {
  if (e instanceof BerthError) {
    const Ctor = e.constructor as new (m: string, o?: { cause?: unknown }) => BerthError;
    if (!always && e.message.startsWith(`${prefix}:`)) return e;
    return new Ctor(`${prefix}: ${e.message}`, { cause: e });
  }
  return new BerthError(`${prefix}: ${errorMessage(e)}`, { cause: e });
}
