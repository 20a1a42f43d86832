import { describe, expect, it } from 'vitest';
import type { ContainerView } from '../../../src/containers/types.js';
import { podMessage } from '../../../src/cri/nri-hooks.js';

describe("NRI's view of a pod's resources", () => {
  it('carries the pod-level overhead and resources the kubelet gave, as NRI LinuxResources', () => {
    const sb = {
      id: 'p1',
      state: { Pid: 42 },
      cri: { kind: 'sandbox', data: { metadata: { name: 'n', uid: 'u', namespace: 'ns' }, cgroupParent: '/kubepods/podu', overhead: { cpu_shares: '2' }, resources: { cpu_quota: '50000', cpu_period: '100000', memory_limit_in_bytes: '134217728', unified: { 'memory.high': '100M' } } } },
    } as unknown as ContainerView;
    const linux = podMessage(sb).linux as Record<string, Record<string, Record<string, unknown>>>;
    expect(linux.cgroup_parent).toBe('/kubepods/podu');
    expect(linux.pod_overhead?.cpu).toMatchObject({ shares: { value: '2' }, quota: null });
    expect(linux.pod_resources?.cpu).toMatchObject({ quota: { value: '50000' }, period: { value: '100000' } });
    expect(linux.pod_resources?.memory).toMatchObject({ limit: { value: '134217728' } });
    expect(linux.pod_resources?.unified).toEqual({ 'memory.high': '100M' });
  });

  it('has none when the kubelet gave none', () => {
    const sb = { id: 'p2', state: { Pid: 0 }, cri: { kind: 'sandbox', data: { cgroupParent: '' } } } as unknown as ContainerView;
    expect(podMessage(sb).linux).toEqual({ cgroup_parent: '' });
  });
});
