// Docker's runtime defaults as data (executor-notes §3): mounts, masked and read-only paths,
// default devices and cgroup device rules, namespaced sysctls, PATH.

import { existsSync, readdirSync } from 'node:fs';
import type { LinuxDevice } from './cgroups/resources.js';
import type { LinuxDeviceCgroup } from './cgroups/resources.js';
import type { OciMount, OciNamespace } from './oci-spec.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** /dev/shm size when HostConfig.ShmSize is 0 (64 MiB). */
export const DEFAULT_SHM_SIZE = 67108864;

/** Where `--init` puts berth-init inside the container (Docker's path for docker-init). */
export const INIT_PATH_IN_CONTAINER = '/sbin/docker-init';

/** DefaultLinuxSpec + withMounts, in spec order (§3.4). The three /etc binds are added per container. */
export function defaultMounts(shmSize: number = DEFAULT_SHM_SIZE): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSize}`],
    },
  ];
}

/** A bind of one of the container's /etc files (resolv.conf, hostname, hosts). */
export function etcBindMount(destination: string, source: string, readonly: boolean): OciMount {
  return { destination, type: 'bind', source, options: ['rbind', 'rprivate', ...(readonly ? ['ro'] : [])] };
}

/** Docker's masked paths (moby HEAD, 28.x), plus each existing cpuN/thermal_throttle directory. */
export function defaultMaskedPaths(sysRoot = '/sys'): string[] {
  const out = [
    '/proc/acpi',
    '/proc/asound',
    '/proc/interrupts',
    '/proc/kcore',
    '/proc/keys',
    '/proc/latency_stats',
    '/proc/sched_debug',
    '/proc/scsi',
    '/proc/timer_list',
    '/proc/timer_stats',
    '/sys/devices/virtual/powercap',
    '/sys/firmware',
  ];
  try {
    for (const e of readdirSync(`${sysRoot}/devices/system/cpu`)) {
      if (/^cpu\d+$/.test(e) && existsSync(`${sysRoot}/devices/system/cpu/${e}/thermal_throttle`)) {
        out.push(`/sys/devices/system/cpu/${e}/thermal_throttle`);
      }
    }
  } catch {
    // no cpu directory in sysfs: nothing to add
  }
  return out;
}

export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** The OCI runtime's default devices (runtime-spec config-linux.md#default-devices), created in every container. */
export const DEFAULT_DEVICES: readonly LinuxDevice[] = [
  { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/zero', type: 'c', major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/full', type: 'c', major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/random', type: 'c', major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/urandom', type: 'c', major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/tty', type: 'c', major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

/** runc's /dev symlinks: [target, link]. /dev/core only when the host has /proc/kcore. */
export function defaultDevSymlinks(): Array<[string, string]> {
  const links: Array<[string, string]> = [
    ['pts/ptmx', '/dev/ptmx'],
    ['/proc/self/fd', '/dev/fd'],
    ['/proc/self/fd/0', '/dev/stdin'],
    ['/proc/self/fd/1', '/dev/stdout'],
    ['/proc/self/fd/2', '/dev/stderr'],
  ];
  if (existsSync('/proc/kcore')) links.push(['/proc/kcore', '/dev/core']);
  return links;
}

/** Docker's spec device rules (§3.5): deny all, allow the default nodes, deny /dev/fuse. */
export const DEFAULT_DEVICE_CGROUP_RULES: readonly LinuxDeviceCgroup[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' },
  { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' },
];

/** The rules runc appends after the spec's (AllowedDevices): mknod of anything, the default nodes, pts, ptmx, tun. */
export const RUNTIME_ALLOWED_DEVICE_RULES: readonly LinuxDeviceCgroup[] = [
  { allow: true, type: 'c', major: -1, minor: -1, access: 'm' },
  { allow: true, type: 'b', major: -1, minor: -1, access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
  { allow: true, type: 'c', major: 136, minor: -1, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' },
];

/** Sysctls for containers with their own network namespace (withCommonOptions), if the host has them. */
export function defaultNetSysctls(userns = false): Record<string, string> {
  const out: Record<string, string> = {};
  if (existsSync('/proc/sys/net/ipv4/ip_unprivileged_port_start')) out['net.ipv4.ip_unprivileged_port_start'] = '0';
  if (!userns && existsSync('/proc/sys/net/ipv4/ping_group_range')) out['net.ipv4.ping_group_range'] = '0 2147483647';
  return out;
}

/** Docker's default namespaces (§3.9; cgroup ns private on v2 only). */
export function defaultNamespaces(cgroupV2: boolean): OciNamespace[] {
  const ns: OciNamespace[] = [{ type: 'mount' }, { type: 'network' }, { type: 'uts' }, { type: 'pid' }, { type: 'ipc' }];
  if (cgroupV2) ns.push({ type: 'cgroup' });
  return ns;
}
