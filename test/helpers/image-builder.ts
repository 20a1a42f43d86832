import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pack, type Header } from 'tar-stream';

/** One entry of a test layer; paths are relative ("bin/sh"), directories listed before their contents. */
export interface LayerEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device' | 'block-device';
  mode?: number;
  uid?: number;
  gid?: number;
  content?: Buffer | string;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  mtime?: Date;
  pax?: Record<string, string>;
}

/** Fixed mtime so fixture images have stable IDs. */
export const FIXTURE_MTIME = new Date('2024-01-01T00:00:00Z');

export async function layerTar(entries: readonly LayerEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', () => resolve());
    p.on('error', reject);
  });
  for (const e of entries) {
    const header = {
      name: e.type === 'directory' && !e.path.endsWith('/') ? `${e.path}/` : e.path,
      type: e.type,
      mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? FIXTURE_MTIME,
    } as Header;
    if (e.linkname !== undefined) header.linkname = e.linkname;
    if (e.devmajor !== undefined) header.devmajor = e.devmajor;
    if (e.devminor !== undefined) header.devminor = e.devminor;
    if (e.pax !== undefined) header.pax = e.pax;
    const content = e.type === 'file' ? Buffer.from(e.content ?? '') : undefined;
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      p.entry(header, content ?? Buffer.alloc(0), cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ImageSpec {
  layers: LayerEntry[][];
  repoTags: string[];
  config?: Record<string, unknown>;
  created?: string;
}

/** A `docker save` (classic manifest.json + repositories) archive of the given layers. */
export async function dockerSaveArchive(images: readonly ImageSpec[]): Promise<Buffer> {
  const files: { name: string; data: Buffer }[] = [];
  const manifest: unknown[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const seen = new Set<string>();
  for (const img of images) {
    const layerTars = await Promise.all(img.layers.map((l) => layerTar(l)));
    const diffIds = layerTars.map((t) => `sha256:${sha256(t)}`);
    const created = img.created ?? FIXTURE_MTIME.toISOString();
    const config = {
      architecture: 'amd64',
      os: 'linux',
      created,
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], ...img.config },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layerTars.map((_, i) => ({ created, created_by: `test layer ${i}` })),
    };
    const configJson = Buffer.from(JSON.stringify(config));
    const configHex = sha256(configJson);
    const layerPaths: string[] = [];
    let parent = '';
    layerTars.forEach((tar, i) => {
      // Legacy v1 layer IDs: any stable hex per layer position is accepted by loaders.
      const id = sha256(`${parent}\n${diffIds[i]}`);
      parent = id;
      layerPaths.push(`${id}/layer.tar`);
      if (!seen.has(id)) {
        seen.add(id);
        files.push({ name: `${id}/VERSION`, data: Buffer.from('1.0') });
        files.push({ name: `${id}/layer.tar`, data: tar });
        files.push({ name: `${id}/json`, data: Buffer.from(JSON.stringify({ id })) });
      }
    });
    files.push({ name: `${configHex}.json`, data: configJson });
    manifest.push({ Config: `${configHex}.json`, RepoTags: img.repoTags, Layers: layerPaths });
    for (const tag of img.repoTags) {
      const i = tag.lastIndexOf(':');
      const repo = tag.slice(0, i);
      (repositories[repo] ??= {})[tag.slice(i + 1)] = parent;
    }
  }
  files.push({ name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) });
  files.push({ name: 'repositories', data: Buffer.from(JSON.stringify(repositories)) });
  return layerTar(files.map((f) => ({ path: f.name, type: 'file', content: f.data })));
}

/** Writes entries to a directory (for tests that need a rootfs without an image store). Needs root for devices. */
export function materialize(entries: readonly LayerEntry[], root: string): void {
  for (const e of entries) {
    const target = join(root, e.path);
    mkdirSync(dirname(target), { recursive: true });
    switch (e.type) {
      case 'directory':
        mkdirSync(target, { recursive: true });
        chmodSync(target, e.mode ?? 0o755);
        break;
      case 'file':
        writeFileSync(target, e.content ?? '');
        chmodSync(target, e.mode ?? 0o644);
        break;
      case 'symlink':
        symlinkSync(e.linkname ?? '', target);
        break;
      default:
        throw new Error(`materialize: ${e.type} entries are not supported`);
    }
  }
}
