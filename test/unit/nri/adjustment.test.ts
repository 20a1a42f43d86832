import { describe, expect, it } from 'vitest';
import { AdjustmentConflictError, mergeAdjustments } from '../../../src/nri/adjustment.js';
import { applyAdjustment } from '../../../src/cri/nri-hooks.js';
import type { CreateRequest } from '../../../src/containers/create-request.js';

describe('merging NRI container adjustments', () => {
  it('takes each plugin\'s fields in order; "-" removes', () => {
    const a = mergeAdjustments([
      { plugin: '10-a', adjust: { annotations: { x: '1', '-gone': '' }, env: [{ key: 'A', value: '1' }, { key: '-B', value: '' }] } },
      { plugin: '20-b', adjust: { env: [{ key: 'C', value: '3' }], rlimits: [{ type: 'RLIMIT_NOFILE', soft: '100', hard: '200' }], linux: { oom_score_adj: { value: '5' } } } },
    ]);
    expect([...a.annotations]).toEqual([['x', '1'], ['gone', null]]);
    expect([...a.env]).toEqual([['A', '1'], ['B', null], ['C', '3']]);
    expect(a.rlimits.get('RLIMIT_NOFILE')).toEqual({ soft: 100, hard: 200 });
    expect(a.oomScoreAdj).toBe(5);
    expect(a.unsupported).toEqual([]);
  });

  it('two plugins setting the same field conflict', () => {
    expect(() => mergeAdjustments([
      { plugin: '10-a', adjust: { env: [{ key: 'A', value: '1' }] } },
      { plugin: '20-b', adjust: { env: [{ key: 'A', value: '2' }] } },
    ])).toThrow(new AdjustmentConflictError('plugins "10-a" and "20-b" both tried to set environment variable "A"'));
    expect(() => mergeAdjustments([
      { plugin: '10-a', adjust: { linux: { resources: { memory: { limit: { value: '1000' } } } } } },
      { plugin: '20-b', adjust: { linux: { resources: { memory: { limit: { value: '2000' } } } } } },
    ])).toThrow(/both tried to set memory limit/);
    expect(() => mergeAdjustments([
      { plugin: '10-a', adjust: { mounts: [{ destination: '/m', source: '/x', type: 'bind', options: [] }] } },
      { plugin: '20-b', adjust: { mounts: [{ destination: '-/m' }] } },
    ])).toThrow(/both tried to set mount "\/m"/);
  });

  it('the same plugin may set a field twice; args with a leading "" take over without a conflict', () => {
    const a = mergeAdjustments([
      { plugin: '10-a', adjust: { args: ['sh', '-c', 'x'] } },
      { plugin: '20-b', adjust: { args: ['', 'sleep', '1'] } },
    ]);
    expect(a.args).toEqual(['sleep', '1']);
    expect(() => mergeAdjustments([
      { plugin: '10-a', adjust: { args: ['a'] } },
      { plugin: '20-b', adjust: { args: ['b'] } },
    ])).toThrow(/both tried to set args/);
  });

  it('collects resources and names what Berth cannot apply', () => {
    const a = mergeAdjustments([
      {
        plugin: '10-a',
        adjust: {
          linux: {
            resources: { cpu: { shares: { value: '512' }, cpus: '0', mems: '' }, hugepage_limits: [{ page_size: '2MB', limit: '1' }], blockio_class: { value: 'slow' } },
            namespaces: [{ type: 'network', path: '/x' }],
          },
          hooks: { prestart: [{ path: '/bin/true' }] },
        },
      },
    ]);
    expect(a.resources.cpuShares).toBe(512);
    expect(a.resources.cpusetCpus).toBe('0');
    expect(a.resources.hugepageLimits.get('2MB')).toBe(1);
    expect(a.unsupported).toEqual(['OCI hooks (plugin "10-a")', 'Linux namespaces (plugin "10-a")']);
  });
});

describe('applying a merged adjustment to a CRI create request', () => {
  const request = (): CreateRequest => ({
    body: {
      Image: 'img',
      Env: ['A=0', 'B=1'],
      Entrypoint: ['sh'],
      Cmd: ['-c', 'true'],
      HostConfig: { Mounts: [{ Type: 'bind', Source: '/a', Target: '/mnt/a' }], Ulimits: [{ Name: 'nofile', Soft: 1, Hard: 1 }] },
    },
  });

  it('env, annotations, args, mounts, rlimits, resources, oom score and sysctls reach the Docker-shaped request', () => {
    const req = request();
    applyAdjustment(
      req,
      mergeAdjustments([
        {
          plugin: '10-a',
          adjust: {
            env: [{ key: 'A', value: 'x' }, { key: '-B' }, { key: 'C', value: 'y' }],
            annotations: { 'nri.test/a': 'yes', '-pod.anno': '' },
            args: ['sleep', '9'],
            mounts: [{ destination: '-/mnt/a' }, { destination: '/mnt/b', source: '/b', type: 'bind', options: ['rbind', 'ro', 'rslave'] }],
            rlimits: [{ type: 'RLIMIT_NOFILE', soft: '10', hard: '20' }],
            linux: { oom_score_adj: { value: '100' }, sysctl: { 'net.ipv4.ip_forward': '1' }, resources: { memory: { limit: { value: '67108864' } }, cpu: { quota: { value: '5000' }, period: { value: '100000' } } } },
          },
        },
      ]),
      { 'pod.anno': 'p', keep: 'k' },
    );
    const b = req.body;
    const hc = b.HostConfig ?? {};
    expect(b.Env).toEqual(['A=x', 'C=y']);
    expect(b.Entrypoint).toEqual(['sleep', '9']);
    expect(b.Cmd).toBeNull();
    expect(hc.Annotations).toEqual({ keep: 'k', 'nri.test/a': 'yes' });
    expect(hc.Mounts).toEqual([{ Type: 'bind', Source: '/b', Target: '/mnt/b', ReadOnly: true, BindOptions: { Propagation: 'rslave', CreateMountpoint: true } }]);
    expect(hc.Ulimits).toEqual([{ Name: 'nofile', Soft: 10, Hard: 20 }]);
    expect(hc.OomScoreAdj).toBe(100);
    expect(hc.Sysctls).toEqual({ 'net.ipv4.ip_forward': '1' });
    expect(hc.Memory).toBe(67108864);
    expect(hc.CpuQuota).toBe(5000);
    expect(hc.CpuPeriod).toBe(100000);
    expect(hc.MemorySwap).toBe(67108864); // a memory limit alone: no swap
  });

  it('refuses what it cannot apply, naming it, and changes nothing', () => {
    const req = request();
    expect(() => applyAdjustment(req, mergeAdjustments([{ plugin: '10-a', adjust: { CDI_devices: [{ name: 'vendor.com/gpu=0' }], linux: { resources: { rdt_class: { value: 'gold' } } } } }]), {})).toThrow(
      'NRI adjustment cannot be applied by Berth: CDI devices (plugin "10-a"), RDT class',
    );
    expect(req.body.Env).toEqual(['A=0', 'B=1']);
  });
});
