import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidParameterError } from '../errors.js';
import { ByteReader } from '../archive/byte-reader.js';
import { DigestMismatchError, isDigest } from '../content/content-store.js';
import { decompressStream, detectFileCompression } from '../archive/decompress.js';
import { cleanMemberName, LayerApplyError } from '../snapshots/layer-apply.js';
import { chainIdOf, LayerDigestError, LayerStore } from '../snapshots/layer-store.js';
import { readTar, TarFormatError } from '../archive/tar-reader.js';
import type { Logger } from '../util/logger.js';
import { parseImageConfig } from './image-config.js';
import type { ImageService } from './image-service.js';
import { familiarString, parseReference, withDefaultTag, type ImageReference } from './reference.js';

/** One line of a load progress stream (dockerd's JSONMessage). */
export type ProgressMessage = Record<string, unknown>;

/** A load that failed because of its input (reported to the client as such). */
export class ImageLoadError extends Error {}

interface StagedFile {
  file: string;
  digest: string;
  size: number;
}

interface ImagePlan {
  configDigest: string;
  configBytes: Buffer;
  layers: { file: StagedFile; mediaType: string; expectedBlobDigest?: string }[];
  tags: ImageReference[];
}

const MEDIA_TAR = 'application/vnd.docker.image.rootfs.diff.tar';
const MEDIA_TAR_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const MEDIA_OCI_TAR = 'application/vnd.oci.image.layer.v1.tar';

function mediaTypeFor(file: string): string {
  switch (detectFileCompression(file)) {
    case 'gzip':
      return MEDIA_TAR_GZIP;
    case 'zstd':
      return `${MEDIA_OCI_TAR}+zstd`;
    default:
      return MEDIA_TAR;
  }
}

function human(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 3 : v < 100 ? 2 : 1).replace(/\.?0+$/, '')}${units[i]}`;
}

/** dockerd's progress bar text: "[====>     ]  1.2MB/3.4MB". */
export function progressBar(current: number, total: number): string {
  const width = 50;
  const filled = total > 0 ? Math.min(width, Math.floor((current / total) * width)) : 0;
  const bar = filled >= width ? '='.repeat(width) : `${'='.repeat(filled)}>${' '.repeat(width - filled - 1)}`;
  return `[${bar}] ${human(current).padStart(8)}/${human(total)}`;
}

/** An image config is read whole: the same bound as a pull (a registry's config blob). */
export const MAX_ARCHIVE_CONFIG_BYTES = 8 * 1024 * 1024;
/** manifest.json, index.json and OCI manifests are read whole too; many images may share one manifest.json. */
export const MAX_ARCHIVE_JSON_BYTES = 32 * 1024 * 1024;

/** A staged member's bytes, refused before reading when the archive made it larger than `max`. */
function readStaged(f: StagedFile, name: string, max: number): Buffer {
  if (f.size > max) throw new ImageLoadError(`invalid archive: ${name} is too large (${f.size} bytes, at most ${max})`);
  return readFileSync(f.file);
}

function readJson(staged: Map<string, StagedFile>, name: string, what: string): unknown {
  const f = staged.get(name);
  if (!f) throw new ImageLoadError(`invalid archive: ${what} ${name} is missing`);
  const bytes = readStaged(f, name, MAX_ARCHIVE_JSON_BYTES);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ImageLoadError(`invalid archive: ${name} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * POST /images/load: docker-save archives (manifest.json + repositories, one or many images) and OCI
 * image layouts (index.json + oci-layout). All-or-nothing: every layer is verified and registered under a
 * temporary hold first; images and tags are then created together.
 */
export class ImageLoader {
  private readonly log: Logger;

  constructor(
    private readonly images: ImageService,
    private readonly dataRoot: string,
    log: Logger,
  ) {
    this.log = log.child({ sub: 'image-load' });
  }

  async load(body: Readable, quiet: boolean, emit: (m: ProgressMessage) => void): Promise<string[]> {
    const stageDir = join(this.dataRoot, 'blobs', 'tmp', `load-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2, 10)}`);
    mkdirSync(stageDir, { recursive: true, mode: 0o700 });
    const holder = LayerStore.tempHolder('load');
    const layers = this.images.layers;
    const content = this.images.content;
    const storedConfigs: string[] = [];
    const adoptedBlobs: string[] = [];
    const registered = new Set<string>();
    try {
      const staged = await this.stage(body, stageDir);
      const plans = staged.has('manifest.json') ? this.planDockerSave(staged) : staged.has('index.json') ? this.planOci(staged) : undefined;
      if (!plans) {
        throw new ImageLoadError('invalid archive: it holds neither manifest.json (docker save format) nor index.json (OCI image layout)');
      }
      if (plans.length === 0) throw new ImageLoadError('invalid archive: no images in manifest');
      // Layers first: verified, extracted once, held by this load.
      const tops: (string | null)[] = [];
      for (const plan of plans) {
        const config = parseImageConfig(plan.configBytes, plan.configDigest);
        const diffIds = config.rootfs.diff_ids;
        if (diffIds.length !== plan.layers.length) {
          throw new ImageLoadError(`invalid manifest, layers length mismatch: expected ${diffIds.length}, got ${plan.layers.length}`);
        }
        let parent: string | null = null;
        for (let i = 0; i < plan.layers.length; i++) {
          const l = plan.layers[i] as ImagePlan['layers'][number];
          if (l.expectedBlobDigest !== undefined && l.expectedBlobDigest !== l.file.digest) {
            throw new DigestMismatchError(`digest mismatch for layer blob: the manifest says ${l.expectedBlobDigest}, the archive holds ${l.file.digest}`);
          }
          const diffId = diffIds[i] as string;
          const known = layers.get(chainIdOf(parent, diffId));
          if (known) {
            // Extracted before (maybe from a differently compressed blob): keep that copy.
            layers.hold(holder, known.chainId);
            registered.add(known.chainId);
            parent = known.chainId;
            continue;
          }
          let blob = { digest: l.file.digest, size: l.file.size };
          if (!content.has(l.file.digest)) {
            blob = content.adopt(l.file.file, l.file.digest, l.file.size);
            adoptedBlobs.push(blob.digest);
          }
          const shortId = diffId.slice(7, 19);
          let last = 0;
          const rec = await layers.registerBlob(parent, { ...blob, mediaType: l.mediaType }, diffId, holder, quiet ? undefined : (n) => {
            if (n - last < 512 * 1024 && n < blob.size) return;
            last = n;
            emit({ status: 'Loading layer', progressDetail: { current: n, total: blob.size }, progress: progressBar(n, blob.size), id: shortId });
          });
          registered.add(rec.chainId);
          parent = rec.chainId;
        }
        tops.push(parent);
        if (!content.has(plan.configDigest)) {
          content.put(plan.configBytes, plan.configDigest);
          storedConfigs.push(plan.configDigest);
        }
      }
      // Then the images and their tags.
      const loaded: string[] = [];
      plans.forEach((plan, i) => {
        const { image, notices } = this.images.createImage(plan.configDigest, tops[i] ?? null, { holder, tags: plan.tags });
        for (const n of notices) emit({ stream: `${n}\n` });
        this.images.events.publish('image', 'load', image.id, { name: image.id });
        if (plan.tags.length === 0) {
          emit({ stream: `Loaded image ID: ${image.id}\n` });
          loaded.push(image.id);
        }
        for (const t of plan.tags) {
          emit({ stream: `Loaded image: ${familiarString(t)}\n` });
          loaded.push(familiarString(t));
        }
      });
      return loaded;
    } catch (e) {
      // Nothing half-registered: layers this load alone held go, configs it stored for no image go.
      layers.release(holder);
      for (const d of storedConfigs) if (!this.images.repo.get(d)) content.delete(d);
      for (const d of adoptedBlobs) if (layers.layerUsersOfBlob(d) === 0) content.delete(d);
      throw translate(e);
    } finally {
      layers.release(holder);
      rmSync(stageDir, { recursive: true, force: true });
    }
  }

  /** Unpacks the archive's files into stageDir (flat, hashed), resolving in-archive symlinks and hardlinks. */
  private async stage(body: Readable, stageDir: string): Promise<Map<string, StagedFile>> {
    const staged = new Map<string, StagedFile>();
    const links: [string, string][] = [];
    let n = 0;
    const { stream } = await decompressStream(body);
    try {
      for await (const entry of readTar(new ByteReader(stream))) {
        const h = entry.header;
        const name = cleanMemberName(h.name).join('/');
        if (h.type === 'file') {
          const file = join(stageDir, String(n++));
          const hash = createHash('sha256');
          const fd = openSync(file, 'wx', 0o600);
          let size = 0;
          try {
            for await (const chunk of entry.body) {
              hash.update(chunk);
              size += chunk.length;
              let off = 0;
              while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
            }
          } finally {
            closeSync(fd);
          }
          staged.set(name, { file, digest: `sha256:${hash.digest('hex')}`, size });
        } else if (h.type === 'symlink' || h.type === 'link') {
          const target = h.type === 'link' || h.linkname.startsWith('/') ? h.linkname : `${name.split('/').slice(0, -1).join('/')}/${h.linkname}`;
          links.push([name, cleanMemberName(target).join('/')]);
        }
      }
    } catch (e) {
      stream.destroy();
      body.destroy();
      throw e;
    }
    for (let pass = 0; pass < 8; pass++) {
      for (const [name, target] of links) {
        const f = staged.get(target);
        if (f && !staged.has(name)) staged.set(name, f);
      }
    }
    this.log.debug({ files: staged.size }, 'archive staged');
    return staged;
  }

  private planDockerSave(staged: Map<string, StagedFile>): ImagePlan[] {
    const manifest = readJson(staged, 'manifest.json', 'manifest');
    if (!Array.isArray(manifest)) throw new ImageLoadError('invalid archive: manifest.json must hold a list');
    return manifest.map((m: unknown, i) => {
      const e = m as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
      if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
        throw new ImageLoadError(`invalid archive: manifest.json entry ${i} needs Config and Layers`);
      }
      const cfg = staged.get(cleanMemberName(e.Config).join('/'));
      if (!cfg) throw new ImageLoadError(`invalid archive: config ${e.Config} is missing`);
      const configBytes = readStaged(cfg, e.Config, MAX_ARCHIVE_CONFIG_BYTES);
      const named = cleanMemberName(e.Config).join('/');
      const hexName = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(named)?.[1];
      if (hexName !== undefined && `sha256:${hexName}` !== cfg.digest) {
        throw new DigestMismatchError(`digest mismatch for image config ${e.Config}: its content hashes to ${cfg.digest}`);
      }
      const tags: ImageReference[] = [];
      for (const t of Array.isArray(e.RepoTags) ? e.RepoTags : []) {
        if (typeof t !== 'string') continue;
        let ref: ImageReference;
        try {
          ref = withDefaultTag(parseReference(t));
        } catch {
          throw new ImageLoadError(`invalid reference format: ${t}`);
        }
        if (ref.digest !== undefined || ref.tag === undefined) throw new ImageLoadError(`invalid tag ${t} in manifest.json`);
        tags.push(ref);
      }
      return {
        configDigest: cfg.digest,
        configBytes,
        tags,
        layers: (e.Layers as string[]).map((l) => {
          const file = staged.get(cleanMemberName(l).join('/'));
          if (!file) throw new ImageLoadError(`invalid archive: layer ${l} is missing`);
          const blobHex = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(cleanMemberName(l).join('/'))?.[1];
          return { file, mediaType: mediaTypeFor(file.file), ...(blobHex ? { expectedBlobDigest: `sha256:${blobHex}` } : {}) };
        }),
      };
    });
  }

  private blobOf(staged: Map<string, StagedFile>, digest: unknown, what: string): StagedFile {
    if (typeof digest !== 'string' || !isDigest(digest)) throw new ImageLoadError(`invalid archive: ${what} has an unsupported digest ${String(digest)}`);
    const f = staged.get(`blobs/sha256/${digest.slice(7)}`);
    if (!f) throw new ImageLoadError(`invalid archive: ${what} blob ${digest} is missing`);
    if (f.digest !== digest) throw new DigestMismatchError(`digest mismatch for ${what} blob: expected ${digest}, got ${f.digest}`);
    return f;
  }

  /** Follows index.json (through nested indexes, picking linux/amd64-like manifests) to image manifests. */
  private planOci(staged: Map<string, StagedFile>): ImagePlan[] {
    const index = readJson(staged, 'index.json', 'index') as { manifests?: unknown };
    if (!Array.isArray(index.manifests)) throw new ImageLoadError('invalid archive: index.json has no manifests');
    const plans = new Map<string, ImagePlan>();
    const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
    const visit = (desc: Record<string, unknown>, names: ImageReference[], depth: number): void => {
      if (depth > 4) throw new ImageLoadError('invalid archive: indexes nested too deeply');
      const mt = desc.mediaType;
      const blob = this.blobOf(staged, desc.digest, 'manifest');
      let doc: Record<string, unknown>;
      const bytes = readStaged(blob, `manifest ${String(desc.digest)}`, MAX_ARCHIVE_JSON_BYTES);
      try {
        doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new ImageLoadError(`invalid archive: manifest ${String(desc.digest)} is not JSON: ${(e as Error).message}`);
      }
      const docType = (doc.mediaType as string | undefined) ?? mt;
      if (Array.isArray(doc.manifests) || docType === 'application/vnd.oci.image.index.v1+json' || docType === 'application/vnd.docker.distribution.manifest.list.v2+json') {
        const ms = (doc.manifests as Record<string, unknown>[] | undefined) ?? [];
        const platformOk = (m: Record<string, unknown>): boolean => {
          const p = m.platform as { os?: string; architecture?: string } | undefined;
          return !p || (p.os === 'linux' && p.architecture === arch);
        };
        const pick = ms.find((m) => platformOk(m) && staged.has(`blobs/sha256/${String(m.digest).slice(7)}`));
        if (!pick) throw new ImageLoadError(`invalid archive: no manifest for linux/${arch} in ${String(desc.digest)}`);
        visit(pick, names, depth + 1);
        return;
      }
      const config = doc.config as Record<string, unknown> | undefined;
      const layersDesc = doc.layers as Record<string, unknown>[] | undefined;
      if (!config || !Array.isArray(layersDesc)) throw new ImageLoadError(`invalid archive: ${String(desc.digest)} is not an image manifest`);
      const cfg = this.blobOf(staged, config.digest, 'config');
      const existing = plans.get(cfg.digest);
      if (existing) {
        for (const n of names) if (!existing.tags.some((t) => familiarString(t) === familiarString(n))) existing.tags.push(n);
        return;
      }
      plans.set(cfg.digest, {
        configDigest: cfg.digest,
        configBytes: readStaged(cfg, `config ${cfg.digest}`, MAX_ARCHIVE_CONFIG_BYTES),
        tags: [...names],
        layers: layersDesc.map((l) => {
          const file = this.blobOf(staged, l.digest, 'layer');
          if (typeof l.size === 'number' && l.size !== file.size) throw new ImageLoadError(`invalid archive: layer ${String(l.digest)} has size ${file.size}, the manifest says ${l.size}`);
          return { file, mediaType: typeof l.mediaType === 'string' ? l.mediaType : mediaTypeFor(file.file) };
        }),
      });
    };
    for (const d of index.manifests as Record<string, unknown>[]) {
      const ann = (d.annotations ?? {}) as Record<string, string>;
      const names: ImageReference[] = [];
      const full = ann['io.containerd.image.name'];
      const refName = ann['org.opencontainers.image.ref.name'];
      const candidate = full ?? (refName && !/^[\w][\w.-]{0,127}$/.test(refName) ? refName : undefined);
      if (candidate !== undefined) {
        try {
          const r = withDefaultTag(parseReference(candidate));
          if (r.digest === undefined) names.push(r);
        } catch {
          this.log.warn({ name: candidate }, 'ignoring an invalid image name annotation');
        }
      }
      visit(d, names, 0);
    }
    return [...plans.values()];
  }
}

function translate(e: unknown): Error {
  if (e instanceof ImageLoadError || e instanceof LayerApplyError || e instanceof LayerDigestError || e instanceof DigestMismatchError || e instanceof InvalidParameterError) return e as Error;
  if (e instanceof TarFormatError) return new ImageLoadError(`invalid archive: ${e.message}`);
  const msg = (e as Error).message ?? String(e);
  if (/unexpected end of file|incorrect header check|invalid (block type|distance|stored block)|decompression failed/.test(msg)) {
    return new ImageLoadError(`invalid archive: the compressed stream is corrupt or truncated (${msg})`);
  }
  return e as Error;
}

