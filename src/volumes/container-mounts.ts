import { closeSync, constants as C, existsSync, fstatSync, mkdirSync, openSync, readdirSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { release as osRelease } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfinedRoot, O_PATH } from '../containers/confined-root.js';
import { MNT_DETACH, MS_BIND, nativeAddon } from '../native.js';
import type { Logger } from '../util/logger.js';
import { InvalidParameterError, NotFoundError, errorMessage } from '../errors.js';
import type { VolumeService } from './volume-service.js';
import { copyUpIfEmpty, type RootfsReader } from './copy-up.js';
import {
  type ApiMount,
  type MountType,
  type ParsedMount,
  cleanContainerPath,
  convertTmpfsOptions,
  parseBind,
  parseMountSpec,
  parseVolumesFrom,
  tmpfsOciOptions,
  volumesFromReadWrite,
} from './mount-parser.js';

/** One entry of inspect's `Mounts`, exactly the fields dockerd shows. */
export interface MountPoint {
  Type: MountType;
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/**
 * A container's mount as the containers service stores it: the inspect fields plus what start needs.
 * Pass the stored list back to prepareContainerMounts / releaseContainerMounts / inspectMounts.
 */
export interface ContainerMount extends MountPoint {
  /** The request this mount came from (a Mount object; `-v` strings are converted). */
  Spec: ApiMount;
  /** `-v` bind: create a missing host directory at start (as dockerd). */
  CreateSource?: boolean;
  /** Anonymous volume (removed by `rm -v` / `--rm` unless another container still uses it). */
  Anonymous?: boolean;
  /** tmpfs: mount data (`size=64m,mode=1777`). */
  TmpfsData?: string;
}

/** An OCI runtime-spec mount. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface ResolveMountsInput {
  containerId: string;
  /** HostConfig.Binds (`-v`). */
  binds?: readonly string[] | null;
  /** HostConfig.Mounts (`--mount`). */
  mounts?: readonly ApiMount[] | null;
  /** HostConfig.VolumesFrom (`ctr[:ro|rw]`). */
  volumesFrom?: readonly string[] | null;
  /** HostConfig.Tmpfs (`--tmpfs`): only for duplicate detection and OCI entries, not in `Mounts`. */
  tmpfs?: Readonly<Record<string, string>> | null;
  /** Config.Volumes: the image's VOLUME entries merged with the container config's (`-v /path`). */
  volumes?: Readonly<Record<string, unknown>> | null;
  /** HostConfig.VolumeDriver. */
  volumeDriver?: string;
  /** Resolves a `--volumes-from` reference (name or ID) to that container's ID and stored mounts. */
  lookupContainer?: (ref: string) => { id: string; mounts: readonly ContainerMount[] } | undefined;
  /**
   * Opens the image's (or container's) root filesystem, read-only and confined, for copy-up into new empty
   * volumes and the "volume over a file" check; opened at most once per call and released before it returns.
   * Omit to skip both.
   */
  openRootfs?: () => RootfsReader;
  log?: Logger;
  /**
   * Keep the volumes reserved for `containerId` after this returns, until `release()` is called.
   * Default: reserved only while resolving (enough when the caller stores `mounts` on the container
   * record before its next await, so the usage checker reports them from then on).
   */
  holdReservations?: boolean;
}

export interface ResolvedMounts {
  /** Store this on the container; inspect shows inspectMounts(mounts). */
  mounts: ContainerMount[];
  /** Runtime-spec entries for these mounts and HostConfig.Tmpfs, sorted so parents mount first. */
  oci: OciMount[];
  /** Volumes this call created (named on first use and anonymous). */
  createdVolumes: string[];
  /** Names of the anonymous volumes among `mounts`. */
  anonymousVolumes: string[];
  /** With `holdReservations`: ends the reservation (call once the container record exists, or on failure). */
  release: () => void;
}

/**
 * dockerd's validateBindDaemonRoot: a bind whose source is inside the data root (or contains it) must
 * not hold private copies of the daemon's mounts: no propagation given → rslave; anything but
 * rslave/rshared → refused. Returns the propagation to use.
 */
export function daemonRootPropagation(dataRoot: string, p: ParsedMount): string {
  if (p.type !== 'bind') return p.propagation;
  const src = p.spec.Source ?? '';
  if (!src.startsWith(dataRoot) && !dataRoot.startsWith(src)) return p.propagation;
  const given = p.spec.BindOptions?.Propagation ?? '';
  if (given === '') return 'rslave';
  if (given === 'rslave' || given === 'rshared') return given;
  throw new InvalidParameterError(
    `invalid mount config: must use either propagation mode "rslave" or "rshared" when mount source is within the daemon root, daemon root: ${JSON.stringify(dataRoot)}, bind mount source: ${JSON.stringify(src)}, propagation: ${JSON.stringify(given)}`,
  );
}

function duplicate(dest: string): InvalidParameterError {
  return new InvalidParameterError(`Duplicate mount point: ${dest}`);
}

/** inspect `Mounts`: Name and Driver only when set (Go omitempty), dockerd's field order. */
export function inspectMounts(mounts: readonly ContainerMount[]): MountPoint[] {
  return mounts.map((m) => {
    const out: MountPoint = { Type: m.Type } as MountPoint;
    if (m.Name) out.Name = m.Name;
    out.Source = m.Source;
    out.Destination = m.Destination;
    if (m.Driver) out.Driver = m.Driver;
    out.Mode = m.Mode;
    out.RW = m.RW;
    out.Propagation = m.Propagation;
    return out;
  });
}

/** dockerd's sortMounts: fewer path components first, so /etc mounts before /etc/resolv.conf. */
export function sortMountsByDepth<T extends { destination: string }>(mounts: T[]): T[] {
  const depth = (p: string): number => (cleanContainerPath(p).match(/\//g) ?? []).length;
  return mounts
    .map((m, i) => ({ m, i }))
    .sort((a, b) => depth(a.m.destination) - depth(b.m.destination) || a.i - b.i)
    .map((x) => x.m);
}

/** OCI entries for stored mounts (volume sources are their `_data` directories) plus HostConfig.Tmpfs. */
export function ociMounts(mounts: readonly ContainerMount[], tmpfs?: Readonly<Record<string, string>> | null): OciMount[] {
  const out: OciMount[] = [];
  const tmpfsDest = new Set(Object.keys(tmpfs ?? {}).map(cleanContainerPath));
  for (const [dest, data] of Object.entries(tmpfs ?? {})) {
    out.push({ destination: cleanContainerPath(dest), type: 'tmpfs', source: 'tmpfs', options: tmpfsOciOptions(data) });
  }
  for (const m of mounts) {
    if (tmpfsDest.has(m.Destination)) continue;
    if (m.Type === 'tmpfs') {
      out.push({ destination: m.Destination, type: 'tmpfs', source: 'tmpfs', options: tmpfsOciOptions(m.TmpfsData ?? '') });
      continue;
    }
    const options = [m.Spec.BindOptions?.NonRecursive ? 'bind' : 'rbind'];
    // Read-only is recursive (submounts too) unless ReadOnlyNonRecursive asks for the old behaviour (API 1.44).
    // ReadOnlyForceRecursive always asks for it: the start fails where the kernel cannot.
    const bo = m.Spec.BindOptions;
    if (!m.RW) options.push(bo?.ReadOnlyForceRecursive || (!bo?.ReadOnlyNonRecursive && recursiveReadOnlySupported()) ? 'rro' : 'ro');
    if (m.Propagation !== '') options.push(m.Propagation);
    out.push({ destination: m.Destination, type: 'bind', source: m.Source, options });
  }
  return sortMountsByDepth(out);
}

/** mount_setattr(2) (Linux 5.12): what recursively read-only mounts need. */
export function recursiveReadOnlySupported(release = osRelease()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  const major = Number(m?.[1] ?? 0);
  const minor = Number(m?.[2] ?? 0);
  return major > 5 || (major === 5 && minor >= 12);
}

/**
 * From a container's Binds / Mounts / VolumesFrom / Config.Volumes, builds its mounts as dockerd's
 * registerMountPoints + createContainerVolumesOS do: named volumes created on first use, anonymous
 * volumes (labelled) for `-v /path` and VOLUME, bind sources checked (--mount) or created (-v), image
 * content copied into empty new volumes unless nocopy. Call at container create.
 */
export async function resolveContainerMounts(volumes: VolumeService, input: ResolveMountsInput): Promise<ResolvedMounts> {
  const byDest = new Map<string, ContainerMount>();
  const copyData = new Map<string, boolean>();
  const bound = new Set<string>();
  const created: string[] = [];
  const releases: (() => void)[] = [];
  const releaseAll = (): void => {
    for (const r of releases.splice(0)) r();
  };
  const tmpfsDest = new Set(Object.keys(input.tmpfs ?? {}).map(cleanContainerPath));
  const exists = (p: string): boolean => existsSync(p);
  const dataRoot = dirname(volumes.driver.root);
  let openedRootfs: RootfsReader | undefined;
  const rootfs = (): RootfsReader | undefined => (input.openRootfs ? (openedRootfs ??= input.openRootfs()) : undefined);

  const useVolume = async (
    p: ParsedMount,
    opts: { labels?: Record<string, string> | null; driverOpts?: Record<string, string> | null },
  ): Promise<ContainerMount> => {
    const driver = p.driver !== '' ? p.driver : undefined;
    const res = await volumes.create({ name: p.name, driver, labels: opts.labels, driverOpts: opts.driverOpts });
    releases.push(volumes.reserve(res.record.name, input.containerId));
    if (res.created) created.push(res.record.name);
    return {
      Type: 'volume',
      Name: res.record.name,
      Source: res.volume.Mountpoint,
      Destination: p.destination,
      Driver: res.record.driver,
      // setBindModeIfNull: named/anonymous local volumes from -v and --mount get "z".
      Mode: p.mode === '' ? 'z' : p.mode,
      RW: p.rw,
      Propagation: '',
      Spec: p.spec,
      // Only a mount that named no volume owns it (dockerd: Spec.Source == ""); `-v <hex>:/x` does not.
      ...(p.name === '' ? { Anonymous: true } : {}),
    };
  };

  try {
    // 1. Volumes of other containers.
    for (const v of input.volumesFrom ?? []) {
      const { container, mode } = parseVolumesFrom(v);
      const other = input.lookupContainer?.(container);
      if (!other) throw new InvalidParameterError(`No such container: ${container}`);
      for (const m of other.mounts) {
        if (m.Type === 'volume' && m.Name && !volumes.record(m.Name)) {
          throw new NotFoundError(`get ${m.Name}: no such volume`);
        }
        // dockerd copies everything but Mode.
        if (m.Type === 'volume' && m.Name) releases.push(volumes.reserve(m.Name, input.containerId));
        byDest.set(m.Destination, { ...m, Mode: '', RW: m.RW && volumesFromReadWrite(mode) });
        copyData.set(m.Destination, false);
      }
    }

    // 2. -v binds and volumes.
    for (const raw of input.binds ?? []) {
      const p = parseBind(raw, input.volumeDriver ?? '');
      p.propagation = daemonRootPropagation(dataRoot, p);
      if (bound.has(p.destination) || tmpfsDest.has(p.destination)) throw duplicate(p.destination);
      let cm: ContainerMount;
      if (p.type === 'volume') {
        cm = await useVolume(p, {});
      } else {
        cm = {
          Type: 'bind',
          Source: p.source,
          Destination: p.destination,
          Mode: p.mode,
          RW: p.rw,
          Propagation: p.propagation,
          Spec: p.spec,
          CreateSource: true,
        };
      }
      bound.add(p.destination);
      byDest.set(p.destination, cm);
      copyData.set(p.destination, p.copyData);
    }

    // 3. --mount.
    for (const spec of input.mounts ?? []) {
      const p = parseMountSpec(spec, exists);
      p.propagation = daemonRootPropagation(dataRoot, p);
      if (bound.has(p.destination)) throw duplicate(spec.Target ?? p.destination);
      let cm: ContainerMount;
      if (p.type === 'volume') {
        cm = await useVolume(p, {
          labels: spec.VolumeOptions?.Labels,
          driverOpts: spec.VolumeOptions?.DriverConfig?.Options,
        });
      } else if (p.type === 'bind') {
        cm = {
          Type: 'bind',
          Source: p.source,
          Destination: p.destination,
          Mode: '',
          RW: p.rw,
          Propagation: p.propagation,
          Spec: p.spec,
          ...(spec.BindOptions?.CreateMountpoint ? { CreateSource: true } : {}),
        };
      } else {
        cm = {
          Type: 'tmpfs',
          Source: '',
          Destination: p.destination,
          Mode: '',
          RW: p.rw,
          Propagation: '',
          Spec: p.spec,
          TmpfsData: convertTmpfsOptions(spec.TmpfsOptions, spec.ReadOnly === true),
        };
      }
      bound.add(p.destination);
      byDest.set(p.destination, cm);
      // A subpath shows part of an existing volume: nothing is copied into it.
      copyData.set(p.destination, p.copyData && !spec.VolumeOptions?.Subpath);
    }

    // 4. Config.Volumes (image VOLUME and `-v /path`): anonymous volumes where nothing is mounted yet.
    for (const spec of Object.keys(input.volumes ?? {})) {
      const dest = cleanContainerPath(spec);
      if (byDest.has(dest) || tmpfsDest.has(dest)) continue;
      if (!dest.startsWith('/')) throw new InvalidParameterError(`invalid mount path: '${dest}' mount path must be absolute`);
      if (dest === '/') throw new InvalidParameterError("invalid specification: destination can't be '/'");
      const image = rootfs();
      if (image?.kind(dest) === 'other') {
        throw new InvalidParameterError(`cannot mount volume over existing file, file exists ${image.describe(dest)}`);
      }
      const res = await volumes.create({ driver: input.volumeDriver || undefined });
      releases.push(volumes.reserve(res.record.name, input.containerId));
      created.push(res.record.name);
      byDest.set(dest, {
        Type: 'volume',
        Name: res.record.name,
        Source: res.volume.Mountpoint,
        Destination: dest,
        Driver: res.record.driver,
        Mode: '',
        RW: true,
        Propagation: '',
        Spec: { Type: 'volume', Target: dest },
        Anonymous: true,
      });
      copyData.set(dest, true);
    }

    // 5. Copy-up: the image's content at the destination into empty volumes (not for volumes that
    // mount a filesystem of their own: that content would land under the mount).
    if (input.openRootfs) {
      for (const m of byDest.values()) {
        if (m.Type !== 'volume' || !m.Name || !copyData.get(m.Destination)) continue;
        if (volumes.needsMount(m.Name)) continue;
        await copyUpIfEmpty(m.Source, rootfs as () => RootfsReader, m.Destination, input.log);
      }
    }
  } catch (e) {
    releaseAll();
    // Anonymous volumes made for this container would otherwise leak; named ones stay, as in dockerd.
    const anon = created.filter((n) => volumes.record(n)?.anonymous);
    await volumes.removeAnonymousVolumes(anon, input.containerId).catch((err: unknown) => {
      input.log?.warn({ err: errorMessage(err) }, 'cleaning up anonymous volumes failed');
    });
    throw e;
  } finally {
    openedRootfs?.release();
  }

  if (!input.holdReservations) releaseAll();
  const mounts = [...byDest.values()].sort((a, b) => (a.Destination < b.Destination ? -1 : a.Destination > b.Destination ? 1 : 0));
  return {
    mounts,
    oci: ociMounts(mounts, input.tmpfs),
    createdVolumes: created,
    anonymousVolumes: mounts.filter((m) => m.Anonymous && m.Name).map((m) => m.Name as string),
    release: releaseAll,
  };
}

/**
 * At container start: creates missing `-v` bind sources, checks `--mount` bind sources, mounts
 * volumes that have a filesystem of their own (tmpfs/bind/nfs options; refcounted), publishes
 * volume `mount` events, and returns the OCI entries. On failure, what was mounted is released.
 */
export async function prepareContainerMounts(
  volumes: VolumeService,
  containerId: string,
  mounts: readonly ContainerMount[],
  tmpfs?: Readonly<Record<string, string>> | null,
  /** Where volume subpaths are staged for this container (a root-only directory outside the container's). */
  stagingDir?: string,
): Promise<OciMount[]> {
  const mounted: string[] = [];
  try {
    for (const m of mounts) {
      if (m.Type === 'bind') {
        if (m.CreateSource) {
          await mkdir(m.Source, { recursive: true, mode: 0o755 }).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== 'ENOTDIR' && e.code !== 'EEXIST') {
              throw new InvalidParameterError(`error while creating mount source path '${m.Source}': ${e.message}`);
            }
          });
        } else {
          await stat(m.Source).catch(() => {
            throw new InvalidParameterError(`invalid mount config for type "bind": bind source path does not exist: ${m.Source}`);
          });
        }
      } else if (m.Type === 'volume' && m.Name) {
        await volumes.mount(m.Name, containerId, { destination: m.Destination, rw: m.RW, propagation: m.Propagation });
        mounted.push(m.Name);
      }
    }
    const oci = ociMounts(mounts, tmpfs);
    if (stagingDir) {
      for (const [i, m] of mounts.entries()) {
        const sub = m.Type === 'volume' ? m.Spec.VolumeOptions?.Subpath : undefined;
        if (!sub) continue;
        const staged = stageSubpath(m.Source, sub, join(stagingDir, String(i)));
        for (const o of oci) if (o.destination === m.Destination && o.type === 'bind') o.source = staged;
      }
    }
    return oci;
  } catch (e) {
    if (stagingDir) unstageSubpaths(stagingDir);
    for (const name of mounted) await volumes.unmount(name, containerId).catch(() => undefined);
    throw e;
  }
}

/**
 * A volume Subpath (API 1.45) resolved inside the volume (symlinks stay in it, `..` stops at its root), opened,
 * and bind-mounted by its descriptor onto `target` (in a root-only directory of the daemon): the container mounts
 * that, so nothing it or another container does in the volume can redirect the mount elsewhere.
 */
function stageSubpath(volumeDir: string, sub: string, target: string): string {
  const root = ConfinedRoot.open(volumeDir);
  const missing = `cannot access path ${join(volumeDir, sub)}: no such file or directory`;
  try {
    const r = root.resolve(sub, true, missing);
    let fd: number;
    try {
      if (!r.st) throw new InvalidParameterError(missing);
      // O_NOFOLLOW: a name swapped for a symlink since the resolution is refused, never followed to the host.
      fd = r.st.isDirectory() ? root.openDir(r) : openSync(r.hostPath, O_PATH | C.O_NOFOLLOW);
    } finally {
      r.close();
    }
    try {
      const st = fstatSync(fd);
      if (st.isSymbolicLink()) throw new InvalidParameterError(`cannot access path ${join(volumeDir, sub)}: it changed while being resolved`);
      mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
      if (st.isDirectory()) mkdirSync(target, { recursive: true, mode: 0o700 });
      else writeFileSync(target, '', { mode: 0o600 });
      // The bare magic link (no trailing "/."): it names the pinned inode, a file as well as a directory.
      nativeAddon().mount(`/proc/self/fd/${fd}`, target, '', MS_BIND, '');
    } finally {
      closeSync(fd);
    }
    return target;
  } finally {
    root.close();
  }
}

/** Unmounts and removes a container's staged subpaths (each entry is a mount point, never recursed into). */
export function unstageSubpaths(stagingDir: string): void {
  let names: string[];
  try {
    names = readdirSync(stagingDir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(stagingDir, n);
    try {
      nativeAddon().umount2(p, MNT_DETACH);
    } catch {
      // not mounted (a failed stage)
    }
    removeEntry(p);
  }
  removeEntry(stagingDir);
}

/** rmdir or unlink, never recursive: a path still mounted fails (EBUSY) instead of deleting volume data. */
function removeEntry(p: string): void {
  try {
    rmdirSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') unlinkSync(p);
    else if (code !== 'ENOENT') throw e;
  }
}

/** At container stop: drops the container's volume mount references and publishes `unmount`. */
export async function releaseContainerMounts(
  volumes: VolumeService,
  containerId: string,
  mounts: readonly ContainerMount[],
  log?: Logger,
  stagingDir?: string,
): Promise<void> {
  if (stagingDir) {
    try {
      unstageSubpaths(stagingDir);
    } catch (e) {
      log?.warn({ container: containerId, err: errorMessage(e) }, 'removing staged volume subpaths failed');
    }
  }
  for (const m of mounts) {
    if (m.Type !== 'volume' || !m.Name) continue;
    await volumes.unmount(m.Name, containerId).catch((e: unknown) => {
      log?.warn({ volume: m.Name, container: containerId, err: errorMessage(e) }, 'unmounting volume failed');
    });
  }
}

/** After a daemon restart, for each running container: re-take its volume mount references (no events). */
export async function restoreContainerMounts(volumes: VolumeService, containerId: string, mounts: readonly ContainerMount[]): Promise<void> {
  for (const m of mounts) {
    if (m.Type === 'volume' && m.Name) await volumes.restoreMount(m.Name, containerId);
  }
}

/** Names of a container's volumes (for the usage checker: every volume a container's mounts reference). */
export function volumeNames(mounts: readonly ContainerMount[]): string[] {
  return mounts.filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name as string);
}

/** The volumes `docker rm -v` / `--rm` may remove for this container: anonymous ones its own mounts created. */
export function anonymousVolumeNames(mounts: readonly ContainerMount[]): string[] {
  return mounts.filter((m) => m.Type === 'volume' && m.Anonymous && m.Name).map((m) => m.Name as string);
}
