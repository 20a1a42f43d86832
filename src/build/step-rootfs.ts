// A writable view of an image for the steps that change files without running anything (COPY, ADD, WORKDIR):
// an overlay of the image's layers with a fresh upper dir, mounted privately under the exec root, edited only
// through a ConfinedRoot. Its upper dir becomes the step's layer, exactly as a container's would (copy-up keeps
// the metadata of existing parent directories; deletions become whiteouts).

import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { errorMessage } from '../errors.js';
import { ConfinedRoot } from '../containers/confined-root.js';
import { upperLayerTar } from '../containers/commit.js';
import type { ImageService } from '../images/image-service.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import { mountOverlay, unmount } from '../snapshots/overlay.js';
import type { Logger } from '../util/logger.js';

export interface StepLayer {
  chainId: string;
  diffId: string;
  size: number;
}

/** Writes the tar of an upper dir as a layer on top of `parent`, held by `holder`; undefined when the dir is empty. */
export async function commitUpperDir(images: ImageService, parent: string | null, upperDir: string, holder: string): Promise<StepLayer | undefined> {
  if (readdirSync(upperDir).length === 0) return undefined;
  const upper = ConfinedRoot.open(upperDir);
  let blob;
  try {
    blob = await images.content.write(Readable.from(upperLayerTar(upper)));
  } finally {
    upper.close();
  }
  try {
    const layer = await images.layers.registerBlob(parent, { ...blob, mediaType: 'application/vnd.docker.image.rootfs.diff.tar' }, blob.digest, holder);
    return { chainId: layer.chainId, diffId: layer.diffId, size: layer.size };
  } catch (e) {
    if (images.layers.layerUsersOfBlob(blob.digest) === 0) images.content.delete(blob.digest);
    throw e;
  }
}

export class StepRootfs {
  readonly root: ConfinedRoot;
  readonly upper: string;
  private unmounted = false;

  private constructor(
    private readonly dir: string,
    private readonly target: string,
    private readonly log: Logger,
  ) {
    this.upper = join(dir, 'upper');
    this.root = ConfinedRoot.open(target);
  }

  /** Mounts the image's layers (none for scratch) with an empty upper dir. */
  static open(layers: LayerStore, execRoot: string, workRoot: string, chainId: string | null, log: Logger): StepRootfs {
    const id = randomBytes(8).toString('hex');
    const dir = join(workRoot, `step-${id}`);
    mkdirSync(join(dir, 'upper'), { recursive: true, mode: 0o755 });
    mkdirSync(join(dir, 'work'), { mode: 0o700 });
    mkdirSync(join(dir, 'empty'), { mode: 0o755 });
    const mounts = join(execRoot, 'build');
    mkdirSync(mounts, { recursive: true, mode: 0o700 });
    const target = join(mounts, id);
    let lower: string[];
    if (chainId === null) lower = [join(dir, 'empty')];
    else {
      const short = layers.shortLowerDirs(chainId);
      lower = short.dirs.map((d) => join(short.base, d));
    }
    try {
      mountOverlay(target, { lower, upper: join(dir, 'upper'), work: join(dir, 'work') });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    return new StepRootfs(dir, target, log);
  }

  /** Ends the edit: the upper dir stays for commitUpperDir. */
  unmount(): void {
    if (this.unmounted) return;
    this.unmounted = true;
    this.root.close();
    try {
      unmount(this.target);
      rmdirSync(this.target);
    } catch (e) {
      this.log.warn({ err: errorMessage(e), target: this.target }, 'unmounting a build step view failed');
    }
  }

  release(): void {
    this.unmount();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
