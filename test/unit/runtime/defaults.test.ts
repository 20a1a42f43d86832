import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DEVICES,
  DEFAULT_DEVICE_CGROUP_RULES,
  DEFAULT_PATH,
  DEFAULT_READONLY_PATHS,
  defaultMaskedPaths,
  defaultMounts,
  defaultNamespaces,
  etcBindMount,
} from '../../../src/runtime/defaults.js';

describe('Docker runtime defaults', () => {
  it('lists the default mounts in spec order with Docker options', () => {
    const m = defaultMounts(33554432);
    expect(m.map((x) => x.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm']);
    expect(m[6]?.options).toEqual(['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=33554432']);
    expect(etcBindMount('/etc/hosts', '/x/hosts', true).options).toEqual(['rbind', 'rprivate', 'ro']);
  });

  it('masks and protects the /proc and /sys paths Docker does', () => {
    const masked = defaultMaskedPaths('/nonexistent');
    expect(masked).toContain('/proc/keys');
    expect(masked).toContain('/proc/kcore');
    expect(masked).toContain('/sys/firmware');
    expect(DEFAULT_READONLY_PATHS).toEqual(['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
  });

  it('creates the six OCI default devices and allows them in the cgroup', () => {
    expect(DEFAULT_DEVICES.map((d) => `${d.path} ${d.major}:${d.minor}`)).toEqual([
      '/dev/null 1:3',
      '/dev/zero 1:5',
      '/dev/full 1:7',
      '/dev/random 1:8',
      '/dev/urandom 1:9',
      '/dev/tty 5:0',
    ]);
    expect(DEFAULT_DEVICE_CGROUP_RULES[0]).toEqual({ allow: false, access: 'rwm' });
  });

  it('uses the default PATH and namespaces', () => {
    expect(DEFAULT_PATH).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(defaultNamespaces(false).map((n) => n.type)).toEqual(['mount', 'network', 'uts', 'pid', 'ipc']);
    expect(defaultNamespaces(true).map((n) => n.type)).toContain('cgroup');
  });
});
