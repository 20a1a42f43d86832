// Compiles an OCI spec plus Berth's extras into berth-shim's flat launch plan.
//
// Format: records `<key> <decimal byte length>\n<value bytes>\n`, first `berth-plan 1`. Values are
// binary-safe; compound values separate fields with NUL. All policy is decided here (mount flags
// as numbers, capability masks, device list, namespace flags); the C side only performs it.
//
// Keys (repeatable ones marked *): mode, id, socket, exit_file, state_file, log_path, log_max_size,
// log_max_file, log_format (cri), log_compress, log_attrs (a JSON object, written into every entry), tty, stdin,
// console "<rows> <cols>", clone_flags, ns_join* "<mnt|uts|ipc|net|pid|cgroup|user>:<path>",
// ns_proc "<pid> <start time in ticks>", ns_join_proc* "<mnt|uts|ipc|net|pid|cgroup|user>" (namespaces of ns_proc),
// cgroup_procs*, uid_map, gid_map, rootfs_kind overlay|bind, rootfs, lower*, upper, work, mount_cwd,
// overlay_opts, bind_src, rootfs_ro, root_propagation, mount* "type\0src\0dest\0flags\0pflags\0data", mount_rro (the
// mount before it is made recursively read-only), mount_idmap 1|2 (the bind before it idmapped to the user namespace:
// its top mount, or its whole tree),
// device* "path\0c|b|p\0major\0minor\0mode\0uid\0gid", symlink* "target\0path", masked*, readonly*,
// hostname, domainname, sysctl* "path-under-/proc/sys\0value", rlimit* "resource\0soft|inf\0hard|inf",
// oom_score_adj, uid, gid, group*, umask (octal), cwd, cwd_owner "uid:gid", env*, arg*,
// caps "bnd\0eff\0prm\0inh\0amb" (hex masks), no_new_privs, seccomp (sock_filter bytes), seccomp_flags.

import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidParameterError } from '../errors.js';
import { capabilityMask } from './capabilities.js';
import { DEFAULT_DEVICES, defaultDevSymlinks } from './defaults.js';
import type { LinuxDevice, OciMount, OciNamespaceType, OciSpec } from './oci-spec.js';

export type PlanRecord = [key: string, value: string | Buffer];

export interface OverlayRootfs {
  type: 'overlay';
  /** Nearest layer first (overlay's lowerdir order). Relative names resolve against mountCwd. */
  lowerDirs: string[];
  upperDir?: string;
  workDir?: string;
  /** Directory the shim chdirs to before mounting, so lowerDirs can be short relative names. */
  mountCwd?: string;
  /** Extra overlay options, e.g. "index=off". */
  options?: string;
}

export interface BindRootfs {
  type: 'bind';
  path: string;
}

export type RootfsSource = OverlayRootfs | BindRootfs;

export interface PlanExtras {
  mode: 'create' | 'exec';
  id: string;
  socketPath: string;
  exitFile: string;
  stateFile?: string;
  logPath?: string;
  logMaxSize?: number;
  logMaxFile?: number;
  logFormat?: 'cri';
  /** Rotated files are gzip-compressed (<log>.N.gz). */
  logCompress?: boolean;
  /** json-file extra attributes (labels, env, tag). */
  logAttrs?: Record<string, string>;
  tty: boolean;
  openStdin: boolean;
  consoleSize?: { height: number; width: number };
  /** create: where the rootfs is mounted (inside the container's mount namespace only). */
  rootfsTarget?: string;
  rootfs?: RootfsSource;
  /** cgroup.procs files the shim writes the init's pid into before it runs anything. */
  cgroupProcs?: string[];
  /** The host's cgroup mount root, to turn procs files into /sys/fs/cgroup binds (default /sys/fs/cgroup). */
  cgroupRoot?: string;
  /** true when the host is pure cgroup v2 (a `cgroup` mount becomes `cgroup2`). */
  cgroupV2?: boolean;
  /**
   * A process whose namespaces are joined, with its start time: the shim checks the start time before it
   * joins through a pidfd (or the /proc/<pid> directory it opened), so a pid the process left and another
   * process took is refused, never joined. exec: the container's init and `namespaces`, the ones to join.
   * create: `namespaces` is unused; the spec's namespace paths /proc/<pid>/ns/<name> of this pid (another
   * container's init, for --pid/--ipc/--uts container:<id>) are joined this way, other paths by path.
   */
  nsOf?: { pid: number; startTime: number; namespaces: readonly NsName[] };
  seccompBpf?: Buffer;
  seccompFlags?: number;
  /** Owner of a created working directory (Docker: root). */
  cwdOwner?: { uid: number; gid: number };
}

export type NsName = 'mnt' | 'uts' | 'ipc' | 'net' | 'pid' | 'cgroup' | 'user';

// Linux constants (uapi).
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  REC: 16384,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
} as const;

export const CLONE_NEW: Readonly<Record<Exclude<OciNamespaceType, 'time'>, number>> = {
  mount: 0x00020000,
  cgroup: 0x02000000,
  uts: 0x04000000,
  ipc: 0x08000000,
  user: 0x10000000,
  pid: 0x20000000,
  network: 0x40000000,
};

const NS_NAME: Readonly<Record<Exclude<OciNamespaceType, 'time'>, NsName>> = {
  mount: 'mnt',
  cgroup: 'cgroup',
  uts: 'uts',
  ipc: 'ipc',
  user: 'user',
  pid: 'pid',
  network: 'net',
};

const RLIMITS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

const SET_FLAGS: Readonly<Record<string, number>> = {
  bind: MS.BIND,
  rbind: MS.BIND | MS.REC,
  dirsync: MS.DIRSYNC,
  mand: MS.MANDLOCK,
  noatime: MS.NOATIME,
  nodev: MS.NODEV,
  nodiratime: MS.NODIRATIME,
  noexec: MS.NOEXEC,
  nosuid: MS.NOSUID,
  relatime: MS.RELATIME,
  remount: MS.REMOUNT,
  ro: MS.RDONLY,
  strictatime: MS.STRICTATIME,
  sync: MS.SYNCHRONOUS,
};
const CLEAR_FLAGS: Readonly<Record<string, number>> = {
  async: MS.SYNCHRONOUS,
  atime: MS.NOATIME,
  defaults: 0,
  dev: MS.NODEV,
  diratime: MS.NODIRATIME,
  exec: MS.NOEXEC,
  nomand: MS.MANDLOCK,
  norelatime: MS.RELATIME,
  nostrictatime: MS.STRICTATIME,
  rw: MS.RDONLY,
  suid: MS.NOSUID,
};
const PROPAGATION: Readonly<Record<string, number>> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};
/** Options the runtime interprets itself or ignores (never passed to the kernel as data). */
const IGNORED_OPTIONS = new Set(['tmpcopyup', 'x-mount.mkdir']);

export interface ParsedMountOptions {
  flags: number;
  propagation: number;
  data: string;
  /** `rro` (runc's recursive read-only): every submount read-only too, through mount_setattr(AT_RECURSIVE). */
  recursiveReadOnly: boolean;
  /** `idmap`/`ridmap` (OCI 1.1): a bind idmapped to the container's user namespace (recursively with ridmap). */
  idmap: 'idmap' | 'ridmap' | undefined;
}

/** runc's parseMountOptions: OCI mount options → mount(2) flags, propagation flags and the data string. */
export function parseMountOptions(options: readonly string[] = []): ParsedMountOptions {
  let flags = 0;
  let propagation = 0;
  let recursiveReadOnly = false;
  let idmap: ParsedMountOptions['idmap'];
  const data: string[] = [];
  for (const o of options) {
    if (o === 'idmap' || o === 'ridmap') {
      idmap = o;
      continue;
    }
    if (o === 'rro') {
      flags |= MS.RDONLY;
      recursiveReadOnly = true;
      continue;
    }
    const set = SET_FLAGS[o];
    const clear = CLEAR_FLAGS[o];
    const prop = PROPAGATION[o];
    if (set !== undefined) flags |= set;
    else if (clear !== undefined) flags &= ~clear;
    else if (prop !== undefined) propagation |= prop;
    else if (!IGNORED_OPTIONS.has(o)) data.push(o);
  }
  return { flags, propagation, data: data.join(','), recursiveReadOnly, idmap };
}

function checkString(what: string, s: string): string {
  if (s.includes('\0')) throw new InvalidParameterError(`${what} contains a NUL byte`);
  return s;
}

function checkPath(what: string, p: string): string {
  checkString(what, p);
  if (!p.startsWith('/')) throw new InvalidParameterError(`${what} must be an absolute path: ${JSON.stringify(p)}`);
  return p;
}

/** Encodes records into the plan's byte format. */
export function encodePlan(records: readonly PlanRecord[]): Buffer {
  const parts: Buffer[] = [Buffer.from('berth-plan 1\n1\n')];
  for (const [k, v] of records) {
    if (!/^[a-z_]+$/.test(k)) throw new Error(`bad plan key ${k}`);
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    parts.push(Buffer.from(`${k} ${b.length}\n`), b, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** Decodes a plan (tests and diagnostics); throws on malformed input. */
export function decodePlan(buf: Buffer): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  let pos = 0;
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos);
    const nl = buf.indexOf(0x0a, pos);
    if (sp < 0 || nl < 0 || sp > nl) throw new Error(`malformed plan at ${pos}`);
    const key = buf.subarray(pos, sp).toString('latin1');
    const len = Number(buf.subarray(sp + 1, nl).toString('latin1'));
    const start = nl + 1;
    if (!Number.isSafeInteger(len) || start + len >= buf.length + 0 || buf[start + len] !== 0x0a) {
      throw new Error(`malformed plan record ${key}`);
    }
    out.push([key, buf.subarray(start, start + len)]);
    pos = start + len + 1;
  }
  const first = out.shift();
  if (!first || first[0] !== 'berth-plan' || first[1].toString() !== '1') throw new Error('not a berth plan');
  return out;
}

const fields = (...f: Array<string | number>): string => f.map((x) => checkString('plan field', String(x))).join('\0');

function mountRecord(type: string, src: string, dest: string, flags: number, pflags: number, data: string): PlanRecord {
  return ['mount', fields(type, src, checkPath('mount destination', dest), flags >>> 0, pflags >>> 0, data)];
}

/**
 * A `cgroup` mount as runc does it: v2 → cgroup2; v1 → tmpfs at the destination, one read-only bind per
 * hierarchy of the container's own cgroup directory, then the tmpfs made read-only.
 */
function cgroupMountRecords(m: OciMount, extras: PlanExtras): PlanRecord[] {
  const o = parseMountOptions(m.options);
  if (extras.cgroupV2) return [mountRecord('cgroup2', 'cgroup2', m.destination, o.flags, o.propagation, '')];
  const root = extras.cgroupRoot ?? '/sys/fs/cgroup';
  const ro = (o.flags & MS.RDONLY) !== 0;
  const base = o.flags & (MS.NOSUID | MS.NODEV | MS.NOEXEC);
  const recs: PlanRecord[] = [mountRecord('tmpfs', 'tmpfs', m.destination, base, o.propagation, 'mode=755')];
  for (const procs of extras.cgroupProcs ?? []) {
    const dir = path.dirname(procs);
    const rel = path.relative(root, dir);
    const hier = rel.split('/')[0];
    if (!hier || rel.startsWith('..') || path.isAbsolute(rel)) continue;
    const dest = path.posix.join(m.destination, hier);
    const bindFlags = MS.BIND | MS.REC | base | (ro ? MS.RDONLY : 0);
    recs.push(mountRecord('bind', dir, dest, bindFlags, 0, ''));
    // a co-mounted hierarchy (cpu,cpuacct) is also reachable by each name, as on the host
    // (runc uses symlinks; binds keep this working after the tmpfs turns read-only)
    if (hier.includes(',')) {
      for (const part of hier.split(',')) {
        const name = part.startsWith('name=') ? part.slice(5) : part;
        recs.push(mountRecord('bind', dir, path.posix.join(m.destination, name), bindFlags, 0, ''));
      }
    }
  }
  if (ro) recs.push(mountRecord('', '', m.destination, MS.REMOUNT | MS.BIND | MS.RDONLY | base, 0, ''));
  return recs;
}

function deviceRecord(d: LinuxDevice): PlanRecord {
  const t = d.type === 'u' ? 'c' : d.type;
  return ['device', fields(checkPath('device path', d.path), t, d.major, d.minor, d.fileMode ?? 0o666, d.uid ?? 0, d.gid ?? 0)];
}

/** As Go's encoding/json writes a map[string]string: keys sorted, <, > and & escaped. */
export function logAttrsJson(attrs: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.entries(attrs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify(sorted).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

function hex(n: bigint): string {
  return n.toString(16);
}

/** Compiles the plan records for a container (`create`) or an exec into the running container (`exec`). */
export function compileLaunchPlan(spec: OciSpec, extras: PlanExtras): PlanRecord[] {
  const proc = spec.process;
  if (!proc || proc.args.length === 0) throw new InvalidParameterError('no command specified');
  const r: PlanRecord[] = [];
  const add = (k: string, v: string | number | Buffer): void => {
    r.push([k, typeof v === 'number' ? String(v) : v]);
  };
  const addNsProc = (of: { pid: number; startTime: number }, namespaces: readonly NsName[]): void => {
    if (!Number.isSafeInteger(of.pid) || of.pid <= 0 || !Number.isSafeInteger(of.startTime) || of.startTime < 0) {
      throw new InvalidParameterError(`bad process for namespace joins: ${of.pid} started at ${of.startTime}`);
    }
    add('ns_proc', `${of.pid} ${of.startTime}`);
    for (const name of namespaces) add('ns_join_proc', name);
  };
  add('mode', extras.mode);
  add('id', checkString('id', extras.id));
  add('socket', checkPath('socket path', extras.socketPath));
  add('exit_file', checkPath('exit file', extras.exitFile));
  if (extras.stateFile) add('state_file', checkPath('state file', extras.stateFile));
  if (extras.logPath) {
    add('log_path', checkPath('log path', extras.logPath));
    if (extras.logMaxSize !== undefined && extras.logMaxSize > 0) add('log_max_size', Math.floor(extras.logMaxSize));
    if (extras.logMaxFile !== undefined && extras.logMaxFile > 0) add('log_max_file', Math.floor(extras.logMaxFile));
    if (extras.logFormat === 'cri') add('log_format', 'cri');
    if (extras.logCompress) add('log_compress', 1);
    if (extras.logAttrs && Object.keys(extras.logAttrs).length > 0) add('log_attrs', logAttrsJson(extras.logAttrs));
  }
  add('tty', extras.tty ? 1 : 0);
  add('stdin', extras.openStdin ? 1 : 0);
  if (extras.consoleSize && extras.consoleSize.height > 0 && extras.consoleSize.width > 0) {
    add('console', `${extras.consoleSize.height} ${extras.consoleSize.width}`);
  }

  const linux = spec.linux ?? {};
  if (extras.mode === 'create') {
    let flags = 0;
    const pinned: NsName[] = [];
    for (const ns of linux.namespaces ?? []) {
      if (ns.type === 'time') continue; // not supported through clone(); host time namespace
      const name = NS_NAME[ns.type];
      if (ns.path && extras.nsOf && ns.path === `/proc/${extras.nsOf.pid}/ns/${name}`) pinned.push(name);
      else if (ns.path) add('ns_join', `${name}:${checkPath('namespace path', ns.path)}`);
      else flags |= CLONE_NEW[ns.type];
    }
    add('clone_flags', flags >>> 0);
    if (extras.nsOf && pinned.length > 0) addNsProc(extras.nsOf, pinned);
    if ((flags & CLONE_NEW.user) !== 0) {
      const map = (m: typeof linux.uidMappings): string => (m ?? []).map((x) => `${x.containerID} ${x.hostID} ${x.size}\n`).join('');
      add('uid_map', map(linux.uidMappings));
      add('gid_map', map(linux.gidMappings));
    }
  } else {
    add('clone_flags', 0);
    if (extras.nsOf) addNsProc(extras.nsOf, extras.nsOf.namespaces);
  }
  for (const f of extras.cgroupProcs ?? []) add('cgroup_procs', checkPath('cgroup.procs path', f));

  if (extras.mode === 'create') {
    const rootfs = extras.rootfs;
    if (!rootfs || !extras.rootfsTarget) throw new InvalidParameterError('create needs a rootfs and its mount target');
    add('rootfs', checkPath('rootfs target', extras.rootfsTarget));
    if (rootfs.type === 'overlay') {
      add('rootfs_kind', 'overlay');
      if (rootfs.lowerDirs.length === 0) throw new InvalidParameterError('overlay rootfs needs at least one lower directory');
      for (const l of rootfs.lowerDirs) {
        if (/[:,]/.test(l)) throw new InvalidParameterError(`overlay lower directory contains ':' or ',': ${l}`);
        add('lower', checkString('lower dir', l));
      }
      if (rootfs.upperDir) add('upper', checkPath('upper dir', rootfs.upperDir));
      if (rootfs.workDir) add('work', checkPath('work dir', rootfs.workDir));
      if (rootfs.mountCwd) add('mount_cwd', checkPath('mount cwd', rootfs.mountCwd));
      if (rootfs.options) add('overlay_opts', checkString('overlay options', rootfs.options));
    } else {
      add('rootfs_kind', 'bind');
      add('bind_src', checkPath('rootfs', rootfs.path));
    }
    if (spec.root?.readonly) add('rootfs_ro', 1);
    if (linux.rootfsPropagation) {
      const p = PROPAGATION[linux.rootfsPropagation];
      if (p === undefined) throw new InvalidParameterError(`invalid rootfs propagation ${linux.rootfsPropagation}`);
      add('root_propagation', p);
    }

    let devBound = false;
    for (const m of spec.mounts ?? []) {
      if (m.type === 'cgroup') {
        r.push(...cgroupMountRecords(m, extras));
        continue;
      }
      const o = parseMountOptions(m.options);
      let flags = o.flags;
      if (m.type === 'bind') flags |= MS.BIND;
      if ((flags & MS.BIND) !== 0) {
        checkPath(`bind source for ${m.destination}`, m.source ?? '');
        if (m.destination === '/dev') devBound = true;
      }
      r.push(mountRecord((flags & MS.BIND) !== 0 ? 'bind' : (m.type ?? 'none'), m.source ?? 'none', m.destination, flags, o.propagation, o.data));
      // applies to the mount just above
      if (o.recursiveReadOnly && (flags & MS.BIND) !== 0) add('mount_rro', 1);
      if (o.idmap) {
        // the user namespace's maps apply: to the bind's top mount (idmap), or to each of its tree (ridmap, rbind)
        if ((flags & MS.BIND) === 0) throw new InvalidParameterError(`${o.idmap} is only for binds: ${m.destination}`);
        if (!(linux.namespaces ?? []).some((ns) => ns.type === 'user')) throw new InvalidParameterError(`${o.idmap} mount ${m.destination} needs a user namespace`);
        add('mount_idmap', o.idmap === 'ridmap' ? 2 : 1);
      }
    }
    // default devices unless /dev is a bind of the host's; spec devices win by path
    const devs = new Map<string, LinuxDevice>();
    if (!devBound) for (const d of DEFAULT_DEVICES) devs.set(d.path, d);
    for (const d of linux.devices ?? []) devs.set(d.path, d);
    for (const d of devs.values()) r.push(deviceRecord(d));
    if (!devBound) for (const [target, link] of defaultDevSymlinks()) add('symlink', fields(target, link));
    for (const p of linux.maskedPaths ?? []) add('masked', checkPath('masked path', p));
    for (const p of linux.readonlyPaths ?? []) add('readonly', checkPath('readonly path', p));
    if (spec.hostname) add('hostname', checkString('hostname', spec.hostname));
    if (spec.domainname) add('domainname', checkString('domainname', spec.domainname));
    for (const [k, v] of Object.entries(linux.sysctl ?? {})) {
      const key = k.includes('/') ? k : k.replace(/\./g, '/');
      if (key.split('/').some((c) => c === '..' || c === '')) throw new InvalidParameterError(`invalid sysctl ${k}`);
      add('sysctl', fields(key, v));
    }
  }

  for (const rl of proc.rlimits ?? []) {
    const res = RLIMITS[rl.type];
    if (res === undefined) throw new InvalidParameterError(`invalid rlimit type ${rl.type}`);
    const v = (n: number): string => (n < 0 || n >= 2 ** 63 || !Number.isFinite(n) ? 'inf' : String(Math.floor(n)));
    add('rlimit', fields(res, v(rl.soft), v(rl.hard)));
  }
  add('oom_score_adj', proc.oomScoreAdj ?? 0);
  add('uid', proc.user.uid);
  add('gid', proc.user.gid);
  for (const g of proc.user.additionalGids ?? []) add('group', g);
  add('umask', (proc.user.umask ?? 0o022).toString(8));
  add('cwd', checkPath('cwd', proc.cwd || '/'));
  const owner = extras.cwdOwner ?? { uid: 0, gid: 0 };
  add('cwd_owner', `${owner.uid}:${owner.gid}`);
  for (const e of proc.env ?? []) add('env', checkString('env', e));
  for (const a of proc.args) add('arg', checkString('arg', a));
  const caps = proc.capabilities;
  if (caps) {
    add(
      'caps',
      fields(
        hex(capabilityMask(caps.bounding ?? [])),
        hex(capabilityMask(caps.effective ?? [])),
        hex(capabilityMask(caps.permitted ?? [])),
        hex(capabilityMask(caps.inheritable ?? [])),
        hex(capabilityMask(caps.ambient ?? [])),
      ),
    );
  }
  if (proc.noNewPrivileges) add('no_new_privs', 1);
  if (extras.seccompBpf && extras.seccompBpf.length > 0) {
    if (extras.seccompBpf.length % 8 !== 0) throw new InvalidParameterError('seccomp program length is not a multiple of 8');
    add('seccomp', extras.seccompBpf);
    if (extras.seccompFlags) add('seccomp_flags', extras.seccompFlags);
  }
  return r;
}

const BIGINT_MARK = '\u0000bigint:';

/** config.json text: the spec as given, with 64-bit seccomp values (bigint) written as JSON numbers. */
export function specJson(spec: OciSpec): string {
  const text = JSON.stringify(spec, (_k, v: unknown) => (typeof v === 'bigint' ? `${BIGINT_MARK}${v}` : v), 2);
  return text.replace(/"\\u0000bigint:(\d+)"/g, '$1') + '\n';
}

/**
 * tmp file + rename, written synchronously and without fsync: the plan is read by the shim a moment later
 * and, like config.json, describes processes a host crash ends anyway (three thread-pool hops and a flush
 * per file were ~2 ms of every container start).
 */
function writeAtomic(file: string, data: string | Buffer, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    writeFileSync(tmp, data, { mode });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Writes `config.json` (for people) and the plan file (for berth-shim) atomically; returns the plan path. */
export async function writeLaunchFiles(dir: string, spec: OciSpec | undefined, records: readonly PlanRecord[], planName = 'plan'): Promise<string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (spec) writeAtomic(path.join(dir, 'config.json'), specJson(spec), 0o600);
  const planPath = path.join(dir, planName);
  writeAtomic(planPath, encodePlan(records), 0o600);
  return planPath;
}
