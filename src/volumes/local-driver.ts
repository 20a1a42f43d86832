import { mkdir, readFile, readdir, lstat, realpath, rm } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Logger } from '../util/logger.js';
import { runTool } from '../util/run-tool.js';
import { BerthError, InvalidParameterError } from '../errors.js';

export const LOCAL_DRIVER = 'local';

/** dockerd's names.RestrictedNameChars / RestrictedNamePattern. */
export const RESTRICTED_NAME_CHARS = '[a-zA-Z0-9][a-zA-Z0-9_.-]';
const RESTRICTED_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

const VALID_OPTS = new Set(['type', 'o', 'device', 'size']);
// Checked in a fixed order (dockerd walks a Go map, so its order varies).
const MANDATORY_OPTS: [string, string[]][] = [
  ['device', ['type']],
  ['type', ['device']],
  ['o', ['device', 'type']],
];

/** The local driver's name rule, with dockerd's texts (callers prefix `create <name>: `). */
export function validateVolumeName(name: string): void {
  if (name.length === 1) {
    throw new InvalidParameterError('volume name is too short, names should be at least two alphanumeric characters');
  }
  // A directory name: beyond NAME_MAX mkdir fails (dockerd answers that with a 500; a bad name is the client's error).
  if (Buffer.byteLength(name) > 255) {
    throw new InvalidParameterError('volume name is too long, names should be at most 255 characters');
  }
  if (!RESTRICTED_NAME.test(name)) {
    throw new InvalidParameterError(
      `${JSON.stringify(name)} includes invalid characters for a local volume name, only ${JSON.stringify(RESTRICTED_NAME_CHARS)} are allowed. If you intended to pass a host directory, use absolute path`,
    );
  }
}

/** go-units RAMInBytes: binary multiples, optional `b`/`ib` suffix. */
export function ramInBytes(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(value.trim());
  if (!m) throw new InvalidParameterError(`invalid size: '${value}'`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.floor(Number(m[1]) * (mult[(m[2] ?? '').toLowerCase()] ?? 1));
}

/** The local driver's option rules (`type`, `o`, `device`, `size`), dockerd's texts. */
export function validateVolumeOptions(opts: Readonly<Record<string, string>> | null | undefined): void {
  if (!opts || Object.keys(opts).length === 0) return;
  for (const k of Object.keys(opts)) {
    if (!VALID_OPTS.has(k)) throw new InvalidParameterError(`invalid option: ${JSON.stringify(k)}`);
  }
  if (opts.type === 'cifs' && opts.device) {
    let port = '';
    try {
      port = new URL(opts.device).port;
    } catch {
      // not a URL: mount(8) will judge it
    }
    if (port !== '') throw new InvalidParameterError("port not allowed in CIFS device URL, include 'port' in 'o='");
  }
  if (opts.size !== undefined && ramInBytes(opts.size) > 0) {
    // No project quotas on the volumes directory (dockerd: only XFS with pquota).
    throw new InvalidParameterError('quota size requested but no quota support');
  }
  for (const [opt, required] of MANDATORY_OPTS) {
    if (opts[opt] === undefined) continue;
    for (const r of required) {
      if (opts[r] === undefined) throw new InvalidParameterError(`missing required option: ${JSON.stringify(r)}`);
    }
  }
}

/** True when the volume's options ask for a filesystem to be mounted on its `_data` (tmpfs, bind, nfs...). */
export function needsMount(opts: Readonly<Record<string, string>> | null | undefined): boolean {
  return !!opts && ((opts.device ?? '') !== '' || (opts.type ?? '') !== '');
}

/** What mount(2) gets for a volume with options: `mount -t type -o o device <_data>`. */
export interface VolumeMountDescription {
  type: string;
  device: string;
  options: string;
  target: string;
}

/** Decodes the octal escapes of /proc/self/mountinfo. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function isMountPoint(path: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[4] !== undefined && unescapeMountinfo(f[4]) === path) return true;
  }
  return false;
}


/**
 * The local volume driver: `<data-root>/volumes/<name>/_data`, names restricted so nothing escapes the
 * volumes directory, optional mounts (tmpfs, bind, nfs...) on `_data` while containers use the volume.
 */
export class LocalDriver {
  readonly root: string;
  /** Volume name → mount references (container IDs) holding its `_data` mount. */
  private readonly active = new Map<string, Set<string>>();

  constructor(
    dataRoot: string,
    private readonly log: Logger,
  ) {
    this.root = join(dataRoot, 'volumes');
  }

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o701 });
  }

  /** Volume directories present on disk (a valid name and a `_data` inside), with their ctime. */
  async scan(): Promise<{ name: string; createdNano: bigint }[]> {
    const out: { name: string; createdNano: bigint }[] = [];
    for (const ent of await readdir(this.root, { withFileTypes: true })) {
      if (!ent.isDirectory()) continue;
      try {
        validateVolumeName(ent.name);
      } catch {
        continue;
      }
      try {
        await lstat(join(this.root, ent.name, '_data'));
      } catch {
        continue;
      }
      const st = await lstat(join(this.root, ent.name), { bigint: true });
      out.push({ name: ent.name, createdNano: st.ctimeNs });
    }
    return out;
  }

  /** The volume's directory; refuses any name that could leave the volumes directory. */
  volumeDir(name: string): string {
    validateVolumeName(name);
    const dir = join(this.root, name);
    if (!dir.startsWith(this.root + sep) || dir.slice(this.root.length + 1).includes(sep) || name === '.' || name === '..') {
      throw new InvalidParameterError(`invalid volume name: ${name}`);
    }
    return dir;
  }

  dataPath(name: string): string {
    return join(this.volumeDir(name), '_data');
  }

  async create(name: string): Promise<string> {
    const dir = this.volumeDir(name);
    const data = join(dir, '_data');
    try {
      await mkdir(dir, { recursive: true, mode: 0o701 });
      await mkdir(data, { recursive: true, mode: 0o755 });
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw new BerthError(`error while creating volume data path '${data}': ${(e as Error).message}`, { cause: e });
    }
    return data;
  }

  /** Removes the volume's directory (after unmounting its `_data` if something is mounted there). */
  async remove(name: string, opts: Readonly<Record<string, string>> | null): Promise<void> {
    const dir = this.volumeDir(name);
    const data = join(dir, '_data');
    if ((this.active.get(name)?.size ?? 0) > 0) throw new BerthError('volume has active mounts');
    if (needsMount(opts) && (await isMountPoint(data).catch(() => false))) {
      await runTool(this.log, 'umount', [data]);
    }
    let real: string;
    try {
      real = await realpath(data);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      real = dir;
    }
    if (real === this.root || !real.startsWith(this.root + sep)) {
      throw new BerthError(`unable to remove a directory outside of the local volume root ${this.root}: ${real}`);
    }
    await rm(real, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
    this.active.delete(name);
  }

  describeMount(name: string, opts: Readonly<Record<string, string>>): VolumeMountDescription {
    return { type: opts.type ?? '', device: opts.device ?? '', options: opts.o ?? '', target: this.dataPath(name) };
  }

  /** Takes a mount reference; the first one mounts the volume's filesystem on `_data` when its options ask for one. */
  async mount(name: string, opts: Readonly<Record<string, string>> | null, ref: string): Promise<string> {
    const data = this.dataPath(name);
    if (!needsMount(opts) || !opts) return data;
    let refs = this.active.get(name);
    if (!refs) {
      refs = new Set();
      this.active.set(name, refs);
    }
    if (refs.size === 0 && !(await isMountPoint(data))) {
      const d = this.describeMount(name, opts);
      if (d.device === '') throw new BerthError('missing device in volume options');
      const args = ['-t', d.type];
      if (d.options !== '') args.push('-o', d.options);
      args.push(d.device, data);
      try {
        await mkdir(data, { recursive: true, mode: 0o755 });
        await runTool(this.log, 'mount', args);
      } catch (e) {
        const msg = (e as Error).message.replace(/password=[^,\s]*/g, 'password=********');
        throw new BerthError(`failed to mount local volume: ${msg}`, { cause: e });
      }
    }
    refs.add(ref);
    return data;
  }

  /** Drops a mount reference; the last one unmounts `_data`. */
  async unmount(name: string, opts: Readonly<Record<string, string>> | null, ref: string): Promise<void> {
    if (!needsMount(opts)) return;
    const refs = this.active.get(name);
    refs?.delete(ref);
    if (refs && refs.size > 0) return;
    this.active.delete(name);
    const data = this.dataPath(name);
    if (await isMountPoint(data)) {
      const r = await runTool(this.log, 'umount', [data], { allowFailure: true });
      if (r.code !== 0 && (await isMountPoint(data))) throw new BerthError(`umount ${data}: ${r.stderr.trim()}`);
    }
  }

  activeRefs(name: string): number {
    return this.active.get(name)?.size ?? 0;
  }
}
