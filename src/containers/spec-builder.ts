import os from 'node:os';
import { InvalidParameterError } from '../errors.js';
import type { OciIdMapping, OciMount, OciNamespace, OciSpec, OciRlimit } from '../runtime/oci-spec.js';
import { OCI_VERSION } from '../runtime/oci-spec.js';
import {
  DEFAULT_PATH,
  DEFAULT_READONLY_PATHS,
  DEFAULT_SHM_SIZE,
  INIT_PATH_IN_CONTAINER,
  defaultMaskedPaths,
  defaultMounts,
  defaultNamespaces,
  defaultNetSysctls,
  etcBindMount,
} from '../runtime/defaults.js';
import { DEFAULT_CAPABILITIES, privilegedCapabilities, tweakCapabilities } from '../runtime/capabilities.js';
import { defaultSeccompProfile, parseSeccompProfile, profileToOci, type LinuxSeccomp } from '../runtime/seccomp/index.js';
import type { LinuxDevice, LinuxDeviceCgroup, LinuxResources } from '../runtime/cgroups/index.js';
import type { ContainerConfig, HostConfig } from './types.js';
import type { ResolvedUser } from './user-resolve.js';

/** What `--security-opt` asked for. */
export interface SecurityOptions {
  seccomp: 'default' | 'unconfined' | { profile: string };
  noNewPrivileges: boolean;
  /** systempaths=unconfined: no masked or read-only /proc and /sys paths. */
  unconfinedSystemPaths?: boolean;
  /** writable-cgroups=true: /sys/fs/cgroup mounted read-write. */
  writableCgroups?: boolean;
}

export function parseSecurityOpts(opts: readonly string[] | null | undefined): SecurityOptions {
  const out: SecurityOptions = { seccomp: 'default', noNewPrivileges: false };
  for (const raw of opts ?? []) {
    // The legacy ":" separator is still accepted by dockerd.
    const eq = raw.indexOf('=');
    const colon = raw.indexOf(':');
    const sep = eq >= 0 ? eq : colon;
    const key = sep >= 0 ? raw.slice(0, sep) : raw;
    const value = sep >= 0 ? raw.slice(sep + 1) : '';
    switch (key) {
      case 'no-new-privileges':
        if (value !== '' && value !== 'true' && value !== 'false') {
          throw new InvalidParameterError(`invalid --security-opt 2: "${raw}"`);
        }
        out.noNewPrivileges = value !== 'false';
        break;
      case 'seccomp':
        if (value === 'unconfined') out.seccomp = 'unconfined';
        else if (value === 'builtin' || value === '') out.seccomp = 'default';
        else out.seccomp = { profile: value };
        break;
      case 'systempaths':
        if (value !== 'unconfined') throw new InvalidParameterError('invalid --security-opt 2: "' + raw + '"');
        out.unconfinedSystemPaths = true;
        break;
      case 'writable-cgroups':
        if (value !== 'true' && value !== 'false') throw new InvalidParameterError('invalid --security-opt 2: "' + raw + '"');
        out.writableCgroups = value === 'true';
        break;
      case 'label':
      case 'apparmor':
        break; // no LSM on Berth's hosts; accepted like dockerd without AppArmor/SELinux
      default:
        throw new InvalidParameterError(`invalid --security-opt 1: "${raw}"`);
    }
  }
  return out;
}

export interface SpecInputs {
  id: string;
  config: ContainerConfig;
  hostConfig: HostConfig;
  user: ResolvedUser;
  /** The in-container paths of the three /etc files, bound from the container directory. */
  etcFiles: { hosts?: string; resolvConf?: string; hostname?: string };
  /** Mounts from volumes, binds and tmpfs (already sorted). */
  userMounts: OciMount[];
  /** Namespace paths to join instead of creating (network from the sandbox, container:/host modes). */
  namespacePaths: Partial<Record<OciNamespace['type'], string | 'host'>>;
  resources: LinuxResources;
  devices: LinuxDevice[];
  deviceRules: LinuxDeviceCgroup[];
  cgroupsPath: string;
  cgroupV2: boolean;
  /** Host path of berth-init, bound at /sbin/docker-init for --init. */
  initPath: string;
  /**
   * A user namespace with these maps (a CRI pod's): made, or joined at namespacePaths.user. Binds stay plain (what
   * the container writes there is owned by the mapped ids on the host) unless their options say idmap; the shim
   * idmaps the image's layers.
   */
  userns?: { uidMappings: OciIdMapping[]; gidMappings: OciIdMapping[] };
}

function rlimits(ulimits: HostConfig['Ulimits']): OciRlimit[] | undefined {
  if (!ulimits || ulimits.length === 0) return undefined;
  return ulimits.map((u) => {
    if (u.Soft > u.Hard) throw new InvalidParameterError(`ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
    return { type: `RLIMIT_${u.Name.toUpperCase()}`, soft: u.Soft, hard: u.Hard };
  });
}

/** The effective capability set, given the container's privileges and Cap* options. */
export function containerCapabilities(hc: HostConfig): string[] {
  const own = privilegedCapabilities();
  if (hc.Privileged) return own;
  return tweakCapabilities(DEFAULT_CAPABILITIES, hc.CapAdd ?? [], hc.CapDrop ?? [], own);
}

/**
 * The OCI seccomp sections made, by profile (the default, or a custom one's text) and capabilities: every container
 * of the same profile and capabilities shares one section, deep-frozen (filtering the default profile and the JSON
 * key of the compiled-program cache cost ~0.5 ms of CPU per start).
 */
const seccompSections = new Map<string, LinuxSeccomp>();

function seccompFor(hc: HostConfig, sec: SecurityOptions, caps: readonly string[]): LinuxSeccomp | undefined {
  if (sec.seccomp === 'unconfined') return undefined;
  if (hc.Privileged && sec.seccomp === 'default') return undefined;
  const key = `${sec.seccomp === 'default' ? '' : sec.seccomp.profile}\0${caps.join(',')}`;
  let section = seccompSections.get(key);
  if (!section) {
    const profile = sec.seccomp === 'default' ? defaultSeccompProfile() : parseSeccompProfile(sec.seccomp.profile);
    section = deepFreeze(profileToOci(profile, { arch: process.arch, capabilities: caps, kernel: os.release() }));
    if (seccompSections.size >= 32) seccompSections.delete(seccompSections.keys().next().value as string);
    seccompSections.set(key, section);
  }
  return section;
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

const NAMESPACED_SYSCTL = /^(kernel\.(msgmax|msgmnb|msgmni|sem|shmall|shmmax|shmmni|shm_rmid_forced)|fs\.mqueue\..+|net\..+|kernel\.domainname)$/;

function validateSysctls(sysctls: Record<string, string>, hostNet: boolean, hostIpc: boolean): void {
  for (const key of Object.keys(sysctls)) {
    if (!NAMESPACED_SYSCTL.test(key)) {
      throw new InvalidParameterError(`sysctl '${key}' is not allowed: it is not namespaced`);
    }
    if (key.startsWith('net.') && hostNet) {
      throw new InvalidParameterError(`sysctl '${key}' is not allowed in host network namespace`);
    }
    if ((key.startsWith('kernel.') && key !== 'kernel.domainname') || key.startsWith('fs.mqueue.')) {
      if (hostIpc) throw new InvalidParameterError(`sysctl '${key}' is not allowed in host IPC namespace`);
    }
  }
}

/** HostConfig + Config → the OCI runtime spec berth-shim executes (dockerd's createSpec, in its order). */
export function buildSpec(i: SpecInputs): OciSpec {
  const { config, hostConfig: hc } = i;
  const sec = parseSecurityOpts(hc.SecurityOpt);
  const caps = containerCapabilities(hc);
  const readonlyRoot = hc.ReadonlyRootfs === true;

  // Namespaces: defaults, then host modes drop one, container: modes join a path.
  const namespaces: OciNamespace[] = [];
  // the user namespace first: the others are made inside it (owned by it)
  if (i.userns) namespaces.push(i.namespacePaths.user ? { type: 'user', path: i.namespacePaths.user } : { type: 'user' });
  // CgroupnsMode: private gives the container its own cgroup namespace on either cgroup version, host none;
  // unset is dockerd's default (private on v2, host on v1).
  const cgroupns = hc.CgroupnsMode === 'private' || ((hc.CgroupnsMode ?? '') === '' && i.cgroupV2);
  const wanted = defaultNamespaces(false);
  if (cgroupns) wanted.push({ type: 'cgroup' });
  for (const ns of wanted) {
    const p = i.namespacePaths[ns.type];
    if (p === 'host') continue;
    namespaces.push(p ? { type: ns.type, path: p } : ns);
  }
  const hostNet = i.namespacePaths.network === 'host';
  const hostIpc = i.namespacePaths.ipc === 'host';

  // Mounts: defaults unless a user mount takes the destination (a user /dev drops every /dev default).
  const userDest = new Set(i.userMounts.map((m) => m.destination));
  const userDev = userDest.has('/dev');
  let mounts = defaultMounts(hc.ShmSize && hc.ShmSize > 0 ? hc.ShmSize : DEFAULT_SHM_SIZE).filter(
    (m) => !userDest.has(m.destination) && !(userDev && m.destination.startsWith('/dev/')),
  );
  if (hc.IpcMode === 'none') mounts = mounts.filter((m) => m.destination !== '/dev/shm');
  if (hc.Privileged) {
    mounts = mounts.map((m) =>
      m.destination === '/sys' || m.destination === '/sys/fs/cgroup' ? { ...m, options: (m.options ?? []).filter((o) => o !== 'ro') } : m,
    );
  } else if (sec.writableCgroups) {
    mounts = mounts.map((m) => (m.destination === '/sys/fs/cgroup' ? { ...m, options: (m.options ?? []).filter((o) => o !== 'ro') } : m));
  }
  const etc: OciMount[] = [];
  if (i.etcFiles.resolvConf && !userDest.has('/etc/resolv.conf')) etc.push(etcBindMount('/etc/resolv.conf', i.etcFiles.resolvConf, readonlyRoot));
  if (i.etcFiles.hostname && !userDest.has('/etc/hostname')) etc.push(etcBindMount('/etc/hostname', i.etcFiles.hostname, readonlyRoot));
  if (i.etcFiles.hosts && !userDest.has('/etc/hosts')) etc.push(etcBindMount('/etc/hosts', i.etcFiles.hosts, readonlyRoot));
  mounts.push(...etc, ...i.userMounts);

  const args = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
  if (hc.Init === true) {
    mounts.push({ destination: INIT_PATH_IN_CONTAINER, type: 'bind', source: i.initPath, options: ['bind', 'ro'] });
    args.unshift(INIT_PATH_IN_CONTAINER, '--');
  }

  const env = [...config.Env];
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(`PATH=${DEFAULT_PATH}`);
  const uts = i.namespacePaths.uts !== 'host';
  if (uts && !env.some((e) => e.startsWith('HOSTNAME='))) env.splice(1, 0, `HOSTNAME=${config.Hostname}`);
  if (config.Tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${i.user.home || '/'}`);

  const sysctl: Record<string, string> = { ...(hostNet ? {} : defaultNetSysctls(i.userns !== undefined)), ...(hc.Sysctls ?? {}) };
  validateSysctls(hc.Sysctls ?? {}, hostNet, hostIpc);

  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: config.Tty,
      user: { uid: i.user.uid, gid: i.user.gid, additionalGids: i.user.additionalGids },
      args,
      env,
      cwd: config.WorkingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: sec.noNewPrivileges,
      oomScoreAdj: hc.OomScoreAdj ?? 0,
    },
    root: { path: 'rootfs', readonly: readonlyRoot },
    hostname: uts ? config.Hostname : '',
    // HostConfig.Annotations reach the runtime spec (config.json), as dockerd passes them to the OCI runtime.
    ...(hc.Annotations && typeof hc.Annotations === 'object' && Object.keys(hc.Annotations).length > 0
      ? { annotations: { ...(hc.Annotations as Record<string, string>) } }
      : {}),
    mounts,
    linux: {
      resources: { ...i.resources, devices: i.deviceRules },
      cgroupsPath: i.cgroupsPath,
      namespaces,
      devices: i.devices,
      sysctl,
      maskedPaths: hc.Privileged || sec.unconfinedSystemPaths ? [] : (hc.MaskedPaths ?? defaultMaskedPaths()),
      readonlyPaths: hc.Privileged || sec.unconfinedSystemPaths ? [] : (hc.ReadonlyPaths ?? [...DEFAULT_READONLY_PATHS]),
    },
  };
  // dockerd: a shared bind needs a shared root, a slave bind a slave one (host mounts must reach the container)
  const props = i.userMounts.flatMap((m) => m.options ?? []);
  if (spec.linux && props.some((o) => o === 'rshared' || o === 'shared')) spec.linux.rootfsPropagation = 'rshared';
  else if (spec.linux && props.some((o) => o === 'rslave' || o === 'slave')) spec.linux.rootfsPropagation = 'rslave';
  if (i.userns && spec.linux) {
    spec.linux.uidMappings = i.userns.uidMappings.map((m) => ({ ...m }));
    spec.linux.gidMappings = i.userns.gidMappings.map((m) => ({ ...m }));
  }
  if (config.Domainname && spec.linux) spec.domainname = config.Domainname;
  const rl = rlimits(hc.Ulimits);
  if (rl && spec.process) spec.process.rlimits = rl;
  if (hc.ConsoleSize && hc.ConsoleSize[0] > 0 && spec.process) {
    spec.process.consoleSize = { height: hc.ConsoleSize[0], width: hc.ConsoleSize[1] };
  }
  const seccomp = seccompFor(hc, sec, caps);
  if (seccomp && spec.linux) spec.linux.seccomp = seccomp;
  return spec;
}
