// COPY and ADD: sources from the context, another stage or an image (ADD also URLs and local archives, which it
// unpacks), resolved inside their root by fd, checksummed for the cache key as the classic builder's tarsum,
// and copied through an overlay view of the stage's image whose upper directory becomes the step's layer.

import { randomBytes } from 'node:crypto';
import { constants as C, createReadStream, createWriteStream, mkdirSync, openSync, utimesSync, type Stats } from 'node:fs';
import { lchown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, InvalidParameterError, NotFoundError } from '../errors.js';
import { ArchiveExtractor } from '../containers/archive.js';
import { ConfinedRoot, type Resolved } from '../containers/confined-root.js';
import { tarTree } from '../containers/tree-tar.js';
import { readAccountFile } from '../containers/user-resolve.js';
import type { ContainerConfigJson } from '../images/image-config.js';
import { decompressStream } from '../archive/decompress.js';
import { stableHash } from './build-cache.js';
import { entryChecksum, globContext, hasWildcards } from './build-context.js';
import type { BuildRun } from './build-run.js';
import { cleanPath } from './dockerignore.js';
import type { Command } from './instructions.js';
import { copyConfig, isUrl, normalizeDest, shellOf, type StageResult, type State } from './run-config.js';
import type { StepLayer, StepRootfs } from './step-rootfs.js';

/** COPY and ADD: the sources checksummed (the cache key), then copied into an overlay view committed as the layer. */
export async function copyStep(run: BuildRun, state: State, c: Extract<Command, { kind: 'add' | 'copy' }>, x: (w: string) => string): Promise<void> {
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
  const sumsKey = fromContext && run.contextKey !== undefined ? `${run.contextKey}\0${JSON.stringify(sources)}` : undefined;
  const known = sumsKey !== undefined ? run.svc.contextSums.get(sumsKey) : undefined;
  if (known !== undefined && run.probe(state, { ...copyConfig(rc), Cmd: [...shellOf(rc), `#(nop) ${comment(known)}`] })) return;

  let srcRoot: ConfinedRoot;
  let fromView: StepRootfs | undefined;
  if (c.kind === 'copy' && c.from !== '') {
    const fromName = x(c.from);
    const chain = await fromSource(run, fromName);
    fromView = run.openView(chain);
    srcRoot = fromView.root;
  } else srcRoot = await run.context();
  try {
    const infos: { resolved: Resolved; hash: string; downloaded?: { path: string; mtime?: number; name: string } }[] = [];
    let wildcard = false;
    try {
      for (const s of sources) {
        if (c.kind === 'add' && isUrl(s)) {
          infos.push(await download(run, s));
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
            ck = await entryChecksum(r.dirFd, r.name, run.memo);
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
        if (run.svc.contextSums.size >= 4096) run.svc.contextSums.clear();
        run.svc.contextSums.set(sumsKey, srcHash);
      }
      const probeCfg: ContainerConfigJson = { ...copyConfig(rc), Cmd: [...shellOf(rc), `#(nop) ${comment(srcHash)}`] };
      if (run.probe(state, probeCfg)) return;

      const destPath = normalizeDest(rc.WorkingDir ?? '', dest);
      if ((infos.length > 1 || wildcard && infos.length > 1) && !destPath.endsWith('/')) {
        throw new InvalidParameterError(`When using ${name} with more than one source file, the destination must be a directory and end with a /`);
      }
      const view = run.openView(state.chainId);
      let layer: StepLayer | undefined;
      try {
        const identity = chown ? await chownIdentity(run, state, chown) : { uid: 0, gid: 0 };
        const preserve = c.kind === 'copy' && c.from !== '' && chown === '';
        for (const info of infos) {
          await copyOne(run, view.root, info, destPath, preserve ? undefined : identity, c.kind === 'add', name);
        }
        view.unmount();
        layer = await run.commitLayer(state.chainId, view.upper);
      } finally {
        run.closeView(view);
      }
      run.commitImage(state, probeCfg, layer, randomBytes(32).toString('hex'));
    } finally {
      for (const i of infos) i.resolved.close();
    }
  } finally {
    if (fromView) run.closeView(fromView);
  }
}

/** COPY --from: a stage by name or index, else an image (pulled when missing). */
async function fromSource(run: BuildRun, name: string): Promise<string | null> {
  const byName = run.stageNames.get(name.toLowerCase());
  if (byName !== undefined && byName < run.current) return (run.stages[byName] as StageResult).chainId;
  if (/^\d+$/.test(name)) {
    const ix = Number(name);
    if (ix === run.current) throw new InvalidParameterError(`invalid from flag value ${name}: refers to current build stage`);
    if (ix > run.current) throw new InvalidParameterError(`invalid from flag value ${name}: index out of bounds`);
    return (run.stages[ix] as StageResult).chainId;
  }
  try {
    const img = await run.svc.baseImage(name, false, run.o.platform, run.o.authConfigs, run.emit);
    return img.chainId;
  } catch (e) {
    throw new InvalidParameterError(`invalid from flag value ${name}: ${errorMessage(e)}`);
  }
}

async function chownIdentity(run: BuildRun, state: State, chown: string): Promise<{ uid: number; gid: number }> {
  const [user = '', group0] = chown.split(':', 2);
  const group = group0 === undefined || group0 === '' ? user : group0;
  const dirs = state.chainId ? run.d.images.layers.lowerDirs(state.chainId) : [];
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

async function copyOne(run: BuildRun, 
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
    await extractInto(run, root, destAbs, Readable.from(tarTree(r.dirFd, r.name, '', '/')), identity);
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
  await extractInto(run, root, destDir, Readable.from(tarTree(r.dirFd, r.name, base, '/')), identity);
}

async function extractInto(run: BuildRun, root: ConfinedRoot, dir: string, tar: Readable, identity: { uid: number; gid: number } | undefined): Promise<void> {
  const ex = new ArchiveExtractor(root, canonical(root, dir), {
    noOverwriteDirNonDir: false,
    ...(identity ? { chown: identity } : {}),
    mounts: [],
    readonlyRootfs: false,
  });
  await ex.extract(tar);
}

/** ADD <url>: downloaded into the build dir, mode 0600 and the Last-Modified time as dockerd does. */
async function download(run: BuildRun, url: string): Promise<{ resolved: Resolved; hash: string; downloaded: { path: string; mtime?: number; name: string } }> {
  const dlDir = join(run.workDir(), `dl-${randomBytes(6).toString('hex')}`);
  await mkdir(dlDir, { mode: 0o700 });
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow', signal: run.signal });
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
  run.roots.push(root);
  const r = root.resolve(`/${fname}`, false);
  const ck = await entryChecksum(r.dirFd, r.name, run.memo);
  return { resolved: r, hash: `file:${ck.hash}`, downloaded: { path, ...(Number.isNaN(mtime) ? {} : { mtime }), name: fname } };
}

function statIn(root: ConfinedRoot, path: string): Stats | undefined {
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
export async function mkdirAll(root: ConfinedRoot, path: string, uid: number, gid: number): Promise<void> {
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
