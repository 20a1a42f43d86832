// docker commit: the container's writable layer becomes a new image layer on top of its image's chain, with
// a config derived from the container's (plus --change instructions), dockerd's history entry and parent.

import { Readable } from 'node:stream';
import { InvalidParameterError } from '../errors.js';
import { applyChanges } from '../images/changes.js';
import type { ContainerConfigJson, ImageConfigJson } from '../images/image-config.js';
import { targetReference } from '../images/image-import.js';
import type { ImageService } from '../images/image-service.js';
import { LayerStore } from '../snapshots/layer-store.js';
import { rfc3339Nano } from '../util/time.js';
import { BERTH_VERSION } from '../version.js';
import type { ConfinedRoot } from './confined-root.js';
import { tarTree } from './tree-tar.js';
import type { ContainerConfig, ContainerView } from './types.js';
import { copyOf } from './types.js';

export interface CommitOptions {
  repo?: string;
  tag?: string;
  comment?: string;
  author?: string;
  changes?: string[];
  /** POST /commit body: a container config to start from instead of the container's. */
  config?: ContainerConfigJson;
}

function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
}

/** The layer tar of an upper dir (overlay whiteouts → .wh. files, opaque dirs → .wh..wh..opq). */
export function upperLayerTar(upper: ConfinedRoot): AsyncGenerator<Buffer> {
  return tarTree(upper.rootFd, '.', '', '/', { layer: true });
}

/**
 * Writes the layer (taking `upper` from the caller, who may pause the container around this call) and
 * registers it on top of the container's chain. Returns the new layer's chain and diff IDs; the caller
 * passes `holder` on to createCommitImage, or releases it.
 */
export async function writeCommitLayer(images: ImageService, c: ContainerView, upper: ConfinedRoot, holder: string): Promise<{ chainId: string; diffId: string }> {
  const blob = await images.content.write(Readable.from(upperLayerTar(upper)));
  try {
    const layer = await images.layers.registerBlob(c.chainId, { ...blob, mediaType: 'application/vnd.docker.image.rootfs.diff.tar' }, blob.digest, holder);
    return { chainId: layer.chainId, diffId: layer.diffId };
  } catch (e) {
    if (images.layers.layerUsersOfBlob(blob.digest) === 0) images.content.delete(blob.digest);
    throw e;
  }
}

/** The image config and record for a committed layer. Returns the image ID. */
export function createCommitImage(
  images: ImageService,
  c: ContainerView,
  layer: { chainId: string; diffId: string },
  holder: string,
  o: CommitOptions,
): string {
  const target = targetReference(o.repo, o.tag);
  const base = images.get(c.imageId);
  const baseConfig: ImageConfigJson | undefined = base?.config;
  const diffIds = c.chainId ? images.layers.chain(c.chainId).map((l) => l.diffId) : [];
  const start: ContainerConfigJson = o.config && Object.keys(o.config).length > 0 ? { ...copyOf<ContainerConfig>(c.config), ...o.config } : copyOf<ContainerConfig>(c.config);
  let config: ContainerConfigJson;
  try {
    config = applyChanges(start, o.changes ?? []);
  } catch (e) {
    throw e instanceof InvalidParameterError ? e : new InvalidParameterError((e as Error).message);
  }
  const created = rfc3339Nano(BigInt(Date.now()) * 1_000_000n);
  const history = [...(baseConfig?.history ?? [])];
  history.push({
    created,
    created_by: [c.path, ...c.args].join(' '),
    ...(o.author ? { author: o.author } : {}),
    ...(o.comment ? { comment: o.comment } : {}),
  });
  const imageConfig: ImageConfigJson = {
    architecture: baseConfig?.architecture ?? goArch(),
    ...(baseConfig?.variant ? { variant: baseConfig.variant } : {}),
    ...(o.author ? { author: o.author } : {}),
    ...(o.comment ? { comment: o.comment } : {}),
    config,
    container: c.id,
    created,
    docker_version: BERTH_VERSION,
    history,
    os: baseConfig?.os ?? 'linux',
    ...(base ? { parent: base.id } : {}),
    rootfs: { type: 'layers', diff_ids: [...diffIds, layer.diffId] },
  };
  const { digest } = images.content.put(Buffer.from(JSON.stringify(imageConfig)));
  const { image } = images.createImage(digest, layer.chainId, { holder, ...(base ? { parent: base.id } : {}), tags: target ? [target] : [] });
  return image.id;
}

export function commitHolder(): string {
  return LayerStore.tempHolder('commit');
}
