import { describe, expect, it } from 'vitest';
import { idmappedMounts, podUserns as podUsernsOn, userNamespacesSupported } from '../../../src/cri/pod-userns.js';
import { hostIdOf } from '../../../src/containers/launcher.js';

// NamespaceOption as the proto-loader delivers it (enums as names, longs as strings, defaults filled in)
// on a host that supports them (the check itself is tested below)
const podUserns = (nso: unknown, supported = true): ReturnType<typeof podUsernsOn> => podUsernsOn(nso, supported);
const one = [{ container_id: 0, host_id: '1000', length: '100000' }];
const nso = (userns: unknown, rest: Record<string, unknown> = {}): Record<string, unknown> => ({ network: 'POD', pid: 'CONTAINER', ipc: 'POD', userns_options: userns, ...rest });

describe('a pod\'s user namespace from the CRI NamespaceOption (policy)', () => {
  it('is the host\'s without userns_options or with mode NODE', () => {
    expect(podUserns({})).toBeUndefined();
    expect(podUserns(nso(null))).toBeUndefined();
    expect(podUserns(nso({ mode: 'NODE', uids: [], gids: [] }))).toBeUndefined();
  });

  it('mode POD takes the kubelet\'s one uid and one gid range, container root first', () => {
    expect(podUserns(nso({ mode: 'POD', uids: one, gids: [{ container_id: 0, host_id: 2000, length: 65536 }] }))).toEqual({
      uidMappings: [{ containerID: 0, hostID: 1000, size: 100000 }],
      gidMappings: [{ containerID: 0, hostID: 2000, size: 65536 }],
    });
  });

  it('refuses CONTAINER and TARGET, several ranges, an unmapped root, empty or overflowing ranges, the host root', () => {
    expect(() => podUserns(nso({ mode: 'CONTAINER', uids: one, gids: one }))).toThrow('unsupported user namespace mode: CONTAINER');
    expect(() => podUserns(nso({ mode: 'TARGET', uids: one, gids: one }))).toThrow('unsupported user namespace mode: TARGET');
    expect(() => podUserns(nso({ mode: 'POD', uids: [...one, { container_id: 0, host_id: 2000, length: 1 }], gids: one }))).toThrow('exactly one uid mapping, got 2');
    expect(() => podUserns(nso({ mode: 'POD', uids: one, gids: [] }))).toThrow('exactly one gid mapping, got 0');
    expect(() => podUserns(nso({ mode: 'POD', uids: [{ container_id: 1, host_id: 1000, length: 10 }], gids: one }))).toThrow('must map container ID 0');
    expect(() => podUserns(nso({ mode: 'POD', uids: [{ container_id: 0, host_id: 1000, length: 0 }], gids: one }))).toThrow('invalid user namespace uid mapping');
    expect(() => podUserns(nso({ mode: 'POD', uids: [{ container_id: 0, host_id: 2 ** 32 - 10, length: 100 }], gids: one }))).toThrow('invalid user namespace uid mapping');
    expect(() => podUserns(nso({ mode: 'POD', uids: [{ container_id: 0, host_id: 0, length: 100 }], gids: one }))).toThrow("must not map the host's root");
  });

  it('refuses host network, PID or IPC namespaces in a user namespace (they are owned by the host\'s)', () => {
    for (const ns of ['network', 'pid', 'ipc']) {
      expect(() => podUserns(nso({ mode: 'POD', uids: one, gids: one }, { [ns]: 'NODE' }))).toThrow(`cannot use the host's ${ns} namespace`);
    }
  });

  it('needs user namespaces allowed and a kernel whose overlayfs takes idmapped layers (5.19)', () => {
    expect(userNamespacesSupported('6.18.44-fc', 63000)).toBe(true);
    expect(userNamespacesSupported('5.19.0', 1)).toBe(true);
    expect(userNamespacesSupported('5.15.0-91-generic', 63000)).toBe(false);
    expect(userNamespacesSupported('6.8.0', 0)).toBe(false);
    expect(() => podUserns(nso({ mode: 'POD', uids: one, gids: one }), false)).toThrow('user namespaces are not supported on this host');
    expect(podUserns(nso({ mode: 'NODE' }), false)).toBeUndefined();
  });

  it('maps a container id to its host id through the ranges', () => {
    const maps = [{ containerID: 0, hostID: 1000, size: 10 }];
    expect(hostIdOf(maps, 0)).toBe(1000);
    expect(hostIdOf(maps, 9)).toBe(1009);
    expect(hostIdOf(maps, 10)).toBe(10);
  });

  it('idmaps the mounts the kubelet gives the pod\'s maps (not image volumes), refuses other maps or no user namespace', () => {
    const userns = { uidMappings: [{ containerID: 0, hostID: 1000, size: 100000 }], gidMappings: [{ containerID: 0, hostID: 1000, size: 100000 }] };
    const mounts = [
      { container_path: '/plain', host_path: '/srv/a', uidMappings: [], gidMappings: [] },
      { container_path: '/data', host_path: '/srv/b', uidMappings: one, gidMappings: one },
      { container_path: '/img', image: { image: 'x' }, uidMappings: one, gidMappings: one },
    ];
    expect(idmappedMounts(mounts, userns)).toEqual(['/data']);
    expect(idmappedMounts([mounts[0] ?? {}], undefined)).toEqual([]);
    expect(() => idmappedMounts(mounts, undefined)).toThrow('/data: an idmapped mount needs a pod in a user namespace');
    expect(() => idmappedMounts([{ container_path: '/d', uidMappings: [{ container_id: 0, host_id: 5000, length: 10 }], gidMappings: one }], userns)).toThrow('other mappings than the pod');
  });
});
