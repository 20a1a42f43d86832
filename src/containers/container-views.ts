// Views of a container's filesystem from the host, for cp, diff, export and commit.
//
// - live: a running container's root as its processes see it (/proc/<init pid>/root): overlay, volumes, binds.
// - mounted: a stopped container's root mounted privately under <exec-root>/views/<random>, with its volume and
//   bind mounts bound on top. Writable (upper/work) only while the caller holds the container's lifecycle lock;
//   read-only views stack the upper dir as the top lower dir, which overlayfs allows even while the container
//   runs (index=off), so they never conflict with a start.
// - lower: the container's image layers plus its init layer, read-only (what `docker diff` compares against).
// Nothing is ever mounted inside the container directory, so removing a container cannot reach a view.

import { randomBytes } from 'node:crypto';
import { closeSync, constants as C, cpSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, rmdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import type { CgroupManager } from '../runtime/cgroups/index.js';
import type { OciSpec } from '../runtime/oci-spec.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import { MNT_DETACH, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, MS_BIND, MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REMOUNT, nativeAddon } from '../native.js';
import { mountOverlay, removeLeftoverMounts } from '../snapshots/overlay.js';
import type { Logger } from '../util/logger.js';
import type { RootfsReader } from '../volumes/copy-up.js';
import { ConfinedRoot, O_PATH, rootfsReader } from './confined-root.js';
import type { ContainerView } from './types.js';
import { cgroupPathOf, containerDir, initLayerOf } from './paths.js';

/** Every view is nosuid and nodev: berthd never runs or opens anything through it as a program or a device. */
const VIEW_FLAGS = MS_NOSUID | MS_NODEV;
/** Filesystems whose contents are not the container's files (never archived, never written). */
const VIRTUAL_TYPES = new Set(['proc', 'sysfs', 'cgroup', 'cgroup2', 'devpts', 'mqueue']);

export interface RootView {
  root: ConfinedRoot;
  /** Where a mounted view is (for messages); undefined for live views. */
  mountPoint?: string;
  /** Container paths of virtual filesystems (their contents are left out of archives). */
  virtual: ReadonlySet<string>;
  kind: 'live' | 'mounted';
  release(): void;
}

export interface ViewDeps {
  dataRoot: string;
  execRoot: string;
  layers: LayerStore;
  cgroups: CgroupManager;
  log: Logger;
}

export class ContainerViews {
  private readonly viewsDir: string;

  constructor(private readonly d: ViewDeps) {
    this.viewsDir = join(d.execRoot, 'views');
  }

  containerDir(id: string): string {
    return containerDir(this.d.dataRoot, id);
  }

  /** init + image layers, top first. */
  lowerDirs(c: ContainerView): string[] {
    return [initLayerOf(this.d.dataRoot, c.id), ...(c.chainId ? this.d.layers.lowerDirs(c.chainId) : [])];
  }

  upperDir(c: ContainerView): string {
    return join(this.containerDir(c.id), 'upper');
  }

  /** Removes views a previous daemon left mounted (it died mid-copy). */
  cleanupLeftovers(): void {
    removeLeftoverMounts(this.viewsDir, this.d.log, 'container view');
  }


  /** A running container's root through its init process, or undefined when it is not running any more. */
  async live(c: ContainerView): Promise<RootView | undefined> {
    const pid = c.state.Pid;
    if (!c.state.Running || !pid) return undefined;
    const cg = this.d.cgroups.open(cgroupPathOf(c));
    const member = async (): Promise<boolean> => (await cg.pids().catch(() => [] as number[])).includes(pid);
    if (!(await member())) return undefined;
    let root: ConfinedRoot;
    try {
      root = ConfinedRoot.open(`/proc/${pid}/root`);
    } catch {
      return undefined;
    }
    // The pid could have been reused between the check and the open: check again with the root held.
    if (!(await member())) {
      root.close();
      return undefined;
    }
    const virtual = new Set<string>();
    try {
      const spec = JSON.parse(await readFile(join(this.containerDir(c.id), 'config.json'), 'utf8')) as OciSpec;
      for (const m of spec.mounts ?? []) if (VIRTUAL_TYPES.has(m.type ?? '')) virtual.add(m.destination);
    } catch {
      for (const p of ['/proc', '/sys', '/dev/pts', '/dev/mqueue']) virtual.add(p);
    }
    return { root, virtual, kind: 'live', release: () => root.close() };
  }

  private newMountPoint(): string {
    mkdirSync(this.viewsDir, { recursive: true, mode: 0o700 });
    const p = join(this.viewsDir, randomBytes(8).toString('hex'));
    mkdirSync(p, { mode: 0o700 });
    return p;
  }

  private unmountAndRemove(target: string): void {
    try {
      nativeAddon().umount2(target, MNT_DETACH);
    } catch (e) {
      this.d.log.warn({ err: errorMessage(e), target }, 'unmounting a container view failed');
    }
    try {
      rmdirSync(target);
    } catch (e) {
      this.d.log.warn({ err: errorMessage(e), target }, 'removing a container view mount point failed');
    }
  }

  /**
   * A stopped container's root with its volumes and binds. `writable` mounts the upper dir read-write: the
   * caller must hold the container's lifecycle lock so the container cannot start meanwhile.
   */
  mounted(c: ContainerView, writable: boolean): RootView {
    const target = this.newMountPoint();
    const dir = this.containerDir(c.id);
    try {
      if (c.driver === 'vfs') {
        // vfs: the container's whole tree is <dir>/fs (its first start copies the image there); a
        // never-started container reads the image's tree and gets its copy before a write
        nativeAddon().mount(this.vfsTree(c, writable), target, '', MS_BIND, '');
        const ro = !writable || c.hostConfig.ReadonlyRootfs ? MS_RDONLY : 0;
        nativeAddon().mount('', target, '', MS_REMOUNT | MS_BIND | VIEW_FLAGS | ro, '');
      } else if (writable) {
        mountOverlay(target, { lower: this.lowerDirs(c), upper: join(dir, 'upper'), work: join(dir, 'work') }, VIEW_FLAGS);
        if (c.hostConfig.ReadonlyRootfs) nativeAddon().mount('', target, '', MS_REMOUNT | MS_RDONLY | VIEW_FLAGS, '');
      } else {
        mountOverlay(target, { lower: [join(dir, 'upper'), ...this.lowerDirs(c)] }, VIEW_FLAGS);
      }
    } catch (e) {
      rmdirSync(target);
      throw e;
    }
    return this.viewOf(target, (root) => this.bindMounts(c, root, writable));
  }

  /** A vfs container's own tree (ContainerService.vfsRootfs makes the same copy at first start). */
  private vfsTree(c: ContainerView, writable: boolean): string {
    const fs = join(this.containerDir(c.id), 'fs');
    if (existsSync(fs)) return fs;
    const image = c.chainId ? this.d.layers.lowerDirs(c.chainId)[0] : undefined;
    if (!writable && image) return image;
    const tmp = `${fs}.tmp-${randomBytes(4).toString('hex')}`;
    if (image) cpSync(image, tmp, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    else mkdirSync(tmp, { recursive: true });
    renameSync(tmp, fs);
    return fs;
  }

  /**
   * Binds the container's volumes and bind mounts at their destinations inside a mounted view. A destination may
   * lie in a directory a running container shares (a volume, a bind): it is resolved inside the view, opened
   * O_PATH|O_NOFOLLOW and the mount is attached to that descriptor, so a symlink swapped in for the name can
   * never carry the mount onto a host path. Binds are nosuid and nodev, read-only unless the view is writable
   * and the mount is too, all set before the mount is attached.
   */
  private bindMounts(c: ContainerView, root: ConfinedRoot, writable: boolean): void {
    const native = nativeAddon();
    const mounts = c.mounts
      .filter((m) => (m.Type === 'volume' || m.Type === 'bind') && m.Source !== '')
      .sort((a, b) => a.Destination.split('/').length - b.Destination.split('/').length);
    for (const m of mounts) {
      let r;
      try {
        r = root.resolve(m.Destination, true);
      } catch {
        continue;
      }
      try {
        if (!r.st) {
          if (!writable) continue;
          mkdirSync(r.hostPath, 0o755);
        }
        const target = openSync(r.hostPath, O_PATH | C.O_NOFOLLOW);
        try {
          const st = fstatSync(target);
          if (!st.isDirectory() && !st.isFile()) throw new Error('the mount point was replaced by something else than a directory or a file');
          const attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (!m.RW || !writable ? MOUNT_ATTR_RDONLY : 0);
          native.bindMountAt(m.Source, target, true, attrs);
        } finally {
          closeSync(target);
        }
      } catch (e) {
        this.d.log.warn({ err: errorMessage(e), id: c.id, destination: m.Destination }, 'binding a mount into a container view failed');
      } finally {
        r.close();
      }
    }
  }

  /** Read-only merged view for export: upper over init over the image layers (no volumes, as dockerd). */
  rootfsOnly(c: ContainerView): RootView {
    return this.readOnlyStack([join(this.containerDir(c.id), 'upper'), ...this.lowerDirs(c)]);
  }

  /** What the container started from (init + image layers), read-only: the base of `docker diff`. */
  lower(c: ContainerView): RootView {
    return this.readOnlyStack(this.lowerDirs(c));
  }

  /** A view over a mounted target: opened confined, unmounted (and removed) on release or on failure. */
  private viewOf(target: string, prepare?: (root: ConfinedRoot) => void): RootView {
    let root: ConfinedRoot;
    try {
      root = ConfinedRoot.open(target);
      prepare?.(root);
    } catch (e) {
      this.unmountAndRemove(target);
      throw e;
    }
    return {
      root,
      mountPoint: target,
      virtual: new Set(),
      kind: 'mounted',
      release: () => {
        root.close();
        this.unmountAndRemove(target);
      },
    };
  }

  private readOnlyStack(lower: string[]): RootView {
    const target = this.newMountPoint();
    try {
      mountOverlay(target, { lower }, VIEW_FLAGS);
    } catch (e) {
      rmdirSync(target);
      throw e;
    }
    return this.viewOf(target);
  }

  /**
   * The image's root as a new container sees it (init + image layers), read-only, for copy-up into new volumes:
   * paths are resolved inside it as dockerd's FollowSymlinkInScope does, never on the host.
   */
  imageRootfs(c: ContainerView): RootfsReader {
    const view = c.driver === 'vfs' ? this.readOnlyStack(c.chainId ? [this.vfsTree(c, false)] : [join(this.containerDir(c.id), 'init')]) : this.lower(c);
    return rootfsReader(view.root, view.mountPoint ?? '', () => view.release());
  }

  /** The upper dir itself (diff, commit), walked through fds like any container-controlled tree. */
  upper(c: ContainerView): ConfinedRoot {
    return ConfinedRoot.open(this.upperDir(c));
  }
}
