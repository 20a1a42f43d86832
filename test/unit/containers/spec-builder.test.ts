import { describe, expect, it } from 'vitest';
import { buildSpec, parseSecurityOpts, type SpecInputs } from '../../../src/containers/spec-builder.js';
import { cgroupPathOf } from '../../../src/containers/paths.js';
import type { HostConfig } from '../../../src/containers/types.js';
import { compiledSeccomp } from '../../../src/runtime/seccomp/cache.js';

describe('spec builder options', () => {
  it('parses --security-opt', () => {
    expect(parseSecurityOpts(['no-new-privileges'])).toEqual({ seccomp: 'default', noNewPrivileges: true });
    expect(parseSecurityOpts(['seccomp=unconfined']).seccomp).toBe('unconfined');
    expect(() => parseSecurityOpts(['bogus=1'])).toThrow(/invalid --security-opt/);
  });
});

/** A busybox `true` container's inputs with the given host config. */
const inputs = (hostConfig: HostConfig, cgroupV2 = false): SpecInputs => ({
  id: 'c1',
  config: { Image: 'busybox', Cmd: ['true'], Env: [], WorkingDir: '', Labels: {} } as unknown as SpecInputs['config'],
  hostConfig,
  user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
  etcFiles: {},
  userMounts: [],
  namespacePaths: {},
  resources: {},
  devices: [],
  deviceRules: [],
  cgroupsPath: cgroupPathOf({ id: 'c1', hostConfig }),
  cgroupV2,
  initPath: '/usr/libexec/berth-init',
});

describe('cgroup namespace and cgroup parent, on both cgroup versions', () => {
  const cgroupns = (hc: HostConfig, v2: boolean): boolean =>
    (buildSpec(inputs(hc, v2)).linux?.namespaces ?? []).some((n) => n.type === 'cgroup');

  it('CgroupnsMode private and host are honoured on v1 and v2; unset is private on v2, host on v1 (dockerd)', () => {
    for (const v2 of [false, true]) {
      expect(cgroupns({ CgroupnsMode: 'private' }, v2)).toBe(true);
      expect(cgroupns({ CgroupnsMode: 'host' }, v2)).toBe(false);
    }
    expect(cgroupns({}, true)).toBe(true);
    expect(cgroupns({}, false)).toBe(false);
  });

  it('--cgroup-parent places the cgroup under the given cgroupfs path (either version), else under /berth', () => {
    expect(buildSpec(inputs({ CgroupParent: '/mygroup' }, true)).linux?.cgroupsPath).toBe('/mygroup/c1');
    expect(buildSpec(inputs({ CgroupParent: 'a/b/' }, false)).linux?.cgroupsPath).toBe('/a/b/c1');
    expect(buildSpec(inputs({}, true)).linux?.cgroupsPath).toBe('/berth/c1');
  });
});

describe('a CRI pod\'s user namespace', () => {
  const inputs = (over: Partial<SpecInputs>): SpecInputs => ({
    id: 'c1',
    config: { Image: 'busybox', Cmd: ['true'], Env: [], WorkingDir: '', Labels: {} } as unknown as SpecInputs['config'],
    hostConfig: {},
    user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
    etcFiles: {},
    userMounts: [{ destination: '/vol', type: 'bind', source: '/srv/vol', options: ['rbind', 'rprivate'] }],
    namespacePaths: { network: '/run/netns/x' },
    resources: {},
    devices: [],
    deviceRules: [],
    cgroupsPath: '/berth/c1',
    cgroupV2: false,
    initPath: '/usr/libexec/berth-init',
    ...over,
  });
  const maps = { uidMappings: [{ containerID: 0, hostID: 1000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 2000, size: 65536 }] };

  it('puts the user namespace first with the maps (the holder makes it), and no ping_group_range (its gids are not mapped)', () => {
    const s = buildSpec(inputs({ userns: maps }));
    expect(s.linux?.namespaces?.[0]).toEqual({ type: 'user' });
    expect(s.linux?.uidMappings).toEqual(maps.uidMappings);
    expect(s.linux?.gidMappings).toEqual(maps.gidMappings);
    expect(s.linux?.sysctl?.['net.ipv4.ping_group_range']).toBeUndefined();
    // binds stay plain: what the container writes there is owned by the mapped ids on the host
    expect(s.mounts?.find((m) => m.destination === '/vol')?.options).not.toContain('idmap');
  });

  it('joins the holder\'s user namespace by path in the pod\'s containers', () => {
    const s = buildSpec(inputs({ userns: maps, namespacePaths: { network: '/proc/7/ns/net', user: '/proc/7/ns/user' } }));
    expect(s.linux?.namespaces?.[0]).toEqual({ type: 'user', path: '/proc/7/ns/user' });
  });

  it('leaves Docker containers without a user namespace or maps', () => {
    const s = buildSpec(inputs({}));
    expect(s.linux?.namespaces?.some((n) => n.type === 'user')).toBe(false);
    expect(s.linux?.uidMappings).toBeUndefined();
  });
});

describe('spec builder: seccomp sections', () => {

  it('shares one frozen section between containers of the same profile and capabilities, another for other capabilities', () => {
    const a = buildSpec(inputs({})).linux?.seccomp;
    const b = buildSpec(inputs({})).linux?.seccomp;
    const c = buildSpec(inputs({ CapAdd: ['SYS_ADMIN'] })).linux?.seccomp;
    expect(a).toBeDefined();
    expect(b).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(a?.syscalls?.[0])).toBe(true);
    expect(c).not.toBe(a);
    expect(JSON.stringify(c)).not.toBe(JSON.stringify(a));
    expect(compiledSeccomp({ ociVersion: '1.0.2', linux: { seccomp: a } })).toBe(compiledSeccomp({ ociVersion: '1.0.2', linux: { seccomp: b } }));
  });
});
