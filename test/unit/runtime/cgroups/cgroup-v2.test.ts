import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  blkioWeightToIoWeight,
  CgroupWarnings,
  compileDeviceFilter,
  createCgroupManager,
  type DeviceFilterAttacher,
  type LinuxResources,
  memorySwapToV2,
  sharesToCpuWeight,
} from '../../../../src/runtime/cgroups/index.js';
import { FakeCgroupFs } from './fake-cgroupfs.js';
import { dockerCgroupStats } from '../../../../src/containers/stats.js';

/** Root of a pure cgroup v2 host. Files listed here are also what every child cgroup gets. */
const ROOT_FILES: Record<string, string> = {
  'cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
  'cgroup.subtree_control': '',
  'cgroup.procs': '',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cgroup.freeze': '0\n',
  'cgroup.kill': '',
  'cpuset.cpus.effective': '0-3\n',
  'cpuset.mems.effective': '0\n',
  'cpuset.cpus': '',
  'cpuset.mems': '',
  'cpu.weight': '100\n',
  'cpu.max': 'max 100000\n',
  'cpu.stat': '',
  'memory.max': 'max\n',
  'memory.swap.max': 'max\n',
  'memory.low': '0\n',
  'memory.current': '0\n',
  'memory.stat': '',
  'memory.events': '',
  'pids.max': 'max\n',
  'pids.current': '0\n',
  'io.weight': 'default 100\n',
  'io.max': '',
  'io.stat': '',
};

const RESOURCES: LinuxResources = {
  devices: [{ allow: false, access: 'rwm' }],
  memory: { limit: 67108864, reservation: 33554432, swap: 134217728, swappiness: 30, disableOOMKiller: false },
  cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
  pids: { limit: 100 },
  blockIO: {
    weight: 300,
    throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }],
    throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 100 }],
  },
};

describe('cgroup v2 backend over a fake cgroupfs', () => {
  let fake: FakeCgroupFs;

  beforeEach(async () => {
    fake = await FakeCgroupFs.create();
    fake.rootOnly = new Set(['cgroup.controllers', 'cpuset.cpus.effective', 'cpuset.mems.effective']);
    fake.defaults = { 'cgroup.events': 'populated 0\nfrozen 0\n', 'memory.max': 'max\n', 'pids.max': 'max\n' };
    await fake.seed('.', ROOT_FILES);
  });

  afterEach(async () => {
    await fake.cleanup();
  });

  /** Device programs the backend attached: [cgroup dir, instruction bytes]. */
  let attached: Array<[string, Buffer]> = [];
  let attachFails: NodeJS.ErrnoException | undefined;
  const attachDeviceFilter: DeviceFilterAttacher = (dir, insns) => {
    if (attachFails !== undefined) throw attachFails;
    attached.push([dir, insns]);
    return 0;
  };
  beforeEach(() => {
    attached = [];
    attachFails = undefined;
  });

  const manager = () => createCgroupManager({ root: fake.root, fs: fake, attachDeviceFilter });

  it('detects v2 from cgroup.controllers at the root', () => {
    const mgr = manager();
    expect(mgr.version).toBe('2');
    expect(mgr.open('berth/a').procsFiles()).toEqual([`${fake.root}/berth/a/cgroup.procs`]);
  });

  it('creates a --cgroup-parent cgroup under the parent (controllers enabled along the path), limits applied there', async () => {
    const { cgroup } = await manager().create('mygroup/sub/c1', { pids: { limit: 42 } });
    expect(await fake.get('mygroup/sub/c1/pids.max')).toBe('42');
    expect(fake.writesTo('mygroup/sub/cgroup.subtree_control')).toContain('+pids');
    expect(cgroup.procsFiles()).toEqual([`${fake.root}/mygroup/sub/c1/cgroup.procs`]);
  });

  it('enables controllers top-down and writes the converted limits', async () => {
    const { cgroup, warnings } = await manager().create('berth/abc', RESOURCES);
    expect(fake.writesTo('cgroup.subtree_control')).toEqual([
      '+cpuset', '+cpu', '+io', '+memory', '+hugetlb', '+pids',
      '+cpuset', '+cpu', '+io', '+memory', '+hugetlb', '+pids',
    ]);
    expect((await fake.get('berth/abc/cgroup.controllers')).trim()).toBe('cpuset cpu io memory hugetlb pids');
    const d = 'berth/abc';
    expect(await fake.get(`${d}/memory.max`)).toBe('67108864');
    expect(await fake.get(`${d}/memory.swap.max`)).toBe('67108864'); // memsw 128m − memory 64m
    expect(await fake.get(`${d}/memory.low`)).toBe('33554432');
    expect(await fake.get(`${d}/cpu.weight`)).toBe('20'); // 1 + (510 × 9999) / 262142
    expect(await fake.get(`${d}/cpu.max`)).toBe('50000 100000');
    expect(await fake.get(`${d}/cpuset.cpus`)).toBe('0-1');
    expect(await fake.get(`${d}/cpuset.mems`)).toBe('0');
    expect(await fake.get(`${d}/pids.max`)).toBe('100');
    expect(await fake.get(`${d}/io.weight`)).toBe('2930'); // 1 + (290 × 9999) / 990
    expect(fake.writesTo(`${d}/io.max`)).toEqual(['8:0 rbps=1048576', '8:0 wiops=100']);
    expect(warnings).toEqual([CgroupWarnings.memorySwappiness]);
    expect(cgroup.procsFiles()).toEqual([`${fake.root}/${d}/cgroup.procs`]);
    expect(attached).toEqual([[`${fake.root}/${d}`, compileDeviceFilter(RESOURCES.devices ?? [])]]);
  });

  it('attaches the device program on update too, and none when no device rules are given', async () => {
    const { cgroup } = await manager().create('berth/u', { pids: { limit: 10 } });
    expect(attached).toEqual([]);
    const rules = [{ allow: false, access: 'rwm' }, { allow: true, type: 'c' as const, major: 1, minor: 3, access: 'rwm' }];
    expect(await cgroup.update({ devices: rules })).toEqual([]);
    expect(attached).toEqual([[`${fake.root}/berth/u`, compileDeviceFilter(rules)]]);
  });

  it('warns when the kernel cannot run device programs, fails on other attach errors', async () => {
    attachFails = Object.assign(new Error('ENOSYS: Function not implemented, bpf(BPF_PROG_LOAD)'), { code: 'ENOSYS' });
    expect((await manager().create('k1', { devices: [{ allow: false, access: 'rwm' }] })).warnings).toEqual([CgroupWarnings.devicesV2]);
    // Allow-everything rules restrict nothing: no warning even then.
    expect((await manager().create('k2', { devices: [{ allow: true, access: 'rwm' }] })).warnings).toEqual([]);
    attachFails = Object.assign(new Error('EPERM: Operation not permitted, bpf(BPF_PROG_ATTACH)'), { code: 'EPERM' });
    await expect(manager().create('k3', { devices: [{ allow: false, access: 'rwm' }] })).rejects.toThrow(
      /failed to set cgroup v2 device rules on .*k3: EPERM.*BPF_PROG_ATTACH/,
    );
  });

  it('refuses rules runc refuses (a hole in a wildcard exception) before writing anything', async () => {
    await expect(
      manager().create('h', {
        devices: [
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', major: 136, minor: -1, access: 'rwm' },
          { allow: false, type: 'c', major: 136, minor: 0, access: 'rwm' },
        ],
      }),
    ).rejects.toThrow(/cannot punch hole/);
    expect(attached).toEqual([]);
  });

  it('writes the raw weight to io.bfq.weight when BFQ is there', async () => {
    await fake.put('io.bfq.weight', 'default 100\n');
    await manager().create('b', { blockIO: { weight: 300, weightDevice: [{ major: 8, minor: 0, weight: 50 }] } });
    expect(fake.writesTo('b/io.bfq.weight')).toEqual(['300', '8:0 50']);
  });

  it('warns for controllers the host does not offer', async () => {
    await fake.put('cgroup.controllers', 'cpu memory\n');
    const { warnings } = await manager().create('berth/x', {
      memory: { limit: 67108864, disableOOMKiller: true },
      cpu: { cpus: '0', realtimeRuntime: 1000 },
      pids: { limit: 5 },
      blockIO: { weight: 100 },
    });
    expect(warnings).toEqual([
      CgroupWarnings.oomKillDisable,
      CgroupWarnings.cpuRealtime,
      CgroupWarnings.cpuset,
      CgroupWarnings.pidsLimit,
      CgroupWarnings.blkioWeight,
    ]);
    expect(await fake.get('berth/x/memory.max')).toBe('67108864');
  });

  it('updates limits live: unlimited swap and pids become max', async () => {
    const { cgroup } = await manager().create('u', { memory: { limit: 67108864, swap: 134217728 } });
    const warnings = await cgroup.update({ memory: { limit: 268435456, swap: -1 }, pids: { limit: -1 }, cpu: { quota: -1, period: 100000 } });
    expect(warnings).toEqual([]);
    expect(await fake.get('u/memory.max')).toBe('268435456');
    expect(await fake.get('u/memory.swap.max')).toBe('max');
    expect(await fake.get('u/pids.max')).toBe('max');
    expect(await fake.get('u/cpu.max')).toBe('max 100000');
    await expect(cgroup.update({ memory: { swap: 134217728 } })).rejects.toThrow('unable to set swap limit without memory limit');
  });

  it('parses stats from realistic v2 files', async () => {
    const { cgroup } = await manager().create('s', { memory: { limit: 67108864 } });
    await fake.put('s/cpu.stat', [
      'usage_usec 2213456', 'user_usec 1500000', 'system_usec 713456', 'core_sched.force_idle_usec 0',
      'nr_periods 50', 'nr_throttled 4', 'throttled_usec 81234', 'nr_bursts 0', 'burst_usec 0', '',
    ].join('\n'));
    await fake.put('s/memory.current', '10473472\n');
    await fake.put('s/memory.stat', [
      'anon 1572864', 'file 7626752', 'kernel_stack 16384', 'slab 1180928', 'sock 0', 'shmem 0',
      'file_mapped 2723840', 'inactive_anon 0', 'active_anon 1572864', 'inactive_file 2510848',
      'active_file 5115904', 'unevictable 0', 'pgfault 2042', 'pgmajfault 45', '',
    ].join('\n'));
    await fake.put('s/memory.events', 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n');
    await fake.put('s/pids.current', '4\n');
    await fake.put('s/io.stat', '8:0 rbytes=7593984 wbytes=100 rios=120 wios=2 dbytes=0 dios=0\n253:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n');
    const s = dockerCgroupStats(await cgroup.counters(), 4 * 2 ** 30);
    expect(s.cpu_stats).toEqual({
      cpu_usage: { total_usage: 2213456000, usage_in_kernelmode: 713456000, usage_in_usermode: 1500000000 },
      throttling_data: { periods: 50, throttled_periods: 4, throttled_time: 81234000 },
    });
    expect(s.memory_stats).toEqual({
      usage: 10473472,
      limit: 67108864,
      stats: expect.objectContaining({ anon: 1572864, file: 7626752, inactive_file: 2510848 }),
    });
    expect(s.pids_stats).toEqual({ current: 4, limit: 0 });
    expect(s.blkio_stats.io_service_bytes_recursive).toEqual([
      { major: 8, minor: 0, op: 'read', value: 7593984 },
      { major: 8, minor: 0, op: 'write', value: 100 },
      { major: 253, minor: 0, op: 'read', value: 4096 },
      { major: 253, minor: 0, op: 'write', value: 0 },
    ]);
    expect(s.blkio_stats.io_serviced_recursive).toBeNull();
    expect(await cgroup.oomKillCount()).toBe(1);
  });

  it('reports an unlimited memory.max as Infinity; stats cap it at the host memory', async () => {
    const { cgroup } = await manager().create('m', {});
    const raw = await cgroup.counters();
    expect(raw.memory.limit).toBe(Infinity);
    expect(dockerCgroupStats(raw, 4 * 2 ** 30).memory_stats.limit).toBe(4 * 2 ** 30);
  });

  it('freezes through cgroup.freeze and waits for cgroup.events', async () => {
    const { cgroup } = await manager().create('f', {});
    await cgroup.freeze();
    expect(await fake.get('f/cgroup.freeze')).toBe('1');
    expect(await cgroup.isFrozen()).toBe(true);
    await cgroup.thaw();
    expect(await cgroup.isFrozen()).toBe(false);
  });

  it('kills with cgroup.kill for SIGKILL and destroys the directory tree', async () => {
    const mgr = manager();
    const { cgroup } = await mgr.create('berth/k', {});
    await cgroup.killAll('SIGKILL');
    expect(fake.writesTo('berth/k/cgroup.kill')).toEqual(['1']);
    await fake.mkdir(`${fake.root}/berth/k/sub`);
    await cgroup.destroy();
    expect(await fake.exists(`${fake.root}/berth/k`)).toBe(false);
    expect(await fake.exists(`${fake.root}/berth`)).toBe(true);
  });

  it('reports sysinfo from the root controllers', async () => {
    const info = await manager().sysInfo();
    expect(info).toMatchObject({
      memoryLimit: true,
      swapLimit: true,
      oomKillDisable: false,
      memorySwappiness: false,
      cpuShares: true,
      cpuCfs: true,
      cpuRealtime: false,
      cpuset: true,
      cpus: '0-3',
      mems: '0',
      blkioWeight: true,
      pidsLimit: true,
      devices: true,
    });
  });

  it('removes created directories when a value is refused', async () => {
    await expect(manager().create('berth/bad', { memory: { limit: 67108864, swap: 1000 } })).rejects.toThrow(
      'memory+swap limit should be >= memory limit',
    );
    expect(await fake.exists(`${fake.root}/berth`)).toBe(false);
  });
});

describe('v2 conversions', () => {
  it('maps cpu shares to cpu.weight like runc', () => {
    expect(sharesToCpuWeight(2)).toBe(1);
    expect(sharesToCpuWeight(1024)).toBe(39);
    expect(sharesToCpuWeight(262144)).toBe(10000);
    expect(sharesToCpuWeight(0)).toBe(0);
  });

  it('maps blkio weight to io.weight', () => {
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
  });

  it('turns memory+swap into swap-only', () => {
    expect(memorySwapToV2(134217728, 67108864)).toBe(67108864);
    expect(memorySwapToV2(67108864, 67108864)).toBe(0);
    expect(memorySwapToV2(-1, 67108864)).toBe(-1);
    expect(memorySwapToV2(0, -1)).toBe(-1);
    expect(memorySwapToV2(0, 67108864)).toBe(0);
    expect(() => memorySwapToV2(100, 0)).toThrow('unable to set swap limit without memory limit');
  });
});
