import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { posix, join } from 'node:path';
import { ConfinedRoot } from '../containers/confined-root.js';
import { InvalidParameterError, NotFoundError, errorMessage } from '../errors.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import { mountOverlay, unmount } from '../snapshots/overlay.js';
import type { Logger } from '../util/logger.js';
import type { CriImageService } from './image-service.js';
import { msg, str, type Msg } from './messages.js';

// Image volumes (CRI Mount.image, Kubernetes' ImageVolume): an image's filesystem, read-only, at a container
// path. Berth mounts the image's layers (a read-only overlay of its diff dirs; one layer is bound read-only) on a
// directory of its own, <data-root>/cri/image-volumes/<key>/<n>, and hands the container service a read-only
// bind of it (or of image_sub_path inside it, resolved inside the image: a symlink cannot lead out of it). The
// layers are held for the container (holder "cri-image-volume:<key>") so removing the image cannot delete them
// under the mount; RemoveContainer unmounts and releases them. The mounts are made at create and made again at
// start if they are gone (a host reboot).

/** What a container's record keeps of its image volumes. */
export interface ImageVolumeSet {
  key: string;
  mounts: { dir: string; chainId: string }[];
}

export interface PreparedImageVolumes {
  set: ImageVolumeSet;
  /** Binds for the container service's HostConfig.Mounts. */
  binds: Record<string, unknown>[];
}

const holderOf = (key: string): string => `cri-image-volume:${key}`;

/** Mount points of this mount namespace (the 5th field of /proc/self/mountinfo, octal escapes decoded). */
function mountPoints(): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4]) out.add(f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

export class ImageVolumes {
  constructor(
    private readonly root: string,
    private readonly layers: LayerStore,
    private readonly images: CriImageService,
    private readonly log: Logger,
  ) {}

  /**
   * Checks and mounts the image mounts of a CreateContainer request (the entries of `mounts` with `image`).
   * Refused: a writable image volume, an image that is not present, an image_sub_path that climbs out or does
   * not exist in the image. On a refusal nothing stays mounted or held.
   */
  prepare(mounts: Msg[]): PreparedImageVolumes | undefined {
    const wanted = mounts.filter((m) => m.image);
    if (wanted.length === 0) return undefined;
    const set: ImageVolumeSet = { key: randomBytes(12).toString('hex'), mounts: [] };
    const binds: Record<string, unknown>[] = [];
    try {
      for (const m of wanted) {
        const target = str(m.container_path);
        if (!posix.isAbsolute(target)) throw new InvalidParameterError(`image volume path must be absolute: "${target}"`);
        if (m.readonly !== true) throw new InvalidParameterError(`image volume ${target} must be read-only (readonly: true)`);
        const spec = str(msg(m.image).image);
        const img = this.images.find(spec);
        if (!img) throw new NotFoundError(`image "${spec}" of image volume ${target} not found`);
        if (!img.chainId) throw new InvalidParameterError(`image "${spec}" of image volume ${target} has no layers`);
        const sub = str(m.image_sub_path);
        const cleaned = posix.normalize(sub === '' ? '.' : sub);
        if (posix.isAbsolute(sub) || cleaned === '..' || cleaned.startsWith('../')) {
          throw new InvalidParameterError(`image_sub_path must be a relative path inside the image: "${sub}"`);
        }
        const dir = join(this.root, set.key, String(set.mounts.length));
        this.layers.hold(holderOf(set.key), img.chainId);
        set.mounts.push({ dir, chainId: img.chainId });
        this.mount(dir, img.chainId);
        let source = dir;
        if (cleaned !== '.') {
          const root = ConfinedRoot.open(dir);
          try {
            const r = root.resolve(cleaned, true, `image_sub_path "${sub}" does not exist in image "${spec}"`);
            const exists = r.st !== undefined;
            const inside = r.containerPath;
            r.close();
            if (!exists) throw new NotFoundError(`image_sub_path "${sub}" does not exist in image "${spec}"`);
            source = join(dir, inside);
          } finally {
            root.close();
          }
        }
        binds.push({ Type: 'bind', Source: source, Target: target, ReadOnly: true, BindOptions: { Propagation: 'rslave' } }); // Docker's rule for a source inside the data root
      }
    } catch (e) {
      this.release(set);
      throw e;
    }
    return { set, binds };
  }

  /** Mounts again what is no longer mounted (the host rebooted since the create). */
  ensure(set: ImageVolumeSet): void {
    const mounted = mountPoints();
    for (const m of set.mounts) if (!mounted.has(m.dir)) this.mount(m.dir, m.chainId);
  }

  /** Unmounts a container's image volumes and releases their layers. */
  release(set: ImageVolumeSet): void {
    const mounted = mountPoints();
    for (const m of set.mounts) {
      try {
        if (mounted.has(m.dir)) unmount(m.dir);
        rmdirSync(m.dir); // never recursive: a mount left there must not be walked into
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ dir: m.dir, err: errorMessage(e) }, 'CRI image volume: unmount failed');
      }
    }
    try {
      rmdirSync(join(this.root, set.key));
    } catch {
      // not there, or a mount above could not be removed (logged)
    }
    this.layers.release(holderOf(set.key));
  }

  private mount(dir: string, chainId: string): void {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    mountOverlay(dir, { lower: this.layers.lowerDirs(chainId) });
  }
}
