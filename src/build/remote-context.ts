// POST /build?remote=: a git repository (cloned with the git binary) or a URL to a tarball or a Dockerfile.

import { lstatSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidParameterError, errorMessage } from '../errors.js';
import { detectFileCompression } from '../archive/decompress.js';
import type { Logger } from '../util/logger.js';
import { runTool } from '../util/run-tool.js';
import { extractContext } from './build-context.js';
import { cleanPath } from './dockerignore.js';

type Emit = (m: Record<string, unknown>) => void;

/** dockerd's urlutil.IsGitURL. */
export function isGitUrl(s: string): boolean {
  if (/^(git:\/\/|github\.com\/|git@)/.test(s)) return true;
  return /^https?:\/\/.*\.git(?:#.+)?$/.test(s);
}

/** Fills `contextDir` from the remote; returns the Dockerfile text when the URL was a plain Dockerfile. */
export async function fetchRemoteContext(remote: string, contextDir: string, log: Logger, emit: Emit): Promise<{ dockerfileText?: string }> {
  if (isGitUrl(remote)) {
    await cloneGit(remote, contextDir, log);
    return {};
  }
  if (!/^https?:\/\//.test(remote)) throw new InvalidParameterError(`unable to prepare context: remote URL ${remote} is not supported`);
  const file = `${contextDir}.download`;
  let res: Response;
  try {
    res = await fetch(remote, { redirect: 'follow' });
  } catch (e) {
    throw new InvalidParameterError(`unable to prepare context: ${errorMessage((e as { cause?: unknown }).cause ?? e)}`);
  }
  if (!res.ok || !res.body) throw new InvalidParameterError(`unable to prepare context: error downloading remote context ${remote}: ${res.status} ${res.statusText}`);
  emit({ status: 'Downloading context', id: remote });
  await pipeline(Readable.fromWeb(res.body as never), createWriteStream(file, { mode: 0o600 }));
  try {
    const head = Buffer.alloc(512);
    const fh = await import('node:fs/promises').then((m) => m.open(file, 'r'));
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    await fh.close();
    const isTar = detectFileCompression(file) !== 'none' || (bytesRead >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar');
    if (isTar) {
      await extractContext(createReadStream(file), contextDir);
      return {};
    }
    mkdirSync(contextDir, { recursive: true, mode: 0o700 });
    return { dockerfileText: await readFile(file, 'utf8') };
  } finally {
    rmSync(file, { force: true });
  }
}

async function cloneGit(remote: string, contextDir: string, log: Logger): Promise<void> {
  let url = remote;
  let fragment = '';
  const hash = remote.indexOf('#');
  if (hash >= 0) {
    url = remote.slice(0, hash);
    fragment = remote.slice(hash + 1);
  }
  if (url.startsWith('github.com/')) url = `https://${url}`;
  const [ref = '', subdir = ''] = fragment.split(':', 2);
  const clone = `${contextDir}.git`;
  const args = ['clone', '--recurse-submodules', '--depth', '1', ...(ref ? ['--branch', ref] : []), '--', url, clone];
  try {
    await runTool(log, 'git', args);
  } catch (e) {
    if (!ref) throw new InvalidParameterError(`unable to prepare context: unable to 'git clone' to temporary context directory: ${errorMessage(e)}`);
    // a commit rather than a branch or tag: full clone and checkout
    rmSync(clone, { recursive: true, force: true });
    try {
      await runTool(log, 'git', ['clone', '--recurse-submodules', '--', url, clone]);
      await runTool(log, 'git', ['-C', clone, 'checkout', ref]);
    } catch (e2) {
      rmSync(clone, { recursive: true, force: true });
      throw new InvalidParameterError(`unable to prepare context: unable to 'git clone' to temporary context directory: ${errorMessage(e2)}`);
    }
  }
  rmSync(`${clone}/.git`, { recursive: true, force: true });
  let src = clone;
  if (subdir !== '') {
    const rel = cleanPath(subdir).replace(/^\/+/, '');
    if (rel === '..' || rel.startsWith('../')) throw new InvalidParameterError(`unable to prepare context: invalid subdirectory ${subdir}`);
    let cur = clone;
    for (const part of rel.split('/')) {
      cur = `${cur}/${part}`;
      let st;
      try {
        st = lstatSync(cur);
      } catch {
        throw new InvalidParameterError(`unable to prepare context: path "${subdir}" not found in the repository`);
      }
      if (!st.isDirectory()) throw new InvalidParameterError(`unable to prepare context: path "${subdir}" is not a directory in the repository`);
    }
    src = cur;
  }
  renameSync(src, contextDir);
  rmSync(clone, { recursive: true, force: true });
}
