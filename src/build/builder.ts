// The classic builder (POST /build): dispatches a Dockerfile's stages step by step, each step producing an
// image (RUN in a real container whose upper dir becomes a layer; COPY/ADD/WORKDIR through an overlay view;
// metadata instructions as history entries without layers), with dockerd's progress stream and build cache.

import { randomBytes } from 'node:crypto';
import { constants as C, createReadStream, createWriteStream, mkdirSync, openSync, readdirSync, rmdirSync, rmSync, utimesSync } from 'node:fs';
import { lchown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, InvalidParameterError, NotFoundError, errorMessage } from '../errors.js';
import { ArchiveExtractor } from '../containers/archive.js';
import { ConfinedRoot, fdPath, type Resolved } from '../containers/confined-root.js';
import type { ContainerService } from '../containers/container-service.js';
import { containerPaths } from '../containers/paths.js';
import { tarTree } from '../containers/tree-tar.js';
import { readAccountFile } from '../containers/user-resolve.js';
import type { ContainerConfigJson, HistoryJson, ImageConfigJson } from '../images/image-config.js';
import type { ImageRecord, ImageService } from '../images/image-service.js';
import { familiarString, parseReference, withDefaultTag, type ImageReference } from '../images/reference.js';
import type { AuthConfig } from '../registry/auth-config.js';
import { parsePlatform } from '../registry/platform.js';
import type { RegistryService } from '../registry/registry-service.js';
import { decompressStream } from '../archive/decompress.js';
import { LayerStore } from '../snapshots/layer-store.js';
import { MNT_DETACH, nativeAddon } from '../native.js';
import type { Logger } from '../util/logger.js';
import { nowNano, rfc3339Nano } from '../util/time.js';
import { BERTH_VERSION } from '../version.js';
import { BuildArgs } from './build-args.js';
import { stableHash, type BuildCacheRepo } from './build-cache.js';
import {
  ChecksumMemo,
  entryChecksum,
  globContext,
  hasWildcards,
  readDockerfile,
  removeIgnoredBuildFiles,
} from './build-context.js';
import { receiveContext } from './context-upload.js';
import { cleanPath } from './dockerignore.js';
import { parseDockerfile } from './dockerfile-parser.js';
import { parseInstruction, parseStages, type Command, type Stage } from './instructions.js';
import { envFromList, ShellLex, type EnvLookup } from './shell-lex.js';
import { commitUpperDir, StepRootfs, type StepLayer } from './step-rootfs.js';

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

const DEFAULT_SHELL = ['/bin/sh', '-c'];
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

interface StageResult {
  imageId: string;
  chainId: string | null;
}

interface State {
  runConfig: ContainerConfigJson;
  imageId: string;
  chainId: string | null;
  os: string;
  arch: string;
  variant?: string;
  maintainer: string;
  cmdSet: boolean;
  buildArgs: BuildArgs;
  stageName: string;
}

/** dockerd's copyRunConfig: a deep enough copy of the config. */
function copyConfig(c: ContainerConfigJson): ContainerConfigJson {
  return JSON.parse(JSON.stringify(c)) as ContainerConfigJson;
}

function shellOf(c: ContainerConfigJson): string[] {
  return c.Shell && c.Shell.length > 0 ? [...c.Shell] : [...DEFAULT_SHELL];
}

/** Go's %q of a []string: ["a" "b"]. */
function goQuoteSlice(a: readonly string[] | null | undefined): string {
  return `[${(a ?? []).map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** Go's %v of a []string: [a b]. */
function goSlice(a: readonly string[]): string {
  return `[${a.join(' ')}]`;
}

function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const trim = (v: number): string => String(Number(v.toFixed(9)));
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${trim(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trim(ns / 1e6)}ms`;
  const h = Math.floor(ns / 3600e9);
  const m = Math.floor((ns % 3600e9) / 60e9);
  const sec = trim((ns % 60e9) / 1e9);
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}

/** dockerd's normalizeWorkdir. */
function normalizeWorkdir(current: string, requested: string): string {
  if (requested === '') throw new InvalidParameterError('cannot normalize nothing');
  const p = requested.startsWith('/') ? requested : `${current || '/'}/${requested}`;
  return cleanPath(p);
}

/** dockerd's normalizeDest: relative to WORKDIR, the trailing slash kept. */
function normalizeDest(workingDir: string, dest: string): string {
  let d = dest;
  if (!d.startsWith('/')) d = `${workingDir || '/'}/${d}`;
  const trailing = d.endsWith('/') || d.endsWith('/.');
  const clean = cleanPath(d);
  return trailing && clean !== '/' ? `${clean}/` : clean;
}

function isUrl(s: string): boolean {
  return /^https?:\/\//.test(s);
}

/** The cache-probe config: Image is not part of the comparison. */
function keyConfig(c: ContainerConfigJson): ContainerConfigJson {
  const { Image: _image, Hostname: _h, ...rest } = c;
  void _image;
  void _h;
  return rest;
}

export class BuildService {
  private readonly log: Logger;
  private readonly memo = new ChecksumMemo();
  /**
   * COPY/ADD source checksums by (context tar digest, Dockerfile name, sources): a rebuild of an unchanged context
   * probes the cache of its COPY steps without unpacking and re-hashing the context.
   */
  readonly contextSums = new Map<string, string>();
  private readonly workRoot: string;

  constructor(private readonly d: BuildServiceDeps) {
    this.log = d.log;
    this.workRoot = join(d.dataRoot, 'build');
    unmountLeftovers(join(d.execRoot, 'build'), this.log);
    rmSync(this.workRoot, { recursive: true, force: true });
    mkdirSync(this.workRoot, { recursive: true, mode: 0o700 });
  }

  /** Runs one build; returns the final image ID. Progress goes to `emit`; failures throw (BuildStepError for step errors). */
  async build(body: Readable | undefined, o: BuildOptions, emit: BuildEmit, signal: AbortSignal): Promise<string> {
    const tags = this.sanitizeTags(o.tags);
    const run = new BuildRun(this, this.d, o, emit, signal, join(this.workRoot, randomBytes(8).toString('hex')), LayerStore.tempHolder('build'), this.memo);
    let disposeContext: (() => void) | undefined;
    try {
      const contextDir = join(run.dir, 'context');
      const { dockerfile, unpack, digest, dispose } = await this.prepareContext(body, o, contextDir, () => run.workDir(), emit);
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

class DependencyFailed extends Error {}

/** Output of concurrent stages in stage order: stage i streams live once stages 0..i-1 are finished. */
class OrderedOutput {
  private head = 0;
  private readonly buffers: Record<string, unknown>[][];
  private readonly done: boolean[];
  private readonly failed: boolean[] = [];
  private stopped = false;

  constructor(
    private readonly emit: BuildEmit,
    n: number,
  ) {
    this.buffers = Array.from({ length: n }, () => []);
    this.done = Array.from({ length: n }, () => false);
  }

  emitter(i: number): BuildEmit {
    return (m) => {
      if (this.stopped) return;
      if (i === this.head) this.emit(m);
      else (this.buffers[i] as Record<string, unknown>[]).push(m);
    };
  }

  /** Stage i ended; a failed stage is the last whose output is shown (as dockerd stops at the failing step). */
  finish(i: number, failed: boolean): void {
    this.done[i] = true;
    this.failed[i] = failed;
    while (!this.stopped && this.head < this.done.length && this.done[this.head]) {
      if (this.failed[this.head]) {
        this.stopped = true;
        return;
      }
      this.head++;
      const next = this.buffers[this.head];
      if (next) {
        for (const m of next.splice(0)) this.emit(m);
      }
    }
  }
}

/** One build in progress. */
class BuildRun {
  private readonly containers = new Set<string>();
  private readonly views = new Set<StepRootfs>();
  private readonly roots: ConfinedRoot[] = [];
  private cacheFrom: Set<string> | undefined;
  private stages: StageResult[] = [];
  private stageNames = new Map<string, number>();
  private contextDir = '';
  private unpack: (() => Promise<void>) | undefined;
  /** The uploaded context's identity (tar digest + Dockerfile name) for BuildService.contextSums; unset otherwise. */
  contextKey: string | undefined;
  /** State every stage runner shares (forks see this same object). */
  private readonly shared: {
    contextReady?: Promise<ConfinedRoot>;
    contextRoot?: ConfinedRoot;
    /** The work directory exists (made when a step first needs it). */
    dirMade?: boolean;
    /** A step layer was committed under the build's hold. */
    held?: boolean;
    /** Cache entries the build used, touched in one write at the end. */
    cacheUsed: [key: string, imageId: string][];
  } = { cacheUsed: [] };
  private shlex = new ShellLex('\\');
  private total = 0;
  private step = 1;
  /** The stage a forked runner builds (COPY --from and FROM see only the stages before it). */
  private current = 0;

  private readonly ac = new AbortController();
  private readonly signal: AbortSignal;

  constructor(
    private readonly svc: BuildService,
    private readonly d: BuildServiceDeps,
    private readonly o: BuildOptions,
    private readonly emit: BuildEmit,
    clientGone: AbortSignal,
    /** The build's private directory (context, views, downloads), made by workDir() when first needed. */
    readonly dir: string,
    private readonly holder: string,
    private readonly memo: ChecksumMemo,
  ) {
    this.signal = this.ac.signal;
    if (clientGone.aborted) this.ac.abort();
    else clientGone.addEventListener('abort', () => this.ac.abort(), { once: true });
  }

  /** Stops every stage still running (their RUN containers are killed). */
  private abort(): void {
    this.ac.abort();
  }

  private out(text: string): void {
    this.emit({ stream: text });
  }

  /** The context tree, unpacked from the spooled tar the first time a step needs it (once for all stages). */
  private context(): Promise<ConfinedRoot> {
    const shared = this.shared;
    shared.contextReady ??= (async () => {
      if (this.unpack) await this.unpack();
      else mkdirSync(join(this.workDir(), 'context'), { recursive: true, mode: 0o700 });
      shared.contextRoot = ConfinedRoot.open(this.contextDir);
      return shared.contextRoot;
    })();
    return shared.contextReady;
  }

  /** A runner for one stage: the build's shared state, its own output and step numbers. */
  private fork(emit: BuildEmit, step: number, index: number): BuildRun {
    const f = Object.create(this) as BuildRun;
    Object.defineProperty(f, 'emit', { value: emit });
    f.step = step;
    f.current = index;
    return f;
  }

  /** Stages a stage needs first: its FROM and its COPY --from (a value with a variable: every earlier stage). */
  private stageDeps(stages: readonly Stage[], i: number, metaEnv: EnvLookup): number[] {
    const stage = stages[i] as Stage;
    const byName = (n: string): number | undefined => {
      const ix = stages.findIndex((s, k) => k < i && s.name !== '' && s.name === n.toLowerCase());
      return ix < 0 ? undefined : ix;
    };
    const out = new Set<number>();
    const all = (): void => {
      for (let k = 0; k < i; k++) out.add(k);
    };
    let base: string;
    try {
      base = this.expand(stage.baseName, metaEnv);
    } catch {
      base = stage.baseName;
    }
    const b = byName(base);
    if (b !== undefined) out.add(b);
    for (const c of stage.commands) {
      if (c.kind !== 'copy' || c.from === '') continue;
      if (c.from.includes('$')) all();
      else if (/^\d+$/.test(c.from)) {
        if (Number(c.from) < i) out.add(Number(c.from));
      } else {
        const f = byName(c.from);
        if (f !== undefined) out.add(f);
      }
    }
    // ONBUILD triggers of a base image may COPY --from anything: stay sequential behind an image base
    if (b === undefined && base !== 'scratch') {
      const img = this.d.images.tryResolve(base);
      if (!img || (img.config.config?.OnBuild ?? []).length > 0) all();
    }
    return [...out];
  }

  /** The build's private directory, made on first use. */
  workDir(): string {
    if (!this.shared.dirMade) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.shared.dirMade = true;
    }
    return this.dir;
  }

  /** A step's upper directory committed as a layer, held by the build until it ends. */
  private commitLayer(chainId: string | null, upper: string): Promise<StepLayer | undefined> {
    this.shared.held = true;
    return commitUpperDir(this.d.images, chainId, upper, this.holder);
  }

  async cleanup(): Promise<void> {
    if (this.shared.cacheUsed.length > 0) this.d.cache.touchAll(this.shared.cacheUsed.splice(0), nowNano());
    for (const v of this.views) v.release();
    this.views.clear();
    this.shared.contextRoot?.close();
    for (const r of this.roots.splice(0)) r.close();
    for (const id of this.containers) {
      // --rm=false keeps a failed step's container, as dockerd does; otherwise it goes (dockerd keeps it unless --force-rm)
      if (!this.o.rm && !this.o.forceRm) {
        await this.d.containers.kill(id, 'SIGKILL').catch(() => undefined);
        continue;
      }
      await this.d.containers.remove(id, { force: true, removeVolumes: true }).catch((e: unknown) =>
        this.d.log.warn({ err: errorMessage(e), id }, 'removing a build container failed'),
      );
    }
    this.containers.clear();
    if (this.shared.held) this.d.images.layers.release(this.holder);
    if (this.shared.dirMade) rmSync(this.dir, { recursive: true, force: true });
  }

  async run(contextDir: string, dockerfileText: string, unpack?: () => Promise<void>): Promise<string> {
    this.contextDir = contextDir;
    this.unpack = unpack;
    const parsed = parseDockerfile(dockerfileText);
    if (parsed.syntax !== undefined) {
      this.emit({ stream: `[WARNING]: the syntax parser directive (${parsed.syntax}) needs BuildKit; the classic builder ignores it\n` });
    }
    this.shlex = new ShellLex(parsed.escapeToken);
    const { stages: allStages, metaArgs } = parseStages(parsed.nodes);
    let stages = allStages;
    if (this.o.target !== '') {
      const ix = stages.findIndex((s) => s.name === this.o.target.toLowerCase());
      if (ix < 0) throw new InvalidParameterError(`failed to reach build target ${this.o.target} in Dockerfile`);
      stages = stages.slice(0, ix + 1);
    }
    const last = stages[stages.length - 1];
    if (last) {
      for (const k of Object.keys(this.o.labels).sort()) {
        last.commands.push({ kind: 'label', labels: [{ key: k, value: this.o.labels[k] as string, noDelim: false }], code: `LABEL ${k}=${this.o.labels[k] as string}`, line: 0, noExpand: true });
      }
    }
    for (const w of parsed.warnings) this.emit({ stream: `[WARNING]: ${w}\n` });
    if (parsed.warnings.length > 0) this.emit({ stream: '[WARNING]: Empty continuation lines will become errors in a future release.\n' });
    if (this.o.cacheFrom.length > 0) this.cacheFrom = this.cacheSources();

    this.total = metaArgs.length + stages.length + stages.reduce((n, s) => n + s.commands.length, 0);
    const global = new BuildArgs(this.o.buildArgs);
    for (const m of metaArgs) {
      this.printStep(m.code);
      if (m.kind !== 'arg') continue;
      const env = envFromList([...global.allAllowed()].map(([k, v]) => `${k}=${v}`));
      for (const a of m.args) {
        const key = this.expand(a.key, env);
        const value = a.value === undefined ? undefined : this.expand(a.value, env);
        global.addArg(key, value);
        global.addMetaArg(key, value);
      }
    }
    // Independent stages run at once; each one's output is held back until the stages before it are done, so
    // the stream reads as dockerd's (steps in order, numbered as if sequential).
    const seen = new Set<string>();
    for (const st of stages) {
      if (st.name !== '' && seen.has(st.name)) throw new InvalidParameterError(`${st.name} stage name already used`);
      if (st.name !== '') seen.add(st.name);
    }
    const metaEnv = envFromList([...global.allMeta()].map(([k, v]) => `${k}=${v}`));
    const ordered = new OrderedOutput(this.emit, stages.length);
    const tasks: Promise<State>[] = [];
    let first = this.step;
    stages.forEach((stage, i) => {
      const deps = this.stageDeps(stages, i, metaEnv);
      const start = first;
      first += 1 + stage.commands.length;
      const task = (async () => {
        for (const j of deps) {
          try {
            await tasks[j];
          } catch {
            throw new DependencyFailed();
          }
        }
        const runner = this.fork(ordered.emitter(i), start, i);
        this.d.log.debug({ stage: i, deps }, "stage starts");
        const st = await runner.runStage(stage, global);
        if (this.o.wantAux && st.imageId) ordered.emitter(i)({ aux: { ID: st.imageId } });
        global.mergeReferenced(st.buildArgs);
        this.stages[i] = { imageId: st.imageId, chainId: st.chainId };
        if (stage.name !== '') this.stageNames.set(stage.name, i);
        return st;
      })();
      task.then(
        () => ordered.finish(i, false),
        () => ordered.finish(i, true),
      );
      tasks.push(task);
    });
    let state: State | undefined;
    for (const [i, task] of tasks.entries()) {
      try {
        state = await task;
      } catch (e) {
        // the first failure in stage order is the build's; stages still running are stopped
        this.abort();
        await Promise.allSettled(tasks);
        if (e instanceof DependencyFailed) throw new BuildStepError(`stage ${i} depends on a failed stage`);
        throw e;
      }
    }
    const unused = global.unused();
    if (unused.length > 0) this.out(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
    if (!state || !state.imageId) throw new BuildStepError('No image was generated. Is your Dockerfile empty?');
    return state.imageId;
  }

  private printStep(code: string): void {
    this.out(`Step ${this.step}/${this.total} : ${code}\n`);
    this.step++;
  }

  private checkCancelled(): void {
    if (this.signal.aborted) throw new BuildStepError('Build cancelled');
  }

  private expand(word: string, env: EnvLookup): string {
    return this.shlex.processWord(word, env);
  }

  private cacheSources(): Set<string> {
    const out = new Set<string>();
    for (const ref of this.o.cacheFrom) {
      let img = this.d.images.tryResolve(ref);
      while (img) {
        out.add(img.id);
        img = img.parent ? this.d.images.get(img.parent) : undefined;
      }
    }
    return out;
  }

  // ---- stages -------------------------------------------------------------------------------------------

  private async runStage(stage: Stage, global: BuildArgs): Promise<State> {
    this.printStep(stage.code);
    const buildArgs = global.forStage();
    const meta = envFromList([...buildArgs.allMeta()].map(([k, v]) => `${k}=${v}`));
    let platform = '';
    if (stage.platform !== '') {
      platform = this.expand(stage.platform, meta);
      try {
        parsePlatform(platform);
      } catch (e) {
        throw new InvalidParameterError(`failed to parse platform ${platform}: ${errorMessage(e)}`);
      }
    }
    const name = this.expand(stage.baseName, meta);
    if (name === '') throw new InvalidParameterError(`base name (${stage.baseName}) should not be blank`);
    const state: State = {
      runConfig: {},
      imageId: '',
      chainId: null,
      os: 'linux',
      arch: goArch(),
      maintainer: '',
      cmdSet: false,
      buildArgs,
      stageName: stage.name,
    };
    const named = this.stageNames.get(name.toLowerCase());
    const stageIx = named !== undefined && named < this.current ? named : undefined;
    if (stageIx !== undefined) {
      const prev = this.stages[stageIx] as StageResult;
      if (prev.imageId) this.beginFromImage(state, this.d.images.resolve(prev.imageId));
    } else if (name !== 'scratch') {
      const img = await this.svc.baseImage(name, this.o.pull, platform || this.o.platform, this.o.authConfigs, this.emit);
      this.beginFromImage(state, img);
    }
    const env = state.runConfig.Env ?? [];
    if (!env.some((e) => e.startsWith('PATH='))) state.runConfig.Env = [...env, DEFAULT_PATH];
    state.runConfig.OpenStdin = false;
    state.runConfig.StdinOnce = false;
    this.out(` ---> ${state.imageId ? short(state.imageId) : ''}\n`);
    const triggers = state.runConfig.OnBuild ?? [];
    if (triggers.length > 0) {
      state.runConfig.OnBuild = null;
      this.out(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
      for (const t of triggers) {
        const p = parseDockerfile(t);
        if (p.nodes.length !== 1) throw new InvalidParameterError('onbuild trigger should be a single expression');
        const c = parseInstruction(p.nodes[0] as never);
        if ('baseName' in c) throw new InvalidParameterError("FROM isn't allowed as an ONBUILD trigger");
        await this.dispatch(state, c);
      }
    }
    for (const c of stage.commands) {
      this.checkCancelled();
      this.printStep(c.code);
      await this.dispatch(state, c);
      this.out(` ---> ${short(state.imageId)}\n`);
    }
    return state;
  }

  private beginFromImage(state: State, img: ImageRecord): void {
    state.imageId = img.id;
    state.chainId = img.chainId;
    state.runConfig = copyConfig(img.config.config ?? {});
    state.os = img.config.os ?? 'linux';
    state.arch = img.config.architecture ?? goArch();
    if (img.config.variant) state.variant = img.config.variant;
  }

  // ---- dispatch -----------------------------------------------------------------------------------------

  private async dispatch(state: State, c: Command): Promise<void> {
    const rc = state.runConfig;
    const envList = [...(rc.Env ?? []), ...state.buildArgs.filterAllowed(rc.Env ?? [])];
    const env = envFromList(envList);
    const x = (w: string): string => this.expand(w, env);
    switch (c.kind) {
      case 'env': {
        let msg = 'ENV';
        const list = [...(rc.Env ?? [])];
        for (const kv of c.env) {
          const key = x(kv.key);
          const value = x(kv.value);
          const v = `${key}=${value}`;
          msg += ` ${v}`;
          const i = list.findIndex((e) => e.split('=', 1)[0] === key);
          if (i >= 0) list[i] = v;
          else list.push(v);
        }
        rc.Env = list;
        return this.commitMeta(state, msg);
      }
      case 'label': {
        let msg = 'LABEL';
        const labels = { ...(rc.Labels ?? {}) };
        for (const kv of c.labels) {
          const key = c.noExpand ? kv.key : x(kv.key);
          const value = c.noExpand ? kv.value : x(kv.value);
          labels[key] = value;
          msg += ` ${key}=${value}`;
        }
        rc.Labels = labels;
        return this.commitMeta(state, msg);
      }
      case 'maintainer':
        state.maintainer = c.maintainer;
        return this.commitMeta(state, `MAINTAINER ${c.maintainer}`);
      case 'onbuild':
        rc.OnBuild = [...(rc.OnBuild ?? []), c.expression];
        return this.commitMeta(state, `ONBUILD ${c.expression}`);
      case 'workdir': {
        rc.WorkingDir = normalizeWorkdir(rc.WorkingDir ?? '', x(c.path));
        return this.workdir(state);
      }
      case 'run':
        return this.runCommand(state, c);
      case 'cmd': {
        const cmd = c.prependShell ? [...shellOf(rc), ...(c.cmdLine ?? [])] : [...(c.cmdLine ?? [])];
        rc.Cmd = cmd;
        await this.commitMeta(state, `CMD ${goQuoteSlice(cmd)}`);
        if ((c.cmdLine ?? []).length !== 0) state.cmdSet = true;
        return;
      }
      case 'entrypoint': {
        rc.Entrypoint = c.cmdLine === null ? null : c.prependShell ? [...shellOf(rc), ...c.cmdLine] : [...c.cmdLine];
        if (!state.cmdSet) rc.Cmd = null;
        return this.commitMeta(state, `ENTRYPOINT ${goQuoteSlice(rc.Entrypoint)}`);
      }
      case 'healthcheck': {
        const old = rc.Healthcheck?.Test as string[] | undefined;
        if (old && old.length > 0 && old[0] !== 'NONE') this.out(`Note: overriding previous HEALTHCHECK: ${goSlice(old)}\n`);
        rc.Healthcheck = { ...c.health };
        const h = c.health;
        const retries = `'\\x${(h.Retries ?? 0).toString(16).padStart(2, '0')}'`;
        const desc = `&{${goQuoteSlice(h.Test)} "${goDuration(h.Interval ?? 0)}" "${goDuration(h.Timeout ?? 0)}" "${goDuration(h.StartPeriod ?? 0)}" ${retries}}`;
        return this.commitMeta(state, `HEALTHCHECK ${desc}`);
      }
      case 'expose': {
        const ports: string[] = [];
        for (const p of c.ports) ports.push(...this.shlex.processWords(p, env));
        const exposed = { ...(rc.ExposedPorts ?? {}) };
        for (const p of ports) {
          for (const k of exposeKeys(p)) exposed[k] = {};
        }
        rc.ExposedPorts = exposed;
        return this.commitMeta(state, `EXPOSE ${ports.join(' ')}`);
      }
      case 'user':
        rc.User = x(c.user);
        return this.commitMeta(state, `USER ${rc.User}`);
      case 'volume': {
        const vols = { ...(rc.Volumes ?? {}) };
        const list = c.volumes.map(x);
        for (const v of list) {
          if (v === '') throw new InvalidParameterError('VOLUME specified can not be an empty string');
          vols[v] = {};
        }
        rc.Volumes = vols;
        return this.commitMeta(state, `VOLUME ${goSlice(list)}`);
      }
      case 'stopsignal': {
        const sig = x(c.signal);
        if (!/^(SIG)?[A-Z0-9+-]+$/i.test(sig) || (/^\d+$/.test(sig) && Number(sig) === 0)) throw new InvalidParameterError(`Invalid signal: ${sig}`);
        rc.StopSignal = sig;
        return this.commitMeta(state, `STOPSIGNAL ${sig}`);
      }
      case 'arg': {
        const parts: string[] = [];
        for (const a of c.args) {
          const key = x(a.key);
          const value = a.value === undefined ? undefined : x(a.value);
          parts.push(value === undefined ? key : `${key}=${value}`);
          state.buildArgs.addArg(key, value);
        }
        return this.commitMeta(state, `ARG ${parts.join(' ')}`);
      }
      case 'shell':
        rc.Shell = [...c.shell];
        return this.commitMeta(state, `SHELL ${goSlice(c.shell)}`);
      case 'add':
      case 'copy':
        return this.copy(state, c, x);
    }
  }

  /** A metadata-only step: a history entry without a layer (dockerd's "#(nop)" commit). */
  private async commitMeta(state: State, comment: string): Promise<void> {
    const probeCfg: ContainerConfigJson = { ...copyConfig(state.runConfig), Cmd: [...shellOf(state.runConfig), '#(nop) ', comment] };
    if (this.probe(state, probeCfg)) return;
    const cid = randomBytes(32).toString('hex');
    this.out(` ---> Running in ${short(cid)}\n`);
    this.commitImage(state, probeCfg, undefined, cid);
    if (this.o.rm || this.o.forceRm) this.out(`Removing intermediate container ${short(cid)}\n`);
  }

  private cacheKey(state: State, probeCfg: ContainerConfigJson): string {
    return stableHash({ parent: state.imageId, config: keyConfig(probeCfg), os: state.os, arch: state.arch, maintainer: state.maintainer });
  }

  private probe(state: State, probeCfg: ContainerConfigJson): boolean {
    if (this.o.noCache) return false;
    const img = this.svc.probe(this.cacheKey(state, probeCfg), this.cacheFrom, this.shared.cacheUsed);
    if (!img) return false;
    this.out(' ---> Using cache\n');
    state.imageId = img.id;
    state.chainId = img.chainId;
    return true;
  }

  /** The image of one step: the parent's config and history plus this step, and the step's layer (if any). */
  private commitImage(state: State, containerConfig: ContainerConfigJson, layer: StepLayer | undefined, containerId: string): void {
    const images = this.d.images;
    const parent = state.imageId ? images.config(state.imageId) : undefined;
    const created = rfc3339Nano(nowNano());
    const history: HistoryJson[] = [...(parent?.history ?? [])];
    history.push({
      created,
      ...(state.maintainer ? { author: state.maintainer } : {}),
      created_by: (containerConfig.Cmd ?? []).join(' '),
      ...(layer ? {} : { empty_layer: true }),
    });
    const config = copyConfig(state.runConfig);
    config.Image = state.imageId;
    const cc = copyConfig(containerConfig);
    cc.Image = state.imageId;
    cc.Hostname = short(containerId);
    const imageConfig: ImageConfigJson = {
      architecture: state.arch,
      ...(state.variant ? { variant: state.variant } : {}),
      ...(state.maintainer ? { author: state.maintainer } : {}),
      config,
      container: containerId,
      container_config: cc,
      created,
      docker_version: BERTH_VERSION,
      history,
      os: state.os,
      rootfs: { type: 'layers', diff_ids: [...(parent?.rootfs.diff_ids ?? []), ...(layer ? [layer.diffId] : [])] },
    };
    const { digest } = images.content.put(Buffer.from(JSON.stringify(imageConfig)));
    const chainId = layer ? layer.chainId : state.chainId;
    images.createImage(digest, chainId, { ...(layer ? { holder: this.holder } : {}), ...(state.imageId ? { parent: state.imageId } : {}) });
    const key = this.cacheKey(state, containerConfig);
    this.svc.record(key, state.imageId, digest, history[history.length - 1]?.created_by ?? '', layer?.size ?? 0);
    state.imageId = digest;
    state.chainId = chainId;
  }

  // ---- RUN ----------------------------------------------------------------------------------------------

  private async runCommand(state: State, c: Extract<Command, { kind: 'run' }>): Promise<void> {
    if (c.flagsUsed.length > 0) {
      throw new InvalidParameterError(`the --${c.flagsUsed[0] as string} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`);
    }
    if (!state.imageId) throw new InvalidParameterError('Please provide a source image with `from` prior to run');
    const rc = state.runConfig;
    const cmd = c.prependShell ? [...shellOf(rc), ...c.cmdLine] : [...c.cmdLine];
    const buildArgs = state.buildArgs.filterAllowed(rc.Env ?? []);
    let saveCmd = cmd;
    if (buildArgs.length > 0) {
      const kept = buildArgs.filter((e) => state.buildArgs.isReferencedOrNotBuiltin(e.split('=', 1)[0] as string)).sort();
      saveCmd = [`|${kept.length}`, ...kept, ...cmd];
    }
    const probeCfg: ContainerConfigJson = { ...copyConfig(rc), Cmd: saveCmd };
    if (saveCmd.length > 0) probeCfg.Entrypoint = null;
    if (this.probe(state, probeCfg)) return;

    const hc: Record<string, unknown> = {
      NetworkMode: this.o.networkMode === '' || this.o.networkMode === 'default' ? 'bridge' : this.o.networkMode,
      ...(this.o.shmSize ? { ShmSize: this.o.shmSize } : {}),
      ...(this.o.memory ? { Memory: this.o.memory } : {}),
      ...(this.o.memorySwap ? { MemorySwap: this.o.memorySwap } : {}),
      ...(this.o.cpuShares ? { CpuShares: this.o.cpuShares } : {}),
      ...(this.o.cpuPeriod ? { CpuPeriod: this.o.cpuPeriod } : {}),
      ...(this.o.cpuQuota ? { CpuQuota: this.o.cpuQuota } : {}),
      ...(this.o.cpuSetCpus ? { CpusetCpus: this.o.cpuSetCpus } : {}),
      ...(this.o.cpuSetMems ? { CpusetMems: this.o.cpuSetMems } : {}),
      ...(this.o.extraHosts.length > 0 ? { ExtraHosts: this.o.extraHosts } : {}),
    };
    const body = {
      ...copyConfig(rc),
      Image: state.imageId,
      Cmd: cmd,
      Env: [...(rc.Env ?? []), ...buildArgs],
      Entrypoint: [''],
      Healthcheck: { Test: ['NONE'] },
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: hc,
    };
    const { Id: id, Warnings: warnings } = await this.d.containers.create({ body: body as never });
    this.containers.add(id);
    for (const w of warnings) this.out(` ---> [Warning] ${w}\n`);
    this.out(` ---> Running in ${short(id)}\n`);
    const att = await this.d.containers.attach(id, { stdin: false, stdout: true, stderr: true });
    const onAbort = (): void => void this.d.containers.kill(id, 'SIGKILL').catch(() => undefined);
    this.signal.addEventListener('abort', onAbort);
    let exitCode: number;
    try {
      try {
        await this.d.containers.start(id);
      } catch (e) {
        att.handle.then((h) => h?.close(), () => undefined);
        throw new BuildStepError(`failed to start the RUN container: ${errorMessage(e)}`);
      }
      const h = await att.handle;
      if (h) {
        for await (const chunk of h.output as AsyncIterable<{ stream: 'stdout' | 'stderr'; data: Buffer }>) {
          const text = chunk.data.toString('utf8');
          this.out(chunk.stream === 'stderr' ? `\u001b[91m${text}\u001b[0m` : text);
        }
      }
      const w = await this.d.containers.wait(id, 'not-running').result;
      exitCode = w.StatusCode;
    } finally {
      this.signal.removeEventListener('abort', onAbort);
    }
    this.checkCancelled();
    if (exitCode !== 0) {
      throw new BuildStepError(`The command '${cmd.join(' ')}' returned a non-zero code: ${exitCode}`, exitCode);
    }
    const upper = containerPaths(this.d.dataRoot, id).upper;
    const layer = await this.commitLayer(state.chainId, upper);
    this.commitImage(state, probeCfg, layer, id);
    this.containers.delete(id);
    if (this.o.rm || this.o.forceRm) {
      await this.d.containers.remove(id, { force: true, removeVolumes: true });
      this.out(`Removing intermediate container ${short(id)}\n`);
    }
  }

  // ---- WORKDIR ------------------------------------------------------------------------------------------

  private async workdir(state: State): Promise<void> {
    const rc = state.runConfig;
    const comment = `WORKDIR ${rc.WorkingDir ?? ''}`;
    const probeCfg: ContainerConfigJson = { ...copyConfig(rc), Cmd: [...shellOf(rc), `#(nop) ${comment}`] };
    if (this.probe(state, probeCfg)) return;
    const cid = randomBytes(32).toString('hex');
    this.out(` ---> Running in ${short(cid)}\n`);
    let layer: StepLayer | undefined;
    if (state.imageId) {
      const view = this.openView(state.chainId);
      try {
        await mkdirAll(view.root, rc.WorkingDir ?? '/', 0, 0);
        view.unmount();
        layer = await this.commitLayer(state.chainId, view.upper);
      } finally {
        this.closeView(view);
      }
    }
    this.commitImage(state, probeCfg, layer, cid);
    if (this.o.rm || this.o.forceRm) this.out(`Removing intermediate container ${short(cid)}\n`);
  }

  private openView(chainId: string | null): StepRootfs {
    const v = StepRootfs.open(this.d.images.layers, this.d.execRoot, this.workDir(), chainId, this.d.log);
    this.views.add(v);
    return v;
  }

  private closeView(v: StepRootfs): void {
    v.release();
    this.views.delete(v);
  }

  // ---- COPY / ADD ---------------------------------------------------------------------------------------

  private async copy(state: State, c: Extract<Command, { kind: 'add' | 'copy' }>, x: (w: string) => string): Promise<void> {
    const name = c.kind.toUpperCase();
    if (c.chmod !== '') throw new InvalidParameterError('the --chmod option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled');
    if (c.link) throw new InvalidParameterError('the --link option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled');
    if (c.extra.length > 0) throw new InvalidParameterError(`the --${c.extra[0] as string} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`);
    const chown = x(c.chown);
    const dest = x(c.dest);
    const sources = c.sources.map(x);
    const rc = state.runConfig;

    // Where the sources come from: the context, another stage, or an image.
    const comment = (srcHash: string): string => `${name} ${chown ? `--chown=${chown} ` : ''}${srcHash} in ${dest} `;
    const fromContext = !(c.kind === 'copy' && c.from !== '') && !sources.some(isUrl);
    const sumsKey = fromContext && this.contextKey !== undefined ? `${this.contextKey}\0${JSON.stringify(sources)}` : undefined;
    const known = sumsKey !== undefined ? this.svc.contextSums.get(sumsKey) : undefined;
    if (known !== undefined && this.probe(state, { ...copyConfig(rc), Cmd: [...shellOf(rc), `#(nop) ${comment(known)}`] })) return;

    let srcRoot: ConfinedRoot;
    let fromView: StepRootfs | undefined;
    if (c.kind === 'copy' && c.from !== '') {
      const fromName = x(c.from);
      const chain = await this.fromSource(fromName);
      fromView = this.openView(chain);
      srcRoot = fromView.root;
    } else srcRoot = await this.context();
    try {
      const infos: { resolved: Resolved; hash: string; downloaded?: { path: string; mtime?: number; name: string } }[] = [];
      let wildcard = false;
      try {
        for (const s of sources) {
          if (c.kind === 'add' && isUrl(s)) {
            infos.push(await this.download(s));
            continue;
          }
          if (c.kind === 'copy' && isUrl(s)) throw new InvalidParameterError('Source can\'t be a URL for COPY');
          const clean = cleanPath(fromView ? `/${s}` : s);
          if (!fromView && (clean === '..' || clean.startsWith('../'))) {
            throw new InvalidParameterError(`${name} failed: forbidden path outside the build context: ${s} ()`);
          }
          const rel = clean.replace(/^\/+/, '') || '.';
          const paths = hasWildcards(rel) ? globContext(srcRoot, rel) : [rel];
          if (hasWildcards(rel)) wildcard = true;
          if (paths.length === 0) throw new InvalidParameterError(`${name} failed: no source files were specified`);
          for (const p of paths) {
            let r: Resolved;
            const notFound = fromView
              ? `${name} failed: stat ${s}: file does not exist`
              : `${name} failed: file not found in build context or excluded by .dockerignore: stat ${s}: file does not exist`;
            try {
              r = srcRoot.resolve(p === '.' ? '/' : `/${p}`, true, notFound);
            } catch (e) {
              if (e instanceof NotFoundError) throw new InvalidParameterError(notFound);
              throw e;
            }
            if (!r.st) {
              r.close();
              throw new InvalidParameterError(notFound);
            }
            let ck: { kind: string; hash: string };
            try {
              ck = await entryChecksum(r.dirFd, r.name, this.memo);
            } catch (e) {
              r.close();
              throw e;
            }
            infos.push({ resolved: r, hash: `${ck.kind}:${ck.hash}` });
          }
        }
        const srcHash =
          infos.length === 1 ? (infos[0] as { hash: string }).hash : `multi:${stableHash(infos.map((i) => i.hash).join(','))}`;
        if (sumsKey !== undefined) {
          if (this.svc.contextSums.size >= 4096) this.svc.contextSums.clear();
          this.svc.contextSums.set(sumsKey, srcHash);
        }
        const probeCfg: ContainerConfigJson = { ...copyConfig(rc), Cmd: [...shellOf(rc), `#(nop) ${comment(srcHash)}`] };
        if (this.probe(state, probeCfg)) return;

        const destPath = normalizeDest(rc.WorkingDir ?? '', dest);
        if ((infos.length > 1 || wildcard && infos.length > 1) && !destPath.endsWith('/')) {
          throw new InvalidParameterError(`When using ${name} with more than one source file, the destination must be a directory and end with a /`);
        }
        const view = this.openView(state.chainId);
        let layer: StepLayer | undefined;
        try {
          const identity = chown ? await this.chownIdentity(state, chown) : { uid: 0, gid: 0 };
          const preserve = c.kind === 'copy' && c.from !== '' && chown === '';
          for (const info of infos) {
            await this.copyOne(view.root, info, destPath, preserve ? undefined : identity, c.kind === 'add', name);
          }
          view.unmount();
          layer = await this.commitLayer(state.chainId, view.upper);
        } finally {
          this.closeView(view);
        }
        this.commitImage(state, probeCfg, layer, randomBytes(32).toString('hex'));
      } finally {
        for (const i of infos) i.resolved.close();
      }
    } finally {
      if (fromView) this.closeView(fromView);
    }
  }

  /** COPY --from: a stage by name or index, else an image (pulled when missing). */
  private async fromSource(name: string): Promise<string | null> {
    const byName = this.stageNames.get(name.toLowerCase());
    if (byName !== undefined && byName < this.current) return (this.stages[byName] as StageResult).chainId;
    if (/^\d+$/.test(name)) {
      const ix = Number(name);
      if (ix === this.current) throw new InvalidParameterError(`invalid from flag value ${name}: refers to current build stage`);
      if (ix > this.current) throw new InvalidParameterError(`invalid from flag value ${name}: index out of bounds`);
      return (this.stages[ix] as StageResult).chainId;
    }
    try {
      const img = await this.svc.baseImage(name, false, this.o.platform, this.o.authConfigs, this.emit);
      return img.chainId;
    } catch (e) {
      throw new InvalidParameterError(`invalid from flag value ${name}: ${errorMessage(e)}`);
    }
  }

  private async chownIdentity(state: State, chown: string): Promise<{ uid: number; gid: number }> {
    const [user = '', group0] = chown.split(':', 2);
    const group = group0 === undefined || group0 === '' ? user : group0;
    const dirs = state.chainId ? this.d.images.layers.lowerDirs(state.chainId) : [];
    const lookup = async (file: string, name: string, what: string): Promise<number> => {
      if (/^\d+$/.test(name)) return Number(name);
      const text = (await readAccountFile(dirs, file)) ?? '';
      for (const line of text.split('\n')) {
        const f = line.split(':');
        if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
      }
      throw new InvalidParameterError(`unable to convert uid/gid chown string to host mapping: can't find ${what} for ${what === 'uid' ? 'user' : 'group'} ${name}: no such ${what === 'uid' ? 'user' : 'group'}: ${name}`);
    };
    return { uid: await lookup('etc/passwd', user, 'uid'), gid: await lookup('etc/group', group, 'gid') };
  }

  private async copyOne(
    root: ConfinedRoot,
    info: { resolved: Resolved; downloaded?: { path: string; mtime?: number; name: string } },
    destPath: string,
    identity: { uid: number; gid: number } | undefined,
    isAdd: boolean,
    name: string,
  ): Promise<void> {
    const r = info.resolved;
    const st = r.st;
    if (!st) return;
    const destIsDirHint = destPath.endsWith('/');
    const destAbs = destPath.replace(/\/+$/, '') || '/';
    if (st.isDirectory()) {
      await mkdirAll(root, destAbs, identity?.uid ?? 0, identity?.gid ?? 0);
      await this.extractInto(root, destAbs, Readable.from(tarTree(r.dirFd, r.name, '', '/')), identity);
      return;
    }
    if (isAdd && !info.downloaded && st.isFile() && (await isArchive(r))) {
      await mkdirAll(root, destAbs, identity?.uid ?? 0, identity?.gid ?? 0);
      const fd = openSync(r.hostPath, C.O_RDONLY | C.O_NOFOLLOW);
      await new ArchiveExtractor(root, canonical(root, destAbs), { noOverwriteDirNonDir: false, mounts: [], readonlyRootfs: false }).extract(
        createReadStream('', { fd, autoClose: true }),
      );
      return;
    }
    // a single file (or link): dest is a directory when it says so or already is one
    let destDir: string;
    let base: string;
    const existing = statIn(root, destAbs);
    const srcName = info.downloaded?.name ?? (r.name === '.' ? 'file' : r.name);
    if (destIsDirHint || existing?.isDirectory()) {
      destDir = destAbs;
      base = srcName;
    } else {
      const i = destAbs.lastIndexOf('/');
      destDir = destAbs.slice(0, i) || '/';
      base = destAbs.slice(i + 1);
    }
    if (base === '') throw new InvalidParameterError(`${name} failed: invalid destination ${destPath}`);
    await mkdirAll(root, destDir, identity?.uid ?? 0, identity?.gid ?? 0);
    await this.extractInto(root, destDir, Readable.from(tarTree(r.dirFd, r.name, base, '/')), identity);
  }

  private async extractInto(root: ConfinedRoot, dir: string, tar: Readable, identity: { uid: number; gid: number } | undefined): Promise<void> {
    const ex = new ArchiveExtractor(root, canonical(root, dir), {
      noOverwriteDirNonDir: false,
      ...(identity ? { chown: identity } : {}),
      mounts: [],
      readonlyRootfs: false,
    });
    await ex.extract(tar);
  }

  /** ADD <url>: downloaded into the build dir, mode 0600 and the Last-Modified time as dockerd does. */
  private async download(url: string): Promise<{ resolved: Resolved; hash: string; downloaded: { path: string; mtime?: number; name: string } }> {
    const dlDir = join(this.workDir(), `dl-${randomBytes(6).toString('hex')}`);
    await mkdir(dlDir, { mode: 0o700 });
    let res: Response;
    try {
      res = await fetch(url, { redirect: 'follow', signal: this.signal });
    } catch (e) {
      throw new InvalidParameterError(`failed to GET ${url}: ${errorMessage((e as { cause?: unknown }).cause ?? e)}`);
    }
    if (!res.ok || !res.body) throw new InvalidParameterError(`failed to GET ${url} with status ${res.status} ${res.statusText}: ${await res.text().catch(() => '')}`);
    const u = new URL(url);
    let fname = decodeURIComponent(u.pathname.split('/').pop() ?? '');
    if (fname === '') fname = '__unnamed__';
    const path = join(dlDir, fname);
    await pipeline(Readable.fromWeb(res.body as never), createWriteStream(path, { mode: 0o600 }));
    const lm = res.headers.get('last-modified');
    const mtime = lm ? Date.parse(lm) : NaN;
    if (!Number.isNaN(mtime)) utimesSync(path, mtime / 1000, mtime / 1000);
    await lchown(path, 0, 0);
    // the entry is resolved in the download directory, whose fd stays open until the build ends
    const root = ConfinedRoot.open(dlDir);
    this.roots.push(root);
    const r = root.resolve(`/${fname}`, false);
    const ck = await entryChecksum(r.dirFd, r.name, this.memo);
    return { resolved: r, hash: `file:${ck.hash}`, downloaded: { path, ...(Number.isNaN(mtime) ? {} : { mtime }), name: fname } };
  }
}

/** Step views a previous daemon left mounted when it stopped mid-build. */
function unmountLeftovers(dir: string, log: Logger): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(dir, n);
    try {
      nativeAddon().umount2(p, MNT_DETACH);
    } catch {
      // not mounted
    }
    try {
      rmdirSync(p);
    } catch (e) {
      log.warn({ err: errorMessage(e), path: p }, 'removing a leftover build view failed');
    }
  }
}

/** EXPOSE port specs → "80/tcp" keys (ranges expanded), dockerd's nat.ParsePortSpecs. */
function exposeKeys(spec: string): string[] {
  const parts = spec.split(':');
  const cport = parts[parts.length - 1] as string;
  const [range = '', proto0 = 'tcp'] = cport.split('/', 2);
  const proto = (proto0 || 'tcp').toLowerCase();
  if (range === '') throw new InvalidParameterError(`no port specified: ${spec}<empty>`);
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new InvalidParameterError(`invalid proto: ${proto}`);
  const m = /^(\d+)(?:-(\d+))?$/.exec(range);
  if (!m) throw new InvalidParameterError(`invalid containerPort: ${range}`);
  const start = Number(m[1]);
  const end = m[2] !== undefined ? Number(m[2]) : start;
  if (start > 65535 || end > 65535 || end < start) throw new InvalidParameterError(`invalid containerPort: ${range}`);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

function statIn(root: ConfinedRoot, path: string): import('node:fs').Stats | undefined {
  try {
    const r = root.resolve(path, true);
    try {
      return r.st;
    } finally {
      r.close();
    }
  } catch {
    return undefined;
  }
}

function canonical(root: ConfinedRoot, path: string): string {
  const r = root.resolve(path, true);
  try {
    return r.containerPath;
  } finally {
    r.close();
  }
}

/** mkdir -p inside the root (symlinks followed inside it); new directories 0755 owned by uid:gid. */
async function mkdirAll(root: ConfinedRoot, path: string, uid: number, gid: number): Promise<void> {
  let cur = '';
  for (const part of path.split('/').filter((p) => p !== '' && p !== '.')) {
    const r = root.resolve(`${cur}/${part}`, true);
    try {
      if (!r.st) {
        mkdirSync(r.hostPath, 0o755);
        await lchown(r.hostPath, uid, gid);
      } else if (!r.st.isDirectory()) {
        throw new InvalidParameterError(`failed to copy files: mkdir ${r.containerPath}: not a directory`);
      }
      cur = r.containerPath === '/' ? '' : r.containerPath;
    } finally {
      r.close();
    }
  }
}

/** The first tar header block of a file after any supported compression; undefined when it is not a tar. */
async function isArchive(r: Resolved): Promise<boolean> {
  const fd = openSync(r.hostPath, C.O_RDONLY | C.O_NOFOLLOW);
  const src = createReadStream('', { fd, autoClose: true, end: 4 * 1024 * 1024 });
  try {
    const d = await decompressStream(src);
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of d.stream as AsyncIterable<Buffer>) {
      chunks.push(c);
      n += c.length;
      if (n >= 512) break;
    }
    d.stream.destroy();
    const head = Buffer.concat(chunks).subarray(0, 512);
    if (head.length < 512) return false;
    if (head.subarray(257, 262).toString('latin1') === 'ustar') return true;
    // an old V7 tar: no magic, but a valid header checksum
    const stored = parseInt(head.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/g, '').trim(), 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (head[i] as number);
    return !Number.isNaN(stored) && stored === sum && head[0] !== 0;
  } catch {
    return false;
  } finally {
    src.destroy();
  }
}

export { fdPath };
