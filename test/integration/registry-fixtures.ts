import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { layerTar, sha256, FIXTURE_MTIME, type LayerEntry } from '../helpers/image-builder.js';
import type { TestRegistry } from '../helpers/registry.js';

export type Compression = 'gzip' | 'zstd' | 'none';

export interface RawImage {
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
  configDigest: string;
  layerDigests: string[];
  diffIds: string[];
}

function compress(tar: Buffer, c: Compression): Buffer {
  if (c === 'gzip') return gzipSync(tar);
  if (c === 'zstd') return execFileSync('zstd', ['-q', '-c', '-3'], { input: tar, maxBuffer: 1 << 30 });
  return tar;
}

function layerType(c: Compression, oci: boolean): string {
  if (oci) return c === 'gzip' ? 'application/vnd.oci.image.layer.v1.tar+gzip' : c === 'zstd' ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.oci.image.layer.v1.tar';
  return c === 'gzip' ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.docker.image.rootfs.diff.tar';
}

/** Uploads a blob with the registry's monolithic POST + PUT flow. */
export async function uploadBlob(reg: TestRegistry, repo: string, data: Buffer, auth: Record<string, string> = {}): Promise<string> {
  const digest = `sha256:${sha256(data)}`;
  const start = await request(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth });
  await start.body.dump();
  if (start.statusCode !== 202) throw new Error(`upload start: ${start.statusCode}`);
  const loc = new URL(String(start.headers.location), reg.url);
  loc.searchParams.set('digest', digest);
  const put = await request(loc.toString(), { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: data });
  await put.body.dump();
  if (put.statusCode !== 201) throw new Error(`upload put: ${put.statusCode}`);
  return digest;
}

export async function putManifest(reg: TestRegistry, repo: string, ref: string, body: Buffer, mediaType: string, auth: Record<string, string> = {}): Promise<string> {
  const r = await request(`${reg.url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', headers: { ...auth, 'content-type': mediaType }, body });
  const text = await r.body.text();
  if (r.statusCode !== 201) throw new Error(`manifest put ${repo}:${ref}: ${r.statusCode} ${text}`);
  return String(r.headers['docker-content-digest']);
}

/**
 * Builds an image from layer entry lists, compresses each layer as asked, and pushes it with raw distribution
 * API calls (no Berth involved). `oci` picks OCI media types for the manifest and config.
 */
export async function rawPushImage(
  reg: TestRegistry,
  repo: string,
  tag: string | undefined,
  layers: { entries: LayerEntry[]; compression: Compression }[],
  opts: { oci?: boolean; arch?: string; variant?: string; auth?: Record<string, string>; cmd?: string[] } = {},
): Promise<RawImage> {
  const oci = opts.oci ?? false;
  const tars = await Promise.all(layers.map((l) => layerTar(l.entries)));
  const diffIds = tars.map((t) => `sha256:${sha256(t)}`);
  const blobs = tars.map((t, i) => compress(t, (layers[i] as { compression: Compression }).compression));
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.arch ?? 'amd64',
      ...(opts.variant ? { variant: opts.variant } : {}),
      os: 'linux',
      created: FIXTURE_MTIME.toISOString(),
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: opts.cmd ?? ['sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: tars.map((_, i) => ({ created: FIXTURE_MTIME.toISOString(), created_by: `raw layer ${i}` })),
    }),
  );
  const layerDigests: string[] = [];
  for (const b of blobs) layerDigests.push(await uploadBlob(reg, repo, b, opts.auth));
  const configDigest = await uploadBlob(reg, repo, config, opts.auth);
  const mediaType = oci ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json', size: config.length, digest: configDigest },
      layers: blobs.map((b, i) => ({ mediaType: layerType((layers[i] as { compression: Compression }).compression, oci), size: b.length, digest: layerDigests[i] })),
    }),
  );
  const manifestDigest = `sha256:${sha256(manifest)}`;
  await putManifest(reg, repo, tag ?? manifestDigest, manifest, mediaType, opts.auth);
  return { manifest, manifestDigest, mediaType, configDigest, layerDigests, diffIds };
}

/** One file layer. */
export function fileLayer(path: string, content: string | Buffer): LayerEntry[] {
  const parts = path.split('/');
  const dirs: LayerEntry[] = parts.slice(0, -1).map((_, i) => ({ path: parts.slice(0, i + 1).join('/'), type: 'directory' as const }));
  return [...dirs, { path, type: 'file', content, mode: 0o644 }];
}

/** Parses a JSON-lines progress stream. */
export function progressLines(text: string): Record<string, any>[] {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, any>);
}
