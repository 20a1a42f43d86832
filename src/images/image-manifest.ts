import { createHash } from 'node:crypto';

/**
 * An image's manifest as Berth describes it (push, GET /images/json?manifests=1): Docker schema 2 over the layer
 * blobs as they were received, the media types those documents use.
 */

export const MT_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MT_DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MT_DOCKER_SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const MT_DOCKER_SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
export const MT_DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const MT_DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';
export const MT_DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const MT_DOCKER_FOREIGN_GZIP = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
export const MT_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MT_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MT_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MT_OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const MT_OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MT_OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';


function isZstd(mt: string): boolean {
  return mt.endsWith('zstd');
}

function layerMediaType(stored: string, oci: boolean): string {
  const gzip = stored.endsWith('gzip');
  if (isZstd(stored)) return MT_OCI_LAYER_ZSTD;
  if (oci) return gzip ? MT_OCI_LAYER_GZIP : MT_OCI_LAYER;
  return gzip ? MT_DOCKER_LAYER_GZIP : MT_DOCKER_LAYER;
}

/**
 * The manifest for an image: Docker schema 2 (what dockerd pushes), or an OCI manifest when a layer is
 * zstd-compressed (schema 2 has no type for it). Indented with three spaces like dockerd's.
 */
export function buildManifest(configDigest: string, configSize: number, layers: { digest: string; size: number; mediaType: string }[]): { bytes: Buffer; mediaType: string } {
  const oci = layers.some((l) => isZstd(l.mediaType));
  const doc = {
    schemaVersion: 2,
    mediaType: oci ? MT_OCI_MANIFEST : MT_DOCKER_MANIFEST,
    config: { mediaType: oci ? MT_OCI_CONFIG : MT_DOCKER_CONFIG, size: configSize, digest: configDigest },
    layers: layers.map((l) => ({ mediaType: layerMediaType(l.mediaType, oci), size: l.size, digest: l.digest })),
  };
  return { bytes: Buffer.from(JSON.stringify(doc, null, 3)), mediaType: doc.mediaType };
}


/** One entry of GET /images/json's `Manifests` (API 1.47+, `manifests=1`): Docker's ImageManifestSummary. */
export interface ManifestSummary {
  ID: string;
  Descriptor: { mediaType: string; digest: string; size: number; platform: { architecture: string; os: string; variant?: string } };
  Available: boolean;
  Size: { Total: number; Content: number };
  Kind: 'image';
  ImageData: { Platform: { architecture: string; os: string; variant?: string }; Containers: string[]; Size: { Unpacked: number } };
}

/**
 * The summary of the manifest Berth would push for an image (buildManifest over its layers' stored blobs), or
 * undefined when a layer has no stored blob (built or committed images keep none: no manifest describes them).
 * Content counts the manifest, config and layer blobs; Total adds the unpacked layers.
 */
export function manifestSummary(image: {
  configDigest: string;
  configSize: number;
  layers: readonly { blob: { digest: string; size: number; mediaType: string } | null }[];
  platform: { architecture: string; os: string; variant?: string };
  unpackedSize: number;
  containers: string[];
}): ManifestSummary | undefined {
  const blobs: { digest: string; size: number; mediaType: string }[] = [];
  for (const l of image.layers) {
    if (!l.blob) return undefined;
    blobs.push(l.blob);
  }
  const manifest = buildManifest(image.configDigest, image.configSize, blobs);
  const digest = `sha256:${createHash('sha256').update(manifest.bytes).digest('hex')}`;
  const content = manifest.bytes.length + image.configSize + blobs.reduce((n, b) => n + b.size, 0);
  return {
    ID: digest,
    Descriptor: { mediaType: manifest.mediaType, digest, size: manifest.bytes.length, platform: image.platform },
    Available: true,
    Size: { Total: content + image.unpackedSize, Content: content },
    Kind: 'image',
    ImageData: { Platform: image.platform, Containers: image.containers, Size: { Unpacked: image.unpackedSize } },
  };
}
