import { posix } from 'node:path';
import { InvalidParameterError } from '../errors.js';

/** HostConfig.Mounts[] entry (Docker's `Mount`). */
export interface ApiMount {
  Target?: string;
  Source?: string;
  Type?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: {
    Propagation?: string;
    NonRecursive?: boolean;
    CreateMountpoint?: boolean;
    ReadOnlyNonRecursive?: boolean;
    ReadOnlyForceRecursive?: boolean;
  } | null;
  VolumeOptions?: {
    NoCopy?: boolean;
    Labels?: Record<string, string> | null;
    DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null;
    Subpath?: string;
  } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number; Options?: string[][] | null } | null;
  ImageOptions?: unknown;
  ClusterOptions?: unknown;
}

export type MountType = 'bind' | 'volume' | 'tmpfs';

/** A parsed `-v` / `--mount` entry, before volumes are looked up or created (dockerd's MountPoint). */
export interface ParsedMount {
  type: MountType;
  /** Bind: the cleaned host path. Volume/tmpfs: ''. */
  source: string;
  /** Volume name; '' for an anonymous volume. */
  name: string;
  /** Cleaned container path. */
  destination: string;
  rw: boolean;
  /** The `-v` mode string as given (`ro,z`); '' for --mount. */
  mode: string;
  /** Bind: given or `rprivate`. Others: ''. */
  propagation: string;
  /** Volume driver asked for ('' = default). */
  driver: string;
  /** Copy the image's content into a new empty volume (false with nocopy / NoCopy). */
  copyData: boolean;
  /** The Mount object equivalent to the request, as dockerd records it. */
  spec: ApiMount;
}

const RW_MODES = new Set(['rw', 'ro']);
const LABEL_MODES = new Set(['z', 'Z']);
const PROPAGATION_MODES = new Set(['private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared']);
const CONSISTENCY_MODES = new Set(['consistent', 'cached', 'delegated']);
const COPY_MODES = new Set(['nocopy']);
export const DEFAULT_PROPAGATION = 'rprivate';

function errInvalidSpec(raw: string): InvalidParameterError {
  return new InvalidParameterError(`invalid volume specification: '${raw}'`);
}

function errInvalidMode(mode: string): InvalidParameterError {
  return new InvalidParameterError(`invalid mode: ${mode}`);
}

/** dockerd's linuxValidMountMode: each kind of option at most once, nothing unknown. */
export function validMountMode(mode: string): boolean {
  if (mode === '') return true;
  const counts = { rw: 0, label: 0, prop: 0, copy: 0, cons: 0 };
  for (const o of mode.split(',')) {
    if (RW_MODES.has(o)) counts.rw++;
    else if (LABEL_MODES.has(o)) counts.label++;
    else if (PROPAGATION_MODES.has(o)) counts.prop++;
    else if (COPY_MODES.has(o)) counts.copy++;
    else if (CONSISTENCY_MODES.has(o)) counts.cons++;
    else return false;
  }
  return Object.values(counts).every((n) => n <= 1);
}

function readWrite(mode: string): boolean {
  if (!validMountMode(mode)) return false;
  return !mode.split(',').includes('ro');
}

function propagationOf(mode: string): string | undefined {
  return mode.split(',').find((o) => PROPAGATION_MODES.has(o));
}

function clean(p: string): string {
  return posix.normalize(p.replace(/\\/g, '/')).replace(/(.)\/+$/, '$1');
}

function mountConfigError(m: ApiMount, msg: string): InvalidParameterError {
  return new InvalidParameterError(`invalid mount config for type ${JSON.stringify(m.Type ?? '')}: ${msg}`);
}

/** dockerd's ConvertTmpfsOptions: `ro`, `mode=<octal>`, `size=<n>[kmg]`, then exec/noexec. */
export function convertTmpfsOptions(opt: ApiMount['TmpfsOptions'], readOnly: boolean): string {
  const raw: string[] = [];
  if (readOnly) raw.push('ro');
  if (opt?.Mode) raw.push(`mode=${opt.Mode.toString(8)}`);
  if (opt?.SizeBytes) {
    let size = opt.SizeBytes;
    let suffix = '';
    for (const [s, d] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
      if (size % d === 0) {
        size /= d;
        suffix = s;
        break;
      }
    }
    raw.push(`size=${size}${suffix}`);
  }
  for (const o of opt?.Options ?? []) {
    if (o.length < 1 || o.length > 2) throw new InvalidParameterError('invalid option array length');
    const [k, v] = o;
    if (k !== 'exec' && k !== 'noexec') throw new InvalidParameterError(`invalid option: ${k ?? ''}`);
    raw.push(v === undefined ? k : `${k}=${v}`);
  }
  return raw.join(',');
}

// moby/sys/mount flags: options sharing a kernel flag collide (the later wins); propagation is one slot.
const FLAG_KEYS: Record<string, string> = {
  ro: 'rdonly', rw: 'rdonly', suid: 'nosuid', nosuid: 'nosuid', dev: 'nodev', nodev: 'nodev', exec: 'noexec', noexec: 'noexec',
  sync: 'sync', async: 'sync', dirsync: 'dirsync', remount: 'remount', mand: 'mand', nomand: 'mand', atime: 'noatime',
  noatime: 'noatime', diratime: 'nodiratime', nodiratime: 'nodiratime', bind: 'bind', rbind: 'rbind', relatime: 'relatime',
  norelatime: 'relatime', strictatime: 'strictatime', nostrictatime: 'strictatime',
  private: 'prop', rprivate: 'prop', shared: 'prop', rshared: 'prop', slave: 'prop', rslave: 'prop', unbindable: 'prop', runbindable: 'prop',
};
const TMPFS_DATA_KEYS = new Set(['size', 'mode', 'uid', 'gid', 'nr_inodes', 'nr_blocks', 'mpol']);

/** moby/sys/mount MergeTmpfsOptions: de-duplicates, later options win, order otherwise kept. */
export function mergeTmpfsOptions(options: readonly string[]): string[] {
  const flags = new Set<string>();
  const data = new Set<string>();
  const out: string[] = [];
  for (let i = options.length - 1; i >= 0; i--) {
    const o = options[i] ?? '';
    if (o === 'defaults') continue;
    const fk = FLAG_KEYS[o];
    if (fk !== undefined) {
      if (!flags.has(fk)) {
        out.unshift(o);
        flags.add(fk);
      }
      continue;
    }
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    if (eq < 0 || !TMPFS_DATA_KEYS.has(key)) throw new InvalidParameterError(`invalid tmpfs option ${JSON.stringify(key)}`);
    if (!data.has(key)) {
      out.unshift(o);
      data.add(key);
    }
  }
  return out;
}

/** OCI options of a tmpfs mount as dockerd builds them (`noexec,nosuid,nodev,rprivate` + data). */
export function tmpfsOciOptions(data: string): string[] {
  const base = ['noexec', 'nosuid', 'nodev', DEFAULT_PROPAGATION];
  return mergeTmpfsOptions(data === '' ? base : [...base, ...data.split(',')]);
}

export interface ValidateOptions {
  /** Check that a bind source exists (--mount); `-v` creates it instead. */
  bindSourceMustExist: boolean;
  exists?: (path: string) => boolean;
  /** Whether recursively read-only mounts can be made here (ReadOnlyForceRecursive needs them); default yes. */
  recursiveReadOnly?: boolean;
}

/** dockerd's validateMountConfigImpl (Linux). */
export function validateMountConfig(m: ApiMount, opts: ValidateOptions): void {
  // JSON from the wire: wrong types are refused as Go's decoder would refuse them.
  for (const f of ['Type', 'Source', 'Target'] as const) {
    const v: unknown = m[f];
    if (v !== undefined && v !== null && typeof v !== 'string') {
      throw new InvalidParameterError(`json: cannot unmarshal ${typeof v} into Go struct field Mount.HostConfig.Mounts.${f} of type string`);
    }
  }
  const type = m.Type ?? '';
  if (type !== 'bind' && m.BindOptions) throw mountConfigError(m, 'field BindOptions must not be specified');
  if (type !== 'volume' && m.VolumeOptions) throw mountConfigError(m, 'field VolumeOptions must not be specified');
  if (type !== 'image' && m.ImageOptions) throw mountConfigError(m, 'field ImageOptions must not be specified');
  if (type !== 'tmpfs' && m.TmpfsOptions) throw mountConfigError(m, 'field TmpfsOptions must not be specified');
  if (type !== 'cluster' && m.ClusterOptions) throw mountConfigError(m, 'field ClusterOptions must not be specified');
  const target = m.Target ?? '';
  if (target === '') throw mountConfigError(m, 'field Target must not be empty');
  if (clean(target) === '/') throw mountConfigError(m, "invalid specification: destination can't be '/'");
  if (!target.replace(/\\/g, '/').startsWith('/')) {
    throw mountConfigError(m, `invalid mount path: '${target.replace(/\\/g, '/')}' mount path must be absolute`);
  }
  const source = m.Source ?? '';
  switch (type) {
    case 'bind': {
      if (source === '') throw mountConfigError(m, 'field Source must not be empty');
      const prop = m.BindOptions?.Propagation ?? '';
      if (prop !== '' && !PROPAGATION_MODES.has(prop)) throw mountConfigError(m, `invalid propagation mode: ${prop}`);
      const bo = m.BindOptions;
      if (bo?.ReadOnlyNonRecursive && !m.ReadOnly) throw mountConfigError(m, 'option ReadOnlyNonRecursive requires ReadOnly');
      if (bo?.ReadOnlyForceRecursive) {
        if (!m.ReadOnly) throw mountConfigError(m, 'option ReadOnlyForceRecursive requires ReadOnly');
        if (bo.ReadOnlyNonRecursive) throw mountConfigError(m, 'option ReadOnlyForceRecursive conflicts with ReadOnlyNonRecursive');
        if (prop !== '' && prop !== 'rprivate') throw mountConfigError(m, "option ReadOnlyForceRecursive requires BindOptions.Propagation to be 'rprivate'");
        if (!(opts.recursiveReadOnly ?? true)) throw mountConfigError(m, 'option ReadOnlyForceRecursive needs recursively read-only mounts (mount_setattr, Linux 5.12)');
      }
      if (!source.replace(/\\/g, '/').startsWith('/')) {
        throw mountConfigError(m, `invalid mount path: '${source.replace(/\\/g, '/')}' mount path must be absolute`);
      }
      if (opts.bindSourceMustExist && !m.BindOptions?.CreateMountpoint && !(opts.exists?.(source) ?? true)) {
        throw mountConfigError(m, `bind source path does not exist: ${source}`);
      }
      break;
    }
    case 'volume': {
      const sub = m.VolumeOptions?.Subpath ?? '';
      if (sub !== '') {
        if (source === '') throw mountConfigError(m, 'must not set Subpath when using anonymous volumes');
        // Go's filepath.IsLocal: relative, and never climbing out.
        const cleaned = posix.normalize(sub);
        if (sub.startsWith('/') || cleaned === '..' || cleaned.startsWith('../')) {
          throw mountConfigError(m, 'subpath must be a relative path within the volume');
        }
      }
      break;
    }
    case 'tmpfs':
      if (source !== '') throw mountConfigError(m, 'field Source must not be specified');
      convertTmpfsOptions(m.TmpfsOptions, m.ReadOnly === true);
      break;
    case 'image':
      throw mountConfigError(m, 'image mounts are not supported by Berth');
    default:
      throw mountConfigError(m, 'mount type unknown');
  }
}

function fromSpec(m: ApiMount): ParsedMount {
  const type = m.Type as MountType;
  const p: ParsedMount = {
    type,
    source: '',
    name: '',
    destination: clean(m.Target ?? ''),
    rw: m.ReadOnly !== true,
    mode: '',
    propagation: '',
    driver: '',
    copyData: false,
    spec: m,
  };
  if (type === 'volume') {
    p.name = m.Source ?? '';
    p.copyData = true;
    if (m.VolumeOptions?.DriverConfig?.Name) p.driver = m.VolumeOptions.DriverConfig.Name;
    if (m.VolumeOptions?.NoCopy) p.copyData = false;
  } else if (type === 'bind') {
    p.source = clean(m.Source ?? '');
    p.propagation = m.BindOptions?.Propagation || DEFAULT_PROPAGATION;
  }
  return p;
}

/** `--mount` / HostConfig.Mounts entry (bind sources must exist unless CreateMountpoint). */
export function parseMountSpec(m: ApiMount, exists?: (path: string) => boolean): ParsedMount {
  validateMountConfig(m, { bindSourceMustExist: true, exists });
  return fromSpec(m);
}

/**
 * `-v` / HostConfig.Binds entry: `name:/dst[:mode]`, `/host:/dst[:mode]`, or `/dst` (anonymous).
 * Errors carry dockerd's texts (`invalid volume specification: '...'`, `invalid mode: ...`).
 */
export function parseBind(raw: string, volumeDriver = ''): ParsedMount {
  const parts = raw.split(':');
  const arr = parts.length > 4 ? [...parts.slice(0, 3), parts.slice(3).join(':')] : parts;
  if ((arr[0] ?? '') === '') throw errInvalidSpec(raw);
  const spec: ApiMount = {};
  let mode = '';
  switch (arr.length) {
    case 1:
      spec.Target = arr[0];
      break;
    case 2:
      // `/foo:rw` is a destination with a mode, which a volume cannot be.
      if (validMountMode(arr[1] ?? '')) throw errInvalidSpec(raw);
      spec.Source = arr[0];
      spec.Target = arr[1];
      break;
    case 3:
      spec.Source = arr[0];
      spec.Target = arr[1];
      mode = arr[2] ?? '';
      break;
    default:
      throw errInvalidSpec(raw);
  }
  if (!validMountMode(mode)) throw errInvalidMode(mode);
  spec.Type = (spec.Source ?? '').startsWith('/') ? 'bind' : 'volume';
  spec.ReadOnly = !readWrite(mode);
  if (volumeDriver !== '' && spec.Type === 'volume') spec.VolumeOptions = { DriverConfig: { Name: volumeDriver } };
  if (mode.split(',').includes('nocopy')) spec.VolumeOptions = { ...(spec.VolumeOptions ?? {}), NoCopy: true };
  const prop = propagationOf(mode);
  if (prop !== undefined) spec.BindOptions = { Propagation: prop };
  try {
    validateMountConfig(spec, { bindSourceMustExist: false });
  } catch (e) {
    throw new InvalidParameterError(`invalid volume specification: '${raw}': ${(e as Error).message}`);
  }
  const p = fromSpec(spec);
  p.mode = mode;
  return p;
}

/** `--volumes-from ctr[:ro|rw]`: the container reference and the mode (default `rw`). */
export function parseVolumesFrom(spec: string): { container: string; mode: string } {
  if (spec === '') throw new InvalidParameterError('volumes-from specification cannot be an empty string');
  const i = spec.indexOf(':');
  const container = i < 0 ? spec : spec.slice(0, i);
  const mode = i < 0 ? '' : spec.slice(i + 1);
  if (mode === '') return { container, mode: 'rw' };
  if (!validMountMode(mode)) throw errInvalidMode(mode);
  // Propagation and copy modes are not allowed: the source container's mounts decide them.
  if (propagationOf(mode) !== undefined || mode.split(',').includes('nocopy')) throw errInvalidMode(mode);
  return { container, mode };
}

/** Whether a `--volumes-from` mode keeps mounts writable. */
export function volumesFromReadWrite(mode: string): boolean {
  return readWrite(mode);
}

export function cleanContainerPath(p: string): string {
  return clean(p);
}
