import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CgroupV1,
  createCgroupManager,
  CgroupWarnings,
  formatV1DeviceRule,
  type LinuxResources,
  parseBlkioFile,
  parseCgroupMounts,
} from '../../../../src/runtime/cgroups/index.js';
import { FakeCgroupFs } from './fake-cgroupfs.js';
import { dockerCgroupStats } from '../../../../src/containers/stats.js';

const UNLIMITED = '9223372036854771712\n';

/** Root files of each v1 hierarchy, as on the CI hosts (no blkio.weight: Docker drops --blkio-weight there). */
const HIERARCHIES: Record<string, Record<string, string>> = {
  cpu: {
    'cgroup.procs': '',
    'cpu.shares': '1024\n',
    'cpu.cfs_period_us': '100000\n',
    'cpu.cfs_quota_us': '-1\n',
    'cpu.rt_period_us': '1000000\n',
    'cpu.rt_runtime_us': '950000\n',
    'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n',
  },
  cpuacct: {
    'cgroup.procs': '',
    'cpuacct.usage': '0\n',
    'cpuacct.usage_percpu': '0 0\n',
    'cpuacct.stat': 'user 0\nsystem 0\n',
  },
  cpuset: { 'cgroup.procs': '', 'cpuset.cpus': '0-1\n', 'cpuset.mems': '0\n', 'cpuset.effective_cpus': '0-1\n', 'cpuset.effective_mems': '0\n' },
  memory: {
    'cgroup.procs': '',
    'memory.limit_in_bytes': UNLIMITED,
    'memory.memsw.limit_in_bytes': UNLIMITED,
    'memory.soft_limit_in_bytes': UNLIMITED,
    'memory.kmem.limit_in_bytes': UNLIMITED,
    'memory.swappiness': '60\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'memory.usage_in_bytes': '0\n',
    'memory.max_usage_in_bytes': '0\n',
    'memory.failcnt': '0\n',
    'memory.stat': '',
  },
  devices: { 'cgroup.procs': '', 'devices.allow': '', 'devices.deny': '', 'devices.list': 'a *:* rwm\n' },
  freezer: { 'cgroup.procs': '' },
  blkio: {
    'cgroup.procs': '',
    'blkio.throttle.read_bps_device': '',
    'blkio.throttle.write_bps_device': '',
    'blkio.throttle.read_iops_device': '',
    'blkio.throttle.write_iops_device': '',
    'blkio.throttle.io_service_bytes_recursive': 'Total 0\n',
    'blkio.throttle.io_serviced_recursive': 'Total 0\n',
  },
  // (pids.max / pids.current exist only below the root on a real host; the fake copies names from the parent.)
  pids: { 'cgroup.procs': '', 'pids.max': 'max\n', 'pids.current': '0\n' },
  systemd: { 'cgroup.procs': '' },
};

function mountinfoFor(root: string, names: string[], withUnified = true): string {
  const lines = [`31 23 0:28 / ${root} rw,relatime - tmpfs tmpfs rw,mode=755`];
  let id = 32;
  for (const n of names) {
    const opt = n === 'systemd' ? 'name=systemd' : n;
    lines.push(`${id} 31 0:${id} / ${root}/${n} rw,nosuid,nodev,noexec,relatime shared:${id} - cgroup cgroup rw,${opt}`);
    id++;
  }
  if (withUnified) lines.push(`${id} 31 0:${id} / ${root}/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw`);
  return lines.join('\n') + '\n';
}

/** The resources dockerd 20.10 generated for the "many options" run, plus throttling and default device rules. */
const MANY_OPTIONS: LinuxResources = {
  devices: [
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
    { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' },
    { allow: true, type: 'c', major: 42, minor: -1, access: 'rmw' },
    { allow: true, type: 'c', major: 136, minor: -1, access: 'rwm' },
  ],
  memory: { limit: 67108864, reservation: 33554432, swap: 134217728, disableOOMKiller: false },
  cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0' },
  pids: { limit: 100 },
  blockIO: { weight: 300, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }] },
};

describe('cgroup v1 backend over a fake cgroupfs', () => {
  let fake: FakeCgroupFs;
  const names = Object.keys(HIERARCHIES);

  beforeEach(async () => {
    fake = await FakeCgroupFs.create();
    fake.defaults = {
      'memory.limit_in_bytes': UNLIMITED,
      'memory.memsw.limit_in_bytes': UNLIMITED,
      'freezer.state': 'THAWED\n',
      'devices.list': 'a *:* rwm\n',
    };
    for (const [n, files] of Object.entries(HIERARCHIES)) await fake.seed(n, files);
    await fake.seed('unified', {
      'cgroup.procs': '',
      'cgroup.controllers': '',
      'cgroup.events': 'populated 0\nfrozen 0\n',
      'cgroup.freeze': '0\n',
      'cgroup.kill': '',
    });
  });

  afterEach(async () => {
    await fake.cleanup();
  });

  const manager = (hierarchies = names, withUnified = true) =>
    createCgroupManager({ root: fake.root, mountinfo: mountinfoFor(fake.root, hierarchies, withUnified), fs: fake });

  /** Freezer children get a freezer.state file; the fake copies names from the parent, so seed it there. */
  async function withFreezerState(): Promise<void> {
    await fake.put('freezer/freezer.state', 'THAWED\n');
  }

  it('detects v1 when the root has no cgroup.controllers and finds each hierarchy in mountinfo', () => {
    const mgr = manager();
    expect(mgr.version).toBe('1');
    const cg = mgr.open('berth/abc');
    expect(cg.procsFiles()).toEqual([
      ...names.map((n) => `${fake.root}/${n}/berth/abc/cgroup.procs`),
      `${fake.root}/unified/berth/abc/cgroup.procs`,
    ]);
  });

  it('creates the directory in every hierarchy and writes the limits with the right values', async () => {
    await withFreezerState();
    const { cgroup, warnings } = await manager().create('berth/abc', MANY_OPTIONS);
    expect(cgroup.path).toBe('berth/abc');
    for (const n of [...names, 'unified']) {
      expect(await fake.exists(`${fake.root}/${n}/berth/abc`)).toBe(true);
    }
    expect(await fake.get('memory/berth/abc/memory.limit_in_bytes')).toBe('67108864');
    expect(await fake.get('memory/berth/abc/memory.memsw.limit_in_bytes')).toBe('134217728');
    expect(await fake.get('memory/berth/abc/memory.soft_limit_in_bytes')).toBe('33554432');
    // memory must be lowered before memsw on a fresh (unlimited) cgroup.
    const memWrites = fake.writes.filter((w) => /memory\.(memsw\.)?limit_in_bytes$/.test(w.file));
    expect(memWrites.map((w) => w.file)).toEqual(['memory/berth/abc/memory.limit_in_bytes', 'memory/berth/abc/memory.memsw.limit_in_bytes']);
    expect(await fake.get('memory/berth/abc/memory.oom_control')).toBe('');
    expect(await fake.get('cpu/berth/abc/cpu.shares')).toBe('512');
    expect(await fake.get('cpu/berth/abc/cpu.cfs_period_us')).toBe('100000');
    expect(await fake.get('cpu/berth/abc/cpu.cfs_quota_us')).toBe('50000');
    expect(await fake.get('cpuset/berth/abc/cpuset.cpus')).toBe('0');
    // A new cpuset cgroup inherits mems from its parent (and the intermediate level gets both).
    expect(await fake.get('cpuset/berth/abc/cpuset.mems')).toBe('0');
    expect(await fake.get('cpuset/berth/cpuset.cpus')).toBe('0-1');
    expect(await fake.get('pids/berth/abc/pids.max')).toBe('100');
    expect(await fake.get('blkio/berth/abc/blkio.throttle.read_bps_device')).toBe('8:0 1048576');
    expect(fake.writesTo('berth/abc/devices.deny')).toEqual(['a', 'a', 'c 10:229 rwm']);
    expect(fake.writesTo('berth/abc/devices.allow')).toEqual(['c 1:5 rwm', 'c 1:3 rwm', 'c 42:* rmw', 'c 136:* rwm']);
    // The host has neither blkio.weight nor blkio.bfq.weight: dropped with Docker's warning.
    expect(warnings).toEqual([CgroupWarnings.blkioWeight]);
  });

  it('skips controllers the host lacks with warnings instead of failing', async () => {
    const mgr = manager(['cpu', 'cpuacct', 'memory', 'devices', 'freezer'], false);
    const { warnings } = await mgr.create('berth/x', {
      memory: { limit: 67108864, swappiness: 10, kernel: 50331648 },
      cpu: { cpus: '0', shares: 100 },
      pids: { limit: 10 },
      blockIO: { weight: 500, weightDevice: [{ major: 8, minor: 0, weight: 100 }], throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 5 }] },
    });
    expect(warnings).toEqual(
      expect.arrayContaining([
        CgroupWarnings.cpuset,
        CgroupWarnings.pidsLimit,
        CgroupWarnings.blkioWeight,
        CgroupWarnings.blkioWeightDevice,
        CgroupWarnings.blkioWriteIOpsDevice,
      ]),
    );
    expect(await fake.get('memory/berth/x/memory.swappiness')).toBe('10');
    expect(await fake.get('memory/berth/x/memory.kmem.limit_in_bytes')).toBe('50331648');
    expect(await fake.exists(`${fake.root}/pids/berth`)).toBe(false);
    expect(await fake.exists(`${fake.root}/unified/berth`)).toBe(false);
  });

  it('warns and limits memory without swap when memsw accounting is off', async () => {
    await rm(`${fake.root}/memory/memory.memsw.limit_in_bytes`);
    const { warnings } = await manager().create('c1', { memory: { limit: 67108864, swap: 134217728 } });
    expect(warnings).toEqual([CgroupWarnings.swapLimit]);
    expect(await fake.get('memory/c1/memory.limit_in_bytes')).toBe('67108864');
  });

  it('orders memory and memsw writes on update so memsw never drops below memory', async () => {
    const { cgroup } = await manager().create('berth/u', { memory: { limit: 67108864, swap: 134217728 } });
    fake.writes.length = 0;
    await cgroup.update({ memory: { limit: 268435456, swap: 536870912 } });
    expect(fake.writes.map((w) => w.file)).toEqual([
      'memory/berth/u/memory.memsw.limit_in_bytes',
      'memory/berth/u/memory.limit_in_bytes',
    ]);
    fake.writes.length = 0;
    await cgroup.update({ memory: { limit: 33554432, swap: 67108864 } });
    expect(fake.writes.map((w) => w.file)).toEqual([
      'memory/berth/u/memory.limit_in_bytes',
      'memory/berth/u/memory.memsw.limit_in_bytes',
    ]);
    fake.writes.length = 0;
    await cgroup.update({ memory: { limit: 67108864, swap: -1 } });
    expect(fake.writes.map((w) => `${w.file}=${w.data}`)).toEqual([
      'memory/berth/u/memory.memsw.limit_in_bytes=-1',
      'memory/berth/u/memory.limit_in_bytes=67108864',
    ]);
    const warnings = await cgroup.update({ pids: { limit: -1 }, cpu: { quota: 150000, period: 100000, shares: 0 } });
    expect(warnings).toEqual([]);
    expect(await fake.get('pids/berth/u/pids.max')).toBe('max');
    expect(await fake.get('cpu/berth/u/cpu.cfs_quota_us')).toBe('150000');
    // Devices are left alone by an update that does not carry them.
    expect(fake.writesTo('devices.deny')).toEqual([]);
  });

  it('writes disableOOMKiller and rejects an out-of-range swappiness', async () => {
    const { cgroup } = await manager().create('o', { memory: { disableOOMKiller: true } });
    expect(await fake.get('memory/o/memory.oom_control')).toBe('1');
    await expect(cgroup.update({ memory: { swappiness: 101 } })).rejects.toThrow(
      'Invalid value: 101, valid memory swappiness range is 0-100',
    );
  });

  it('adds a process to every cgroup.procs file', async () => {
    const { cgroup } = await manager().create('berth/p', {});
    await cgroup.addProcess(4242);
    for (const file of cgroup.procsFiles()) {
      expect(await fake.readFile(file)).toBe('4242\n');
    }
    expect(await cgroup.pids()).toEqual([4242]);
    await expect(cgroup.addProcess(0)).rejects.toThrow('invalid pid 0');
  });

  it('parses stats from realistic v1 files into Docker stats fields', async () => {
    const { cgroup } = await manager().create('berth/s', {});
    const d = 'berth/s';
    await fake.put(`cpuacct/${d}/cpuacct.usage`, '1523456789\n');
    await fake.put(`cpuacct/${d}/cpuacct.usage_percpu`, '1000000000 523456789 \n');
    await fake.put(`cpuacct/${d}/cpuacct.stat`, 'user 120\nsystem 31\n');
    await fake.put(`cpu/${d}/cpu.stat`, 'nr_periods 42\nnr_throttled 7\nthrottled_time 123456789\nnr_bursts 0\nburst_time 0\n');
    await fake.put(`memory/${d}/memory.usage_in_bytes`, '8372224\n');
    await fake.put(`memory/${d}/memory.max_usage_in_bytes`, '9437184\n');
    await fake.put(`memory/${d}/memory.failcnt`, '3\n');
    await fake.put(`memory/${d}/memory.limit_in_bytes`, UNLIMITED);
    await fake.put(
      `memory/${d}/memory.stat`,
      [
        'cache 4096000',
        'rss 2359296',
        'rss_huge 0',
        'shmem 0',
        'mapped_file 1232896',
        'inactive_anon 0',
        'active_anon 2359296',
        'inactive_file 2785280',
        'active_file 1310720',
        'hierarchical_memory_limit 9223372036854771712',
        'total_cache 4096000',
        'total_rss 2359296',
        'total_inactive_file 2785280',
        '',
      ].join('\n'),
    );
    await fake.put(`pids/${d}/pids.current`, '3\n');
    await fake.put(`pids/${d}/pids.max`, 'max\n');
    await fake.put(
      `blkio/${d}/blkio.throttle.io_service_bytes_recursive`,
      '8:0 Read 1048576\n8:0 Write 4096\n8:0 Sync 1052672\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 1052672\nTotal 1052672\n',
    );
    await fake.put(`blkio/${d}/blkio.throttle.io_serviced_recursive`, '8:0 Read 12\n8:0 Write 1\nTotal 13\n');
    // raw counters from the driver; Docker's shape from the containers layer
    const raw = await cgroup.counters();
    expect(raw.memory.limit).toBe(Number(UNLIMITED));
    expect(raw.pids.limit).toBe(Infinity);
    const s = dockerCgroupStats(raw, 2 ** 31);
    expect(s.cpu_stats).toEqual({
      cpu_usage: {
        total_usage: 1523456789,
        percpu_usage: [1000000000, 523456789],
        usage_in_kernelmode: 310000000,
        usage_in_usermode: 1200000000,
      },
      throttling_data: { periods: 42, throttled_periods: 7, throttled_time: 123456789 },
    });
    expect(s.memory_stats.usage).toBe(8372224);
    expect(s.memory_stats.max_usage).toBe(9437184);
    expect(s.memory_stats.failcnt).toBe(3);
    expect(s.memory_stats.limit).toBe(2 ** 31); // capped at host memory
    expect(s.memory_stats.stats).toMatchObject({ cache: 4096000, rss: 2359296, inactive_file: 2785280, total_inactive_file: 2785280 });
    expect(s.pids_stats).toEqual({ current: 3, limit: 0 });
    expect(s.blkio_stats.io_service_bytes_recursive).toEqual([
      { major: 8, minor: 0, op: 'Read', value: 1048576 },
      { major: 8, minor: 0, op: 'Write', value: 4096 },
      { major: 8, minor: 0, op: 'Sync', value: 1052672 },
      { major: 8, minor: 0, op: 'Async', value: 0 },
      { major: 8, minor: 0, op: 'Discard', value: 0 },
      { major: 8, minor: 0, op: 'Total', value: 1052672 },
    ]);
    expect(s.blkio_stats.io_serviced_recursive).toEqual([
      { major: 8, minor: 0, op: 'Read', value: 12 },
      { major: 8, minor: 0, op: 'Write', value: 1 },
    ]);
    expect(s.blkio_stats.sectors_recursive).toEqual([]);
  });

  it('prefers the CFQ recursive blkio files when they carry data', () => {
    expect(parseBlkioFile('8:16 1234\n8:0 99\nTotal 1333\n')).toEqual([
      { major: 8, minor: 16, op: '', value: 1234 },
      { major: 8, minor: 0, op: '', value: 99 },
    ]);
  });

  it('reads the OOM kill count from memory.oom_control', async () => {
    const { cgroup } = await manager().create('oom', {});
    await fake.put('memory/oom/memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    expect(await cgroup.oomKillCount()).toBe(2);
  });

  it('freezes and thaws through freezer.state', async () => {
    await withFreezerState();
    const { cgroup } = await manager().create('f', {});
    expect(await cgroup.isFrozen()).toBe(false);
    await cgroup.freeze();
    expect(await fake.get('freezer/f/freezer.state')).toBe('FROZEN');
    expect(await cgroup.isFrozen()).toBe(true);
    await cgroup.thaw();
    expect(await cgroup.isFrozen()).toBe(false);
  });

  it('falls back to the unified tree for freezing when no v1 freezer is mounted', async () => {
    const mgr = manager(['cpu', 'memory']);
    const { cgroup } = await mgr.create('nf', {});
    await cgroup.freeze();
    expect(await fake.get('unified/nf/cgroup.freeze')).toBe('1');
    expect(await cgroup.isFrozen()).toBe(true);
    await cgroup.thaw();
    expect(await cgroup.isFrozen()).toBe(false);
  });

  it('kill-all writes cgroup.kill for SIGKILL and freezes, signals, thaws otherwise', async () => {
    await withFreezerState();
    const { cgroup } = await manager().create('k', {});
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, sig) => resolve(sig)));
    try {
      await fake.put('freezer/k/cgroup.procs', `${child.pid}\n`);
      await cgroup.killAll('SIGTERM');
      expect(await exited).toBe('SIGTERM');
      expect(fake.writesTo('freezer/k/freezer.state')).toEqual(['FROZEN', 'THAWED']);
      expect(fake.writesTo('unified/k/cgroup.kill')).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
    await fake.put('freezer/k/cgroup.procs', '');
    await cgroup.killAll('SIGKILL');
    expect(fake.writesTo('unified/k/cgroup.kill')).toEqual(['1']);
  });

  it('destroys every directory bottom-up, sub-cgroups included', async () => {
    const mgr = manager();
    const { cgroup } = await mgr.create('berth/d', {});
    await fake.mkdir(`${fake.root}/memory/berth/d/inner`);
    await cgroup.destroy();
    for (const n of [...names, 'unified']) {
      expect(await fake.exists(`${fake.root}/${n}/berth/d`)).toBe(false);
      expect(await fake.exists(`${fake.root}/${n}/berth`)).toBe(true);
    }
    await mgr.open('berth').destroy();
    for (const n of names) expect(await fake.exists(`${fake.root}/${n}/berth`)).toBe(false);
    // Destroying what is already gone is fine.
    await cgroup.destroy();
  });

  it('checks the shared parents once, and makes them again when they were removed behind its back', async () => {
    const mgr = manager();
    await mgr.create('berth/p1', {});
    const mkdirs: string[] = [];
    const origMkdir = fake.mkdir.bind(fake);
    fake.mkdir = async (dir) => {
      mkdirs.push(fake.rel(dir));
      return origMkdir(dir);
    };
    await mgr.create('berth/p2', {});
    expect(mkdirs.sort()).toEqual([...names, 'unified'].map((n) => `${n}/berth/p2`).sort());
    await mgr.open('berth/p1').destroy();
    await mgr.open('berth/p2').destroy();
    await mgr.open('berth').destroy();
    await mgr.create('berth/p3', {});
    for (const n of [...names, 'unified']) expect(await fake.exists(`${fake.root}/${n}/berth/p3`)).toBe(true);
    expect(await fake.get('cpuset/berth/cpuset.cpus')).not.toBe('');
    expect(await fake.get('cpuset/berth/p3/cpuset.cpus')).toBe(await fake.get('cpuset/berth/cpuset.cpus'));
  });

  it('destroys a cgroup without tasks or children with one rmdir per hierarchy, reading nothing', async () => {
    const { cgroup } = await manager().create('berth/e', {});
    fake.reads.length = 0;
    await cgroup.destroy();
    expect(fake.reads).toEqual([]);
    for (const n of [...names, 'unified']) expect(await fake.exists(`${fake.root}/${n}/berth/e`)).toBe(false);
  });

  it('kills the tasks a cgroup still has before removing it', async () => {
    const { cgroup } = await manager().create('berth/t', {});
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, sig) => resolve(sig)));
    try {
      await fake.put('memory/berth/t/cgroup.procs', `${child.pid}\n`);
      // the fake kernel lists the task until it is gone
      void exited.then(() => fake.put('memory/berth/t/cgroup.procs', ''));
      await cgroup.destroy();
      expect(await exited).toBe('SIGKILL');
      for (const n of [...names, 'unified']) expect(await fake.exists(`${fake.root}/${n}/berth/t`)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('removes what it created when applying limits fails', async () => {
    const mgr = manager();
    const origWrite = fake.writeFile.bind(fake);
    fake.writeFile = async (file, data) => {
      if (file.endsWith('cpu.cfs_quota_us')) throw Object.assign(new Error('EINVAL: invalid argument'), { code: 'EINVAL' });
      return origWrite(file, data);
    };
    await expect(mgr.create('berth/r', { cpu: { quota: 50000, period: 100000 } })).rejects.toThrow(/cpu.cfs_quota_us/);
    for (const n of [...names, 'unified']) expect(await fake.exists(`${fake.root}/${n}/berth`)).toBe(false);
  });

  it('reports what the host supports for validation', async () => {
    const info = await manager().sysInfo();
    expect(info).toMatchObject({
      memoryLimit: true,
      swapLimit: true,
      memoryReservation: true,
      oomKillDisable: true,
      memorySwappiness: true,
      cpuShares: true,
      cpuCfs: true,
      cpuRealtime: true,
      cpuset: true,
      cpus: '0-1',
      mems: '0',
      blkioWeight: false,
      blkioReadBpsDevice: true,
      pidsLimit: true,
      devices: true,
    });
    const bare = await manager(['cpu'], false).sysInfo();
    expect(bare).toMatchObject({ memoryLimit: false, pidsLimit: false, cpuset: false, cpus: '' });
  });

  it('rejects paths that escape the hierarchy', () => {
    expect(() => manager().open('../etc')).toThrow('invalid cgroup path');
    expect(() => manager().open('/')).toThrow('invalid cgroup path');
    expect(manager().open('/berth//x/').path).toBe('berth/x');
  });
});

describe('v1 helpers', () => {
  it('formats device rules the way devices.allow takes them', () => {
    expect(formatV1DeviceRule({ allow: false, access: 'rwm' })).toBe('a');
    expect(formatV1DeviceRule({ allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' })).toBe('c 1:3 rwm');
    expect(formatV1DeviceRule({ allow: true, type: 'b', major: -1, minor: -1, access: 'm' })).toBe('b *:* m');
    expect(formatV1DeviceRule({ allow: true, type: 'c', major: 136 })).toBe('c 136:* rwm');
  });

  it('parses mountinfo: co-mounted controllers, named hierarchies, duplicates and the unified mount', () => {
    const text = [
      '25 24 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755',
      '26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate',
      '27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd',
      '30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct',
      '31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory',
      '99 60 0:28 /docker/x /var/lib/other/memory rw - cgroup cgroup rw,memory',
      '32 25 0:29 / /sys/fs/cgroup/net\\040cls rw - cgroup cgroup rw,net_cls,net_prio',
    ].join('\n');
    const m = parseCgroupMounts(text);
    expect(m.unified).toEqual({ mountPoint: '/sys/fs/cgroup/unified', root: '/' });
    expect(m.v1).toEqual([
      { controllers: ['name=systemd'], mountPoint: '/sys/fs/cgroup/systemd', root: '/' },
      { controllers: ['cpu', 'cpuacct'], mountPoint: '/sys/fs/cgroup/cpu,cpuacct', root: '/' },
      { controllers: ['memory'], mountPoint: '/sys/fs/cgroup/memory', root: '/' },
      { controllers: ['net_cls', 'net_prio'], mountPoint: '/sys/fs/cgroup/net cls', root: '/' },
    ]);
  });

  it('writes into co-mounted hierarchies once, found by either controller name', async () => {
    const fake = await FakeCgroupFs.create();
    try {
      await fake.seed('cpu,cpuacct', { ...HIERARCHIES.cpu, ...HIERARCHIES.cpuacct });
      const mountinfo = `30 25 0:27 / ${fake.root}/cpu,cpuacct rw shared:12 - cgroup cgroup rw,cpu,cpuacct\n`;
      const mgr = createCgroupManager({ root: fake.root, mountinfo, fs: fake });
      const { cgroup, warnings } = await mgr.create('x', { cpu: { shares: 256 } });
      expect(warnings).toEqual([]);
      expect(cgroup.procsFiles()).toEqual([`${fake.root}/cpu,cpuacct/x/cgroup.procs`]);
      expect((cgroup as CgroupV1).dirOf('cpuacct')).toBe(`${fake.root}/cpu,cpuacct/x`);
      expect(await fake.get('cpu,cpuacct/x/cpu.shares')).toBe('256');
    } finally {
      await fake.cleanup();
    }
  });
});
