import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Pack } from 'tar-stream';
import type { ImageRecord, ImageService } from './image-service.js';
import { parseReference } from './reference.js';

const FIXED_MTIME = new Date(0);
const MT_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const MT_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

function ociLayerType(mediaType: string): string {
  if (mediaType.endsWith('gzip')) return 'application/vnd.oci.image.layer.v1.tar+gzip';
  if (mediaType.endsWith('zstd')) return 'application/vnd.oci.image.layer.v1.tar+zstd';
  return 'application/vnd.oci.image.layer.v1.tar';
}

function addBuffer(p: Pack, name: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    p.entry({ name, size: data.length, mode: 0o644, mtime: FIXED_MTIME, type: 'file' }, data, (err) => (err ? reject(err) : resolve()));
  });
}

function addDir(p: Pack, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    p.entry({ name, type: 'directory', mode: 0o755, mtime: FIXED_MTIME }, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * GET /images/get: the format of `docker save` since Docker 25 — an OCI image layout (oci-layout, index.json,
 * blobs/sha256/…) that also carries the classic manifest.json and repositories, so docker load (old and new),
 * skopeo's docker-archive: and oci-archive: transports all read it. Layer blobs are the stored originals,
 * so image IDs and layer digests survive a round trip.
 */
export async function saveImages(
  images: ImageService,
  selected: readonly { image: ImageRecord; tags: string[] }[],
  out: Writable,
): Promise<void> {
  const p = pack();
  const done = pipeline(p, out);
  try {
    await addDir(p, 'blobs/');
    await addDir(p, 'blobs/sha256/');
    const written = new Set<string>();
    const manifestJson: Record<string, unknown>[] = [];
    const indexManifests: Record<string, unknown>[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const { image, tags } of selected) {
      const layers = image.chainId ? images.layers.chain(image.chainId) : [];
      const layerDescs: Record<string, unknown>[] = [];
      for (const l of layers) {
        if (!l.blob || !images.content.has(l.blob.digest)) {
          throw new Error(`layer ${l.chainId} of image ${image.id} has no stored blob; it cannot be saved`);
        }
        const digest = l.blob.digest;
        const size = images.content.size(digest);
        layerDescs.push({ mediaType: ociLayerType(l.blob.mediaType), digest, size });
        if (!written.has(digest)) {
          written.add(digest);
          await new Promise<void>((resolve, reject) => {
            const entry = p.entry({ name: `blobs/sha256/${digest.slice(7)}`, size, mode: 0o644, mtime: FIXED_MTIME, type: 'file' }, (err) =>
              err ? reject(err) : resolve(),
            );
            pipeline(images.content.createReadStream(digest), entry).catch(reject);
          });
        }
      }
      const configBytes = images.content.read(image.id);
      if (!written.has(image.id)) {
        written.add(image.id);
        await addBuffer(p, `blobs/sha256/${image.id.slice(7)}`, configBytes);
      }
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT_OCI_MANIFEST,
          config: { mediaType: MT_OCI_CONFIG, digest: image.id, size: configBytes.length },
          layers: layerDescs,
        }),
      );
      const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
      if (!written.has(manifestDigest)) {
        written.add(manifestDigest);
        await addBuffer(p, `blobs/sha256/${manifestDigest.slice(7)}`, manifest);
      }
      const desc = { mediaType: MT_OCI_MANIFEST, digest: manifestDigest, size: manifest.length };
      if (tags.length === 0) indexManifests.push(desc);
      for (const t of tags) {
        const ref = parseReference(t);
        indexManifests.push({
          ...desc,
          annotations: {
            'io.containerd.image.name': `${ref.domain}/${ref.path}:${ref.tag ?? 'latest'}`,
            'org.opencontainers.image.ref.name': ref.tag ?? 'latest',
          },
        });
        const i = t.lastIndexOf(':');
        const top = layers[layers.length - 1];
        (repositories[t.slice(0, i)] ??= {})[t.slice(i + 1)] = top?.blob?.digest.slice(7) ?? image.id.slice(7);
      }
      manifestJson.push({
        Config: `blobs/sha256/${image.id.slice(7)}`,
        RepoTags: tags.length > 0 ? tags : null,
        Layers: layerDescs.map((d) => `blobs/sha256/${(d.digest as string).slice(7)}`),
      });
    }
    await addBuffer(p, 'index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_INDEX, manifests: indexManifests })));
    await addBuffer(p, 'manifest.json', Buffer.from(JSON.stringify(manifestJson)));
    await addBuffer(p, 'oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    if (Object.keys(repositories).length > 0) await addBuffer(p, 'repositories', Buffer.from(JSON.stringify(repositories)));
    p.finalize();
  } catch (e) {
    p.destroy(e as Error);
    await done.catch(() => undefined);
    throw e;
  }
  await done;
}

