import { gzipSync } from 'node:zlib';
import { layerTar, sha256, FIXTURE_MTIME, type LayerEntry } from '../helpers/image-builder.js';

/** An OCI image layout archive (oci-layout, index.json, blobs/sha256/…) with gzip layers. */
export async function ociLayoutArchive(
  images: { layers: LayerEntry[][]; name?: string; refName?: string; config?: Record<string, unknown> }[],
): Promise<Buffer> {
  const blobs = new Map<string, Buffer>();
  const put = (data: Buffer): { digest: string; size: number } => {
    const digest = `sha256:${sha256(data)}`;
    blobs.set(digest, data);
    return { digest, size: data.length };
  };
  const manifests: Record<string, unknown>[] = [];
  for (const img of images) {
    const tars = await Promise.all(img.layers.map((l) => layerTar(l)));
    const layers = tars.map((t) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(gzipSync(t)) }));
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: FIXTURE_MTIME.toISOString(),
        config: { Cmd: ['sh'], ...img.config },
        rootfs: { type: 'layers', diff_ids: tars.map((t) => `sha256:${sha256(t)}`) },
        history: tars.map((_, i) => ({ created: FIXTURE_MTIME.toISOString(), created_by: `oci layer ${i}` })),
      }),
    );
    const cfg = put(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
        layers,
      }),
    );
    const m = put(manifest);
    const annotations: Record<string, string> = {};
    if (img.name) annotations['io.containerd.image.name'] = img.name;
    if (img.refName) annotations['org.opencontainers.image.ref.name'] = img.refName;
    manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, ...(Object.keys(annotations).length ? { annotations } : {}) });
  }
  const entries: LayerEntry[] = [
    { path: 'oci-layout', type: 'file', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    { path: 'index.json', type: 'file', content: JSON.stringify({ schemaVersion: 2, manifests }) },
    { path: 'blobs', type: 'directory' },
    { path: 'blobs/sha256', type: 'directory' },
  ];
  for (const [d, data] of blobs) entries.push({ path: `blobs/sha256/${d.slice(7)}`, type: 'file', content: data });
  return layerTar(entries);
}

/** The three-layer image of the issue: a deleted directory, an opaque directory, a hardlink, a symlink, a fifo, a setuid file. */
export const threeLayers: LayerEntry[][] = [
  [
    { path: 'etc', type: 'directory' },
    { path: 'etc/keep', type: 'file', content: 'keep' },
    { path: 'old', type: 'directory' },
    { path: 'old/file', type: 'file', content: 'old' },
    { path: 'cfg', type: 'directory' },
    { path: 'cfg/stale', type: 'file', content: 'stale' },
  ],
  [
    { path: '.wh.old', type: 'file' },
    { path: 'cfg', type: 'directory', mode: 0o750 },
    { path: 'cfg/.wh..wh..opq', type: 'file' },
    { path: 'cfg/fresh', type: 'file', content: 'fresh' },
  ],
  [
    { path: 'bin', type: 'directory' },
    { path: 'bin/tool', type: 'file', mode: 0o4755, content: 'tool' },
    { path: 'bin/tool-link', type: 'link', linkname: 'bin/tool' },
    { path: 'bin/sym', type: 'symlink', linkname: 'tool' },
    { path: 'run', type: 'directory' },
    { path: 'run/fifo', type: 'fifo', mode: 0o600 },
  ],
];

/** A docker-save archive from raw layer blobs (any bytes), with diff IDs that may be deliberately wrong. */
export async function rawDockerSave(layerBlobs: Buffer[], diffIds: string[], repoTags: string[]): Promise<Buffer> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', created: FIXTURE_MTIME.toISOString(), config: {}, rootfs: { type: 'layers', diff_ids: diffIds } }),
  );
  const cfgName = `${sha256(config)}.json`;
  const files: LayerEntry[] = layerBlobs.map((b, i) => ({ path: `l${i}/layer.tar`, type: 'file', content: b }));
  files.push({ path: cfgName, type: 'file', content: config });
  files.push({ path: 'manifest.json', type: 'file', content: JSON.stringify([{ Config: cfgName, RepoTags: repoTags, Layers: layerBlobs.map((_, i) => `l${i}/layer.tar`) }]) });
  return layerTar(files);
}
