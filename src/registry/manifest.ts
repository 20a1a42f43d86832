import { isDigest } from '../content/content-store.js';
import type { Platform } from './platform.js';

export {
  MT_DOCKER_MANIFEST,
  MT_DOCKER_LIST,
  MT_DOCKER_SCHEMA1,
  MT_DOCKER_SCHEMA1_SIGNED,
  MT_DOCKER_CONFIG,
  MT_DOCKER_LAYER,
  MT_DOCKER_LAYER_GZIP,
  MT_DOCKER_FOREIGN_GZIP,
  MT_OCI_MANIFEST,
  MT_OCI_INDEX,
  MT_OCI_CONFIG,
  MT_OCI_LAYER,
  MT_OCI_LAYER_GZIP,
  MT_OCI_LAYER_ZSTD,
} from '../images/image-manifest.js';
import {
  MT_DOCKER_CONFIG,
  MT_DOCKER_FOREIGN_GZIP,
  MT_DOCKER_LAYER,
  MT_DOCKER_LAYER_GZIP,
  MT_DOCKER_LIST,
  MT_DOCKER_MANIFEST,
  MT_DOCKER_SCHEMA1,
  MT_DOCKER_SCHEMA1_SIGNED,
  MT_OCI_CONFIG,
  MT_OCI_INDEX,
  MT_OCI_LAYER,
  MT_OCI_LAYER_GZIP,
  MT_OCI_LAYER_ZSTD,
  MT_OCI_MANIFEST,
} from '../images/image-manifest.js';

/** Accept header for manifest requests: every type Berth can pull, lists first as dockerd sends them. */
export const MANIFEST_ACCEPT = [MT_DOCKER_LIST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_OCI_MANIFEST].join(', ');

const LAYER_TYPES = new Set([
  MT_DOCKER_LAYER,
  MT_DOCKER_LAYER_GZIP,
  MT_DOCKER_FOREIGN_GZIP,
  MT_OCI_LAYER,
  MT_OCI_LAYER_GZIP,
  MT_OCI_LAYER_ZSTD,
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface ImageManifest {
  kind: 'image';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface IndexManifest {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

export type Manifest = ImageManifest | IndexManifest;

/** A manifest the registry sent that Berth refuses (malformed, unsupported, or deprecated schema 1). */
export class ManifestError extends Error {}

function descriptor(v: unknown, what: string): Descriptor {
  if (typeof v !== 'object' || v === null) throw new ManifestError(`invalid manifest: ${what} is not an object`);
  const o = v as Record<string, unknown>;
  if (typeof o.digest !== 'string' || !isDigest(o.digest)) {
    throw new ManifestError(`invalid manifest: ${what} has an unsupported digest ${JSON.stringify(o.digest)}`);
  }
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) throw new ManifestError(`invalid manifest: ${what} has no valid size`);
  const d: Descriptor = { mediaType: typeof o.mediaType === 'string' ? o.mediaType : '', digest: o.digest, size: o.size };
  if (Array.isArray(o.urls)) d.urls = o.urls.filter((u): u is string => typeof u === 'string');
  if (typeof o.annotations === 'object' && o.annotations !== null) d.annotations = o.annotations as Record<string, string>;
  const p = o.platform as Record<string, unknown> | undefined;
  if (p && typeof p.os === 'string' && typeof p.architecture === 'string') {
    d.platform = { os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' && p.variant !== '' ? { variant: p.variant } : {}) };
  }
  return d;
}

/**
 * Parses a manifest body. The media type comes from the document when it names one, else from the response's
 * Content-Type, else from the shape (OCI allows omitting it).
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): Manifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ManifestError(`invalid manifest: not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ManifestError('invalid manifest: not a JSON object');
  const ct = (contentType ?? '').split(';')[0]?.trim() ?? '';
  let mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : ct;
  if (doc.schemaVersion === 1 || mediaType === MT_DOCKER_SCHEMA1 || mediaType === MT_DOCKER_SCHEMA1_SIGNED) {
    throw new ManifestError(
      '[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. ' +
        'Suggest the author of the image to upgrade the image to image manifest version 2, schema 2.',
    );
  }
  if (doc.schemaVersion !== 2) throw new ManifestError(`invalid manifest: unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  if (mediaType === '' || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
    mediaType = Array.isArray(doc.manifests) ? MT_OCI_INDEX : MT_OCI_MANIFEST;
  }
  if (mediaType === MT_DOCKER_LIST || mediaType === MT_OCI_INDEX) {
    if (!Array.isArray(doc.manifests)) throw new ManifestError('invalid manifest list: no manifests');
    return { kind: 'index', mediaType, manifests: doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`)) };
  }
  if (mediaType === MT_DOCKER_MANIFEST || mediaType === MT_OCI_MANIFEST) {
    const config = descriptor(doc.config, 'config');
    if (!Array.isArray(doc.layers)) throw new ManifestError('invalid manifest: no layers');
    const layers = doc.layers.map((l, i) => descriptor(l, `layers[${i}]`));
    for (const l of layers) {
      if (!LAYER_TYPES.has(l.mediaType)) throw new ManifestError(`unsupported layer media type ${JSON.stringify(l.mediaType)} of ${l.digest}`);
    }
    if (config.mediaType !== MT_DOCKER_CONFIG && config.mediaType !== MT_OCI_CONFIG && config.mediaType !== '') {
      throw new ManifestError(`unsupported config media type ${JSON.stringify(config.mediaType)}: not a container image`);
    }
    return { kind: 'image', mediaType, config, layers };
  }
  throw new ManifestError(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
}

/** Layer media type for a blob of the given compression in a Docker schema 2 manifest (dockerd's push). */
export function dockerLayerType(compression: 'gzip' | 'zstd' | 'none'): string {
  if (compression === 'gzip') return MT_DOCKER_LAYER_GZIP;
  if (compression === 'zstd') return MT_OCI_LAYER_ZSTD;
  return MT_DOCKER_LAYER;
}
