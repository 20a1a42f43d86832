// One build in progress: the stage scheduler (independent stages at once, output in dockerd's order), the
// dispatch of each instruction, and the step bookkeeping every instruction shares (cache probe, image commit,
// overlay views, the context tree unpacked on first use, cleanup of containers, views and holds).

import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidParameterError, errorMessage } from '../errors.js';
import { ConfinedRoot } from '../containers/confined-root.js';
import type { ContainerConfigJson, HistoryJson, ImageConfigJson } from '../images/image-config.js';
import type { ImageRecord } from '../images/image-service.js';
import { parsePlatform } from '../registry/platform.js';
import { nowNano, rfc3339Nano } from '../util/time.js';
import { BERTH_VERSION } from '../version.js';
import { BuildArgs } from './build-args.js';
import { stableHash } from './build-cache.js';
import type { ChecksumMemo } from './build-context.js';
import { BuildStepError, type BuildEmit, type BuildOptions, type BuildService, type BuildServiceDeps } from './builder.js';
import { parseDockerfile } from './dockerfile-parser.js';
import { parseInstruction, parseStages, type Command, type Stage } from './instructions.js';
import { OrderedOutput } from './ordered-output.js';
import {
  copyConfig,
  DEFAULT_PATH,
  exposeKeys,
  goArch,
  goDuration,
  goQuoteSlice,
  goSlice,
  keyConfig,
  normalizeWorkdir,
  shellOf,
  short,
  type StageResult,
  type State,
} from './run-config.js';
import { envFromList, ShellLex, type EnvLookup } from './shell-lex.js';
import { copyStep, mkdirAll } from './step-copy.js';
import { commitUpperDir, StepRootfs, type StepLayer } from './step-rootfs.js';
import { runStep } from './step-run.js';

class DependencyFailed extends Error {}

/** One build in progress. Members that are not private are what the step executors (step-run.ts, step-copy.ts) use. */
export class BuildRun {
  readonly containers = new Set<string>();
  private readonly views = new Set<StepRootfs>();
  readonly roots: ConfinedRoot[] = [];
  private cacheFrom: Set<string> | undefined;
  stages: StageResult[] = [];
  stageNames = new Map<string, number>();
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
  current = 0;

  private readonly ac = new AbortController();
  readonly signal: AbortSignal;

  constructor(
    readonly svc: BuildService,
    readonly d: BuildServiceDeps,
    readonly o: BuildOptions,
    readonly emit: BuildEmit,
    clientGone: AbortSignal,
    /** The build's private directory (context, views, downloads), made by workDir() when first needed. */
    readonly dir: string,
    private readonly holder: string,
    readonly memo: ChecksumMemo,
  ) {
    this.signal = this.ac.signal;
    if (clientGone.aborted) this.ac.abort();
    else clientGone.addEventListener('abort', () => this.ac.abort(), { once: true });
  }

  /** Stops every stage still running (their RUN containers are killed). */
  private abort(): void {
    this.ac.abort();
  }

  out(text: string): void {
    this.emit({ stream: text });
  }

  /** The context tree, unpacked from the spooled tar the first time a step needs it (once for all stages). */
  context(): Promise<ConfinedRoot> {
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
  commitLayer(chainId: string | null, upper: string): Promise<StepLayer | undefined> {
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

  checkCancelled(): void {
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
        return runStep(this, state, c);
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
        return copyStep(this, state, c, x);
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

  probe(state: State, probeCfg: ContainerConfigJson): boolean {
    if (this.o.noCache) return false;
    const img = this.svc.probe(this.cacheKey(state, probeCfg), this.cacheFrom, this.shared.cacheUsed);
    if (!img) return false;
    this.out(' ---> Using cache\n');
    state.imageId = img.id;
    state.chainId = img.chainId;
    return true;
  }

  /** The image of one step: the parent's config and history plus this step, and the step's layer (if any). */
  commitImage(state: State, containerConfig: ContainerConfigJson, layer: StepLayer | undefined, containerId: string): void {
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

  openView(chainId: string | null): StepRootfs {
    const v = StepRootfs.open(this.d.images.layers, this.d.execRoot, this.workDir(), chainId, this.d.log);
    this.views.add(v);
    return v;
  }

  closeView(v: StepRootfs): void {
    v.release();
    this.views.delete(v);
  }
}
