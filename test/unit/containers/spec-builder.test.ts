import { describe, expect, it } from 'vitest';
import { buildSpec, parseSecurityOpts, type SpecInputs } from '../../../src/containers/spec-builder.js';
import { cgroupPathOf } from '../../../src/containers/paths.js';
import type { HostConfig } from '../../../src/containers/types.js';

describe('spec builder options', () => {
  it('parses --security-opt', () => {
    expect(parseSecurityOpts(['no-new-privileges'])).toEqual({ seccomp: 'default', noNewPrivileges: true });
    expect(parseSecurityOpts(['seccomp=unconfined']).seccomp).toBe('unconfined');
    expect(() => parseSecurityOpts(['bogus=1'])).toThrow(/invalid --security-opt/);
  });
});

describe('cgroup namespace and cgroup parent, on both cgroup versions', () => {
  const inputs = (hostConfig: HostConfig, cgroupV2: boolean): SpecInputs => ({
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
