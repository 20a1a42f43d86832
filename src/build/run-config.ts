// What the classic builder keeps per stage (the run config being built, the image so far) and dockerd's small
// formatting and path rules for it: the config copy, the shell, Go's %q/%v/Duration renderings in history
// entries, WORKDIR and COPY destination normalisation, the cache-probe config, EXPOSE port keys.

import { InvalidParameterError } from '../errors.js';
import type { ContainerConfigJson } from '../images/image-config.js';
import type { BuildArgs } from './build-args.js';
import { cleanPath } from './dockerignore.js';

export const DEFAULT_SHELL = ['/bin/sh', '-c'];
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

export function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

export interface StageResult {
  imageId: string;
  chainId: string | null;
}

export interface State {
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
export function copyConfig(c: ContainerConfigJson): ContainerConfigJson {
  return JSON.parse(JSON.stringify(c)) as ContainerConfigJson;
}

export function shellOf(c: ContainerConfigJson): string[] {
  return c.Shell && c.Shell.length > 0 ? [...c.Shell] : [...DEFAULT_SHELL];
}

/** Go's %q of a []string: ["a" "b"]. */
export function goQuoteSlice(a: readonly string[] | null | undefined): string {
  return `[${(a ?? []).map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** Go's %v of a []string: [a b]. */
export function goSlice(a: readonly string[]): string {
  return `[${a.join(' ')}]`;
}

export function goDuration(ns: number): string {
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
export function normalizeWorkdir(current: string, requested: string): string {
  if (requested === '') throw new InvalidParameterError('cannot normalize nothing');
  const p = requested.startsWith('/') ? requested : `${current || '/'}/${requested}`;
  return cleanPath(p);
}

/** dockerd's normalizeDest: relative to WORKDIR, the trailing slash kept. */
export function normalizeDest(workingDir: string, dest: string): string {
  let d = dest;
  if (!d.startsWith('/')) d = `${workingDir || '/'}/${d}`;
  const trailing = d.endsWith('/') || d.endsWith('/.');
  const clean = cleanPath(d);
  return trailing && clean !== '/' ? `${clean}/` : clean;
}

export function isUrl(s: string): boolean {
  return /^https?:\/\//.test(s);
}

/** The cache-probe config: Image is not part of the comparison. */
export function keyConfig(c: ContainerConfigJson): ContainerConfigJson {
  const { Image: _image, Hostname: _h, ...rest } = c;
  void _image;
  void _h;
  return rest;
}

/** EXPOSE port specs → "80/tcp" keys (ranges expanded), dockerd's nat.ParsePortSpecs. */
export function exposeKeys(spec: string): string[] {
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
