import type { Readable } from 'node:stream';
import { InvalidParameterError } from '../errors.js';
import { LayerStore } from '../snapshots/layer-store.js';
import { detectFileCompression } from '../archive/decompress.js';
import { applyChanges } from './changes.js';
import type { ContainerConfigJson, ImageConfigJson } from './image-config.js';
import type { ImageService } from './image-service.js';
import { isValidTag, parseReference, withDefaultTag, type ImageReference } from './reference.js';
import { rfc3339Nano } from '../util/time.js';
import { BERTH_VERSION } from '../version.js';

export interface ImportOptions {
  /** `repo` query param; may carry the tag (`demo:1`), as the CLI sends it. */
  repo?: string;
  tag?: string;
  changes?: string[];
  message?: string;
  platform?: string;
}

function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
}

/** Parses repo/tag for import and commit; undefined when no repo was given. */
export function targetReference(repo: string | undefined, tag: string | undefined): ImageReference | undefined {
  if (repo === undefined || repo === '') return undefined;
  let ref = parseReference(repo);
  if (ref.digest !== undefined) throw new InvalidParameterError('cannot import digest reference');
  if (tag !== undefined && tag !== '') {
    if (!isValidTag(tag)) throw new InvalidParameterError('invalid tag format');
    ref = { ...ref, tag };
  }
  return withDefaultTag(ref);
}

/**
 * POST /images/create?fromSrc=-: one layer from a (possibly compressed) tar body, a config built from
 * `changes`, the message as comment and history. Returns the new image ID.
 */
export async function importImage(images: ImageService, body: Readable, opts: ImportOptions): Promise<string> {
  const target = targetReference(opts.repo, opts.tag);
  const config: ContainerConfigJson = applyChanges({}, opts.changes ?? []);
  const holder = LayerStore.tempHolder('import');
  const content = images.content;
  try {
    // Keep the bytes as received (the blob), then extract from the store.
    const blob = await content.write(body);
    const compression = detectFileCompression(content.path(blob.digest));
    const mediaType = compression === 'gzip'
      ? 'application/vnd.docker.image.rootfs.diff.tar.gzip'
      : compression === 'zstd'
        ? 'application/vnd.oci.image.layer.v1.tar+zstd'
        : 'application/vnd.docker.image.rootfs.diff.tar';
    let layer;
    try {
      layer = await images.layers.registerBlob(null, { ...blob, mediaType }, undefined, holder);
    } catch (e) {
      if (images.layers.layerUsersOfBlob(blob.digest) === 0) content.delete(blob.digest);
      throw e;
    }
    const created = rfc3339Nano(BigInt(Date.now()) * 1_000_000n);
    const [os, arch] = (opts.platform ?? '').split('/');
    const imageConfig: ImageConfigJson = {
      architecture: arch || goArch(),
      ...(opts.message ? { comment: opts.message } : {}),
      config,
      created,
      docker_version: BERTH_VERSION,
      history: [{ created, ...(opts.message ? { comment: opts.message } : {}), created_by: '' }],
      os: os || 'linux',
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    };
    const bytes = Buffer.from(JSON.stringify(imageConfig));
    const { digest } = content.put(bytes);
    const { image } = images.createImage(digest, layer.chainId, { holder, tags: target ? [target] : [] });
    images.events.publish('image', 'import', image.id, { name: image.id });
    return image.id;
  } finally {
    images.layers.release(holder);
  }
}
