// The classic builder (POST /build): the build service receives the context, runs a build (build-run.ts
// dispatches the Dockerfile's stages step by step: RUN in step-run.ts, COPY/ADD in step-copy.ts, metadata
// instructions as history entries without layers), tags the result, and owns the build cache (probe, record,
// docker system df, prune) and base image pulls.

import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { BerthError, InvalidParameterError, errorMessage } from '../errors.js';
import type { ContainerService } from '../containers/container-service.js';
import type { ImageRecord, ImageService } from '../images/image-service.js';
import { familiarString, parseReference, withDefaultTag, type ImageReference } from '../images/reference.js';
import type { AuthConfig } from '../registry/auth-config.js';
import { parsePlatform } from '../registry/platform.js';
import type { RegistryService } from '../registry/registry-service.js';
import { LayerStore } from '../snapshots/layer-store.js';
import { removeLeftoverMounts } from '../snapshots/overlay.js';
import type { Logger } from '../util/logger.js';
import { nowNano, rfc3339Nano } from '../util/time.js';
import type { BuildCacheRepo } from './build-cache.js';
import type { ChecksumMemo } from './build-context.js';
import { short } from './run-config.js';

export type BuildEmit = (m: Record<string, unknown>) => void;

export interface BuildOptions {
  dockerfile: string;
  tags: string[];
  noCache: boolean;
  /** Remove intermediate containers after a successful step (and, as Berth does, after a failed one). */
  rm: boolean;
  forceRm: boolean;
  pull: boolean;
  buildArgs: Map<string, string | null>;
  labels: Record<string, string>;
  networkMode: string;
  target: string;
  cacheFrom: string[];
  memory?: number;
  memorySwap?: number;
  cpuShares?: number;
  cpuSetCpus?: string;
  cpuSetMems?: string;
  cpuPeriod?: number;
  cpuQuota?: number;
  shmSize?: number;
  cgroupParent?: string;
  extraHosts: string[];
  platform: string;
  remote: string;
  authConfigs: Record<string, AuthConfig>;
  /** Emit `{"aux":{"ID":…}}` (API ≥ 1.30). */
  wantAux: boolean;
}

export interface BuildServiceDeps {
  dataRoot: string;
  execRoot: string;
  images: ImageService;
  containers: ContainerService;
  registry: RegistryService;
  cache: BuildCacheRepo;
  log: Logger;
}

/** A build failure reported in the stream with dockerd's text (and the RUN exit code). */
export class BuildStepError extends BerthError {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
  }
}

/** The build engine (Dockerfile parsing, the steps, context upload: most of src/build), loaded by the first build. */
interface BuildEngine {
  BuildRun: typeof import('./build-run.js').BuildRun;
  receiveContext: typeof import('./context-upload.js').receiveContext;
  readDockerfile: typeof import('./build-context.js').readDockerfile;
  removeIgnoredBuildFiles: typeof import('./build-context.js').removeIgnoredBuildFiles;
  memo: ChecksumMemo;
}

export class BuildService {
  private readonly log: Logger;
  private engine: Promise<BuildEngine> | undefined;
  /**
   * COPY/ADD source checksums by (context tar digest, Dockerfile name, sources): a rebuild of an unchanged context
   * probes the cache of its COPY steps without unpacking and re-hashing the context.
   */
  readonly contextSums = new Map<string, string>();
  private readonly workRoot: string;

  constructor(private readonly d: BuildServiceDeps) {
    this.log = d.log;
    this.workRoot = join(d.dataRoot, 'build');
    // step views a previous daemon left mounted when it stopped mid-build
    removeLeftoverMounts(join(d.execRoot, 'build'), this.log, 'build view');
    rmSync(this.workRoot, { recursive: true, force: true });
    mkdirSync(this.workRoot, { recursive: true, mode: 0o700 });
  }

  /** Runs one build; returns the final image ID. Progress goes to `emit`; failures throw (BuildStepError for step errors). */
  async build(body: Readable | undefined, o: BuildOptions, emit: BuildEmit, signal: AbortSignal): Promise<string> {
    const tags = this.sanitizeTags(o.tags);
    const engine = await this.loadEngine();
    const run = new engine.BuildRun(this, this.d, o, emit, signal, join(this.workRoot, randomBytes(8).toString('hex')), LayerStore.tempHolder('build'), engine.memo);
    let disposeContext: (() => void) | undefined;
    try {
      const contextDir = join(run.dir, 'context');
      const { dockerfile, unpack, digest, dispose } = await this.prepareContext(engine, body, o, contextDir, () => run.workDir(), emit);
      disposeContext = dispose;
      if (digest !== undefined) run.contextKey = `${digest}\0${o.dockerfile}`;
      const imageId = await run.run(contextDir, dockerfile, unpack);
      emit({ stream: `Successfully built ${short(imageId)}\n` });
      for (const t of tags) {
        this.d.images.tag(imageId, familiarString(t), undefined);
        emit({ stream: `Successfully tagged ${familiarString(t)}\n` });
      }
      return imageId;
    } finally {
      disposeContext?.();
      await run.cleanup();
    }
  }

  /** A daemon that never builds never loads the engine (~100 kB of code, resident once loaded). */
  private loadEngine(): Promise<BuildEngine> {
    this.engine ??= Promise.all([import('./build-run.js'), import('./context-upload.js'), import('./build-context.js')]).then(([run, upload, context]) => ({
      BuildRun: run.BuildRun,
      receiveContext: upload.receiveContext,
      readDockerfile: context.readDockerfile,
      removeIgnoredBuildFiles: context.removeIgnoredBuildFiles,
      memo: new context.ChecksumMemo(),
    }));
    return this.engine;
  }

  private sanitizeTags(tags: readonly string[]): ImageReference[] {
    const out: ImageReference[] = [];
    for (const t of tags) {
      if (t === '') continue;
      let ref: ImageReference;
      try {
        ref = parseReference(t);
      } catch {
        throw new InvalidParameterError(`invalid reference format: repository name (${t}) must be lowercase`);
      }
      if (ref.digest !== undefined) throw new InvalidParameterError('build tag cannot contain a digest');
      out.push(withDefaultTag(ref));
    }
    return out;
  }

  /**
   * The Dockerfile, and how to get the context tree: an uploaded tar is received (hashed, scanned for the
   * Dockerfile) and unpacked only the first time a step reads the context (a build that never COPYs from it, or
   * whose COPY steps are all cached, never unpacks it).
   */
  private async prepareContext(
    { receiveContext, readDockerfile, removeIgnoredBuildFiles }: BuildEngine,
    body: Readable | undefined,
    o: BuildOptions,
    contextDir: string,
    workDir: () => string,
    emit: BuildEmit,
  ): Promise<{ dockerfile: string; unpack?: () => Promise<void>; digest?: string; dispose?: () => void }> {
    const name = o.dockerfile || 'Dockerfile';
    if (o.remote !== '') {
      workDir();
      const { fetchRemoteContext } = await import('./remote-context.js');
      const r = await fetchRemoteContext(o.remote, contextDir, this.log, emit);
      if (r.dockerfileText !== undefined) return { dockerfile: r.dockerfileText };
      return { dockerfile: readDockerfile(contextDir, name).text };
    }
    if (!body) throw new InvalidParameterError('the build context is missing');
    const ctx = await receiveContext(body, name, () => join(workDir(), 'context.tar'));
    const found = ctx.found;
    if (!found) {
      workDir();
      await ctx.unpack(contextDir);
      return { dockerfile: readDockerfile(contextDir, name).text };
    }
    return {
      dockerfile: found.text,
      digest: ctx.digest,
      dispose: ctx.dispose,
      unpack: async () => {
        workDir();
        await ctx.unpack(contextDir);
        removeIgnoredBuildFiles(contextDir, found.ignore, found.name);
      },
    };
  }

  // ---- cache -------------------------------------------------------------------------------------------

  /** The image cached for a step; its use is added to `used` (recorded in one write when the build ends). */
  probe(key: string, cacheFrom: Set<string> | undefined, used: [key: string, imageId: string][]): ImageRecord | undefined {
    for (const row of this.d.cache.get(key)) {
      const img = this.d.images.get(row.image_id);
      if (!img) {
        this.d.cache.delete(key, row.image_id);
        continue;
      }
      if (cacheFrom && !cacheFrom.has(row.image_id)) continue;
      used.push([key, row.image_id]);
      return img;
    }
    return undefined;
  }

  record(key: string, parent: string, imageId: string, description: string, size: number): void {
    const now = nowNano();
    this.d.cache.put({ key, parent, image_id: imageId, description, size, created_nano: now, last_used_nano: now });
  }

  /** `docker system df`'s BuildCache records. */
  diskUsage(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const r of this.d.cache.all()) {
      if (!this.d.images.get(r.image_id)) continue;
      out.push({
        ID: r.key.slice(0, 25),
        Parents: r.parent ? [short(r.parent)] : null,
        Type: 'regular',
        Description: r.description,
        InUse: false,
        Shared: false,
        Size: r.size,
        CreatedAt: rfc3339Nano(r.created_nano),
        LastUsedAt: rfc3339Nano(r.last_used_nano),
        UsageCount: r.usage_count,
      });
    }
    return out;
  }

  /** POST /build/prune: drops cache entries (all, or older than `until`), keeping `keepStorage` bytes of the newest. */
  prune(o: { all: boolean; untilNano?: bigint; keepStorage: number }): { CachesDeleted: string[] | null; SpaceReclaimed: number } {
    const rows = this.d.cache.all().sort((a, b) => (a.last_used_nano < b.last_used_nano ? 1 : -1));
    let kept = 0;
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const r of rows) {
      const old = o.untilNano === undefined || r.last_used_nano < o.untilNano;
      if (!old) continue;
      if (o.keepStorage > 0 && kept + r.size <= o.keepStorage) {
        kept += r.size;
        continue;
      }
      this.d.cache.delete(r.key, r.image_id);
      deleted.push(r.key.slice(0, 25));
      const img = this.d.images.get(r.image_id);
      if (img && img.tags.length === 0 && img.digests.length === 0) {
        try {
          const items = this.d.images.remove(img.id, { force: false, noprune: true });
          if (items.some((i) => i.Deleted === img.id)) reclaimed += r.size;
        } catch {
          // still a parent of another image or used by a container: only its cache entry goes
        }
      }
    }
    return { CachesDeleted: deleted.length > 0 ? deleted : null, SpaceReclaimed: reclaimed };
  }

  // ---- base images --------------------------------------------------------------------------------------

  async baseImage(name: string, pull: boolean, platform: string, auths: Record<string, AuthConfig>, emit: BuildEmit): Promise<ImageRecord> {
    const local = pull ? undefined : this.d.images.tryResolve(name);
    if (local) return local;
    let ref: ImageReference;
    try {
      ref = withDefaultTag(parseReference(name));
    } catch (e) {
      throw new InvalidParameterError(errorMessage(e));
    }
    const host = ref.domain;
    const auth =
      auths[host] ?? auths[`https://${host}`] ?? (host === 'docker.io' ? auths['https://index.docker.io/v1/'] ?? auths['index.docker.io'] : undefined) ?? {};
    try {
      await this.d.registry.pull(familiarString(ref), undefined, auth, platform ? parsePlatform(platform) : undefined, emit);
    } catch (e) {
      const fallback = this.d.images.tryResolve(name);
      if (fallback && pull) return fallback;
      throw e;
    }
    return this.d.images.resolve(name);
  }
}
