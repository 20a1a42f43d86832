import { describe, expect, it } from 'vitest';
import { CLONE_NEW, MS, compileLaunchPlan, decodePlan, encodePlan, parseMountOptions, specJson, type PlanExtras } from '../../../src/runtime/launch-plan.js';
import { DEFAULT_DEVICES, defaultMounts } from '../../../src/runtime/defaults.js';
import type { OciSpec } from '../../../src/runtime/oci-spec.js';

const base: PlanExtras = {
  mode: 'create',
  id: 'abc',
  socketPath: '/run/berth/s/abc.sock',
  exitFile: '/b/exit.json',
  tty: false,
  openStdin: false,
  rootfs: { type: 'overlay', lowerDirs: ['l/A', 'l/B'], upperDir: '/b/upper', workDir: '/b/work', mountCwd: '/var/lib/berth/layers' },
  rootfsTarget: '/b/rootfs',
};

function spec(over: Partial<OciSpec> = {}): OciSpec {
  return {
    ociVersion: '1.0.2-dev',
    process: { user: { uid: 1000, gid: 1000, additionalGids: [1000, 10] }, args: ['sh', '-c', 'echo "a\nb"'], env: ['PATH=/bin'], cwd: '/tmp' },
    hostname: 'h',
    mounts: defaultMounts(),
    linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'network', path: '/var/run/netns/x' }] },
    ...over,
  };
}

function values(recs: Array<[string, Buffer]>, key: string): string[] {
  return recs.filter(([k]) => k === key).map(([, v]) => v.toString());
}

describe('launch plan encoding', () => {
  it('round-trips binary-safe records, newlines and NULs included', () => {
    const bytes = encodePlan([
      ['arg', 'line1\nline2'],
      ['seccomp', Buffer.from([0, 10, 255, 0x20, 0x0a, 0, 0, 0])],
      ['mount', 'a\0b'],
    ]);
    expect(bytes.subarray(0, 15).toString()).toBe('berth-plan 1\n1\n');
    const back = decodePlan(bytes);
    expect(back.map(([k]) => k)).toEqual(['arg', 'seccomp', 'mount']);
    expect(back[0]?.[1].toString()).toBe('line1\nline2');
    expect([...(back[1]?.[1] ?? [])]).toEqual([0, 10, 255, 0x20, 0x0a, 0, 0, 0]);
  });

  it('has a stable byte layout (golden)', () => {
    expect(encodePlan([['mode', 'create'], ['arg', 'echo']]).toString()).toBe('berth-plan 1\n1\nmode 6\ncreate\narg 4\necho\n');
  });

  it('rejects truncated plans', () => {
    const bytes = encodePlan([['arg', 'hello']]);
    expect(() => decodePlan(bytes.subarray(0, bytes.length - 3))).toThrow();
  });
});

describe('compileLaunchPlan', () => {
  it('turns namespaces into clone flags and joins', () => {
    const recs = decodePlan(encodePlan(compileLaunchPlan(spec(), base)));
    expect(Number(values(recs, 'clone_flags')[0])).toBe(CLONE_NEW.pid | CLONE_NEW.mount);
    expect(values(recs, 'ns_join')).toEqual(['net:/var/run/netns/x']);
  });

  it('keeps overlay lowers in order with the mount cwd', () => {
    const recs = decodePlan(encodePlan(compileLaunchPlan(spec(), base)));
    expect(values(recs, 'lower')).toEqual(['l/A', 'l/B']);
    expect(values(recs, 'mount_cwd')).toEqual(['/var/lib/berth/layers']);
    expect(values(recs, 'rootfs_kind')).toEqual(['overlay']);
  });

  it('compiles mount options into flags, propagation and data', () => {
    const recs = decodePlan(encodePlan(compileLaunchPlan(spec(), base)));
    const mounts = values(recs, 'mount').map((m) => m.split('\0'));
    const dev = mounts.find((m) => m[2] === '/dev');
    expect(dev).toEqual(['tmpfs', 'tmpfs', '/dev', String(MS.NOSUID | MS.STRICTATIME), '0', 'mode=755,size=65536k']);
    const pts = mounts.find((m) => m[2] === '/dev/pts');
    expect(pts?.[5]).toBe('newinstance,ptmxmode=0666,mode=0620,gid=5');
    expect(parseMountOptions(['rbind', 'rprivate', 'ro'])).toEqual({ flags: MS.BIND | MS.REC | MS.RDONLY, propagation: MS.PRIVATE | MS.REC, data: '', recursiveReadOnly: false });
    expect(parseMountOptions(['rbind', 'rro'])).toEqual({ flags: MS.BIND | MS.REC | MS.RDONLY, propagation: 0, data: '', recursiveReadOnly: true });
    expect(parseMountOptions(['noexec', 'exec', 'size=1m']).flags).toBe(0);
  });

  it('turns a v1 cgroup mount into a tmpfs, read-only binds of the own cgroup and a read-only remount', () => {
    const recs = decodePlan(
      encodePlan(
        compileLaunchPlan(spec(), {
          ...base,
          cgroupProcs: ['/sys/fs/cgroup/memory/berth/abc/cgroup.procs', '/sys/fs/cgroup/cpu,cpuacct/berth/abc/cgroup.procs'],
        }),
      ),
    );
    const cg = values(recs, 'mount')
      .map((m) => m.split('\0'))
      .filter((m) => m[2]?.startsWith('/sys/fs/cgroup'));
    expect(cg.map((m) => [m[0], m[1], m[2]])).toEqual([
      ['tmpfs', 'tmpfs', '/sys/fs/cgroup'],
      ['bind', '/sys/fs/cgroup/memory/berth/abc', '/sys/fs/cgroup/memory'],
      ['bind', '/sys/fs/cgroup/cpu,cpuacct/berth/abc', '/sys/fs/cgroup/cpu,cpuacct'],
      ['bind', '/sys/fs/cgroup/cpu,cpuacct/berth/abc', '/sys/fs/cgroup/cpu'],
      ['bind', '/sys/fs/cgroup/cpu,cpuacct/berth/abc', '/sys/fs/cgroup/cpuacct'],
      ['', '', '/sys/fs/cgroup'],
    ]);
    expect(Number(cg[1]?.[3]) & MS.RDONLY).toBe(MS.RDONLY);
    expect(Number(cg[5]?.[3])).toBe(MS.REMOUNT | MS.BIND | MS.RDONLY | MS.NOSUID | MS.NOEXEC | MS.NODEV);
  });

  it('adds the default devices and symlinks, spec devices winning', () => {
    const s = spec();
    s.linux = { ...s.linux, devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o600 }] };
    const recs = decodePlan(encodePlan(compileLaunchPlan(s, base)));
    const devs = values(recs, 'device').map((d) => d.split('\0')[0]);
    expect(devs).toEqual([...DEFAULT_DEVICES.map((d) => d.path), '/dev/fuse']);
    expect(values(recs, 'device').at(-1)).toBe(['/dev/fuse', 'c', '10', '229', String(0o600), '0', '0'].join('\0'));
    expect(values(recs, 'symlink')).toContain('pts/ptmx\0/dev/ptmx');
  });

  it('encodes user, groups, caps, rlimits, sysctls and the command', () => {
    const s = spec({
      linux: { sysctl: { 'net.ipv4.ip_forward': '1' } },
    });
    s.process = {
      ...s.process!,
      capabilities: { bounding: ['CAP_CHOWN', 'CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
      rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 }],
      noNewPrivileges: true,
    };
    const recs = decodePlan(encodePlan(compileLaunchPlan(s, { ...base, seccompBpf: Buffer.alloc(16) })));
    expect(values(recs, 'uid')).toEqual(['1000']);
    expect(values(recs, 'group')).toEqual(['1000', '10']);
    expect(values(recs, 'caps')).toEqual(['21\x0020\x0020\x000\x000']);
    expect(values(recs, 'rlimit')).toEqual(['7\x001024\x002048']);
    expect(values(recs, 'sysctl')).toEqual(['net/ipv4/ip_forward\x001']);
    expect(values(recs, 'arg')).toEqual(['sh', '-c', 'echo "a\nb"']);
    expect(values(recs, 'no_new_privs')).toEqual(['1']);
    expect(values(recs, 'seccomp')[0]).toHaveLength(16);
    expect(values(recs, 'umask')).toEqual(['22']);
  });

  it('refuses NUL bytes, relative destinations and bad rlimits', () => {
    expect(() => compileLaunchPlan(spec({ mounts: [{ destination: 'rel', type: 'tmpfs', source: 'tmpfs' }] }), base)).toThrow(/absolute/);
    const s = spec();
    s.process = { ...s.process!, env: ['A=\0'] };
    expect(() => compileLaunchPlan(s, base)).toThrow(/NUL/);
    s.process = { ...s.process!, env: [], rlimits: [{ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 }] };
    expect(() => compileLaunchPlan(s, base)).toThrow(/rlimit/);
  });

  it('builds exec plans with namespace joins and no rootfs', () => {
    const recs = decodePlan(
      encodePlan(
        compileLaunchPlan(spec(), { mode: 'exec', id: 'a/e', socketPath: '/s', exitFile: '/e', tty: true, openStdin: true, nsOf: { pid: 9, startTime: 1234, namespaces: ['mnt', 'pid'] } }),
      ),
    );
    expect(values(recs, 'ns_join')).toEqual([]);
    expect(values(recs, 'ns_proc')).toEqual(['9 1234']);
    expect(values(recs, 'ns_join_proc')).toEqual(['mnt', 'pid']);
    expect(values(recs, 'mount')).toEqual([]);
    expect(values(recs, 'rootfs')).toEqual([]);
  });

  it('joins the /proc/<pid>/ns paths of a pinned process through ns_proc in create plans, other paths by path', () => {
    const s = spec();
    s.linux = {
      ...s.linux,
      namespaces: [
        { type: 'mount' },
        { type: 'pid', path: '/proc/77/ns/pid' },
        { type: 'ipc', path: '/proc/77/ns/ipc' },
        { type: 'uts', path: '/proc/78/ns/uts' },
        { type: 'network', path: '/run/netns/x' },
      ],
    };
    const extras = { ...base, nsOf: { pid: 77, startTime: 555, namespaces: [] } };
    const recs = decodePlan(encodePlan(compileLaunchPlan(s, extras)));
    expect(values(recs, 'ns_proc')).toEqual(['77 555']);
    expect(values(recs, 'ns_join_proc')).toEqual(['pid', 'ipc']);
    expect(values(recs, 'ns_join')).toEqual(['uts:/proc/78/ns/uts', 'net:/run/netns/x']);
    expect(values(recs, 'clone_flags')).toEqual([String(0x00020000)]);
  });

  it('writes 64-bit seccomp values in config.json as JSON numbers', () => {
    const s = spec();
    s.linux = {
      seccomp: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['x'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2n ** 63n, op: 'SCMP_CMP_EQ' }] }] },
    };
    expect(specJson(s)).toContain('"value": 9223372036854775808');
  });
});

describe('user namespaces in the plan', () => {
  const maps = { uidMappings: [{ containerID: 0, hostID: 1000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 1000, size: 65536 }] };

  it('a new one: CLONE_NEWUSER with the maps; a joined one: a path, no maps', () => {
    const made = decodePlan(encodePlan(compileLaunchPlan(spec({ linux: { namespaces: [{ type: 'user' }, { type: 'pid' }, { type: 'mount' }], ...maps } }), base)));
    expect(Number(values(made, 'clone_flags')[0]) & CLONE_NEW.user).toBe(CLONE_NEW.user);
    expect(values(made, 'uid_map')).toEqual(['0 1000 65536\n']);
    expect(values(made, 'gid_map')).toEqual(['0 1000 65536\n']);
    const joined = decodePlan(encodePlan(compileLaunchPlan(spec({ linux: { namespaces: [{ type: 'user', path: '/proc/7/ns/user' }, { type: 'mount' }], ...maps } }), base)));
    expect(Number(values(joined, 'clone_flags')[0]) & CLONE_NEW.user).toBe(0);
    expect(values(joined, 'ns_join')).toEqual(['user:/proc/7/ns/user']);
    expect(values(joined, 'uid_map')).toEqual([]);
  });

  it('idmap/ridmap on a bind becomes mount_idmap after it; refused on other mounts or without a user namespace', () => {
    expect(parseMountOptions(['rbind', 'idmap']).idmap).toBe('idmap');
    expect(parseMountOptions(['rbind', 'ridmap']).data).toBe('');
    const userns = { namespaces: [{ type: 'user' as const }, { type: 'mount' as const }], ...maps };
    const recs = decodePlan(encodePlan(compileLaunchPlan(spec({ mounts: [{ destination: '/v', type: 'bind', source: '/srv/v', options: ['rbind', 'idmap'] }], linux: userns }), base)));
    const keys = recs.map(([k]) => k);
    expect(keys[keys.indexOf('mount') + 1]).toBe('mount_idmap');
    expect(values(recs, 'mount_idmap')).toEqual(['1']);
    expect(() => compileLaunchPlan(spec({ mounts: [{ destination: '/t', type: 'tmpfs', source: 'tmpfs', options: ['idmap'] }], linux: userns }), base)).toThrow(/only for binds/);
    expect(() => compileLaunchPlan(spec({ mounts: [{ destination: '/v', type: 'bind', source: '/srv/v', options: ['idmap'] }] }), base)).toThrow(/needs a user namespace/);
  });
});
