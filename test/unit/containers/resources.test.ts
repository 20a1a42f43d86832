import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, InvalidParameterError } from '../../../src/errors.js';
import { type CgroupSysInfo, CgroupWarnings } from '../../../src/runtime/cgroups/index.js';
import { adaptResources, hostConfigToLinuxResources, mergeResourcesUpdate, splitDevNumber, verifyResources } from '../../../src/containers/resources.js';
import { buildDeviceConfig, defaultDeviceRules, devicesFromPath, hostDevices, parseDeviceCgroupRule, runtimeAllowedDeviceRules } from '../../../src/containers/devices.js';

/** The CI hosts: cgroup v1, everything but a blkio weight file. */
const HOST: CgroupSysInfo = {
  memoryLimit: true,
  swapLimit: true,
  memoryReservation: true,
  oomKillDisable: true,
  memorySwappiness: true,
  kernelMemory: true,
  kernelMemoryTCP: true,
  cpuShares: true,
  cpuCfs: true,
  cpuRealtime: true,
  cpuset: true,
  cpus: '0-1',
  mems: '0',
  blkioWeight: false,
  blkioWeightDevice: false,
  blkioReadBpsDevice: true,
  blkioWriteBpsDevice: true,
  blkioReadIOpsDevice: true,
  blkioWriteIOpsDevice: true,
  pidsLimit: true,
  devices: true,
  freezer: true,
};

const MiB = 1024 * 1024;
const noStat = async (): Promise<{ major: number; minor: number }> => ({ major: 8, minor: 0 });

describe('HostConfig resources → OCI', () => {
  it('reproduces the linux.resources dockerd generated for the many-options run', async () => {
    const hc = {
      Memory: 64 * MiB,
      MemorySwap: 128 * MiB,
      MemoryReservation: 32 * MiB,
      NanoCpus: 500_000_000,
      CpuShares: 512,
      CpusetCpus: '0',
      PidsLimit: 100,
      BlkioWeight: 300,
    };
    const { resources, warnings } = verifyResources(hc, HOST, { numCpus: 2 });
    expect(warnings).toEqual([CgroupWarnings.blkioWeight]);
    const oci = await hostConfigToLinuxResources(adaptResources(resources), { statDevice: noStat });
    expect(oci).toEqual({
      memory: { limit: 67108864, reservation: 33554432, swap: 134217728, disableOOMKiller: false },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0' },
      pids: { limit: 100 },
      blockIO: { weight: 0 },
    });
  });

  it('gives the default resources of a plain docker run', async () => {
    const oci = await hostConfigToLinuxResources(adaptResources({}), { statDevice: noStat });
    expect(oci).toEqual({ memory: { disableOOMKiller: false }, cpu: { shares: 0 }, blockIO: { weight: 0 } });
  });

  it('applies dockerd create-time defaults', () => {
    expect(adaptResources({ Memory: 64 * MiB })).toMatchObject({ MemorySwap: 128 * MiB, OomKillDisable: false });
    expect(adaptResources({ Memory: 64 * MiB, MemorySwap: -1 }).MemorySwap).toBe(-1);
    expect(adaptResources({ CpuShares: 1 }).CpuShares).toBe(2);
    expect(adaptResources({ CpuShares: 500000 }).CpuShares).toBe(262144);
    expect(adaptResources({ OomKillDisable: true }).OomKillDisable).toBe(true);
  });

  it('converts PidsLimit (≤ 0 means unlimited), CPU period/quota and realtime', async () => {
    expect((await hostConfigToLinuxResources({ PidsLimit: 0 })).pids).toEqual({ limit: -1 });
    expect((await hostConfigToLinuxResources({ PidsLimit: -1 })).pids).toEqual({ limit: -1 });
    expect((await hostConfigToLinuxResources({ PidsLimit: null })).pids).toBeUndefined();
    const cpu = (await hostConfigToLinuxResources({ CpuPeriod: 50000, CpuQuota: 25000, CpuRealtimePeriod: 1000000, CpuRealtimeRuntime: 950000, CpusetMems: '0' })).cpu;
    expect(cpu).toEqual({ shares: 0, period: 50000, quota: 25000, realtimePeriod: 1000000, realtimeRuntime: 950000, mems: '0' });
    expect((await hostConfigToLinuxResources({ NanoCpus: 1_500_000_000 })).cpu).toMatchObject({ period: 100000, quota: 150000 });
    await expect(hostConfigToLinuxResources({ CpuShares: -1 })).rejects.toThrow('shares: invalid argument');
  });

  it('resolves blkio device paths to major:minor', async () => {
    const oci = await hostConfigToLinuxResources(
      {
        BlkioWeightDevice: [{ Path: '/dev/sda', Weight: 200 }],
        BlkioDeviceReadBps: [{ Path: '/dev/sda', Rate: 1048576 }],
        BlkioDeviceWriteIOps: [{ Path: '/dev/sda', Rate: 10 }],
      },
      { statDevice: noStat },
    );
    expect(oci.blockIO).toEqual({
      weight: 0,
      weightDevice: [{ major: 8, minor: 0, weight: 200 }],
      throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }],
      throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 10 }],
    });
    const real = await hostConfigToLinuxResources({ BlkioDeviceReadBps: [{ Path: '/dev/null', Rate: 5 }] });
    expect(real.blockIO?.throttleReadBpsDevice).toEqual([{ major: 1, minor: 3, rate: 5 }]);
    await expect(hostConfigToLinuxResources({ BlkioDeviceReadBps: [{ Path: '/dev/nope-berth', Rate: 5 }] })).rejects.toThrow(
      'stat /dev/nope-berth: no such file or directory',
    );
  });

  it('produces what docker update passes to the runtime', async () => {
    const merged = mergeResourcesUpdate(
      { Memory: 64 * MiB, MemorySwap: 128 * MiB, NanoCpus: 500_000_000, PidsLimit: 100 },
      { Memory: 96 * MiB, MemorySwap: 192 * MiB, NanoCpus: 1_000_000_000, PidsLimit: 0 },
    );
    expect(await hostConfigToLinuxResources(merged, { update: true })).toEqual({
      memory: { limit: 96 * MiB, swap: 192 * MiB },
      cpu: { cpus: '', mems: '', period: 100000, quota: 100000 },
      pids: { limit: -1 },
    });
  });
});

describe('resource validation with dockerd messages', () => {
  const fails = (r: Parameters<typeof verifyResources>[0], message: string, update = false) => {
    let err: unknown;
    try {
      verifyResources(r, HOST, { numCpus: 2, update });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidParameterError);
    expect((err as Error).message).toBe(message);
  };

  it('rejects invalid memory settings', () => {
    fails({ Memory: 4 * MiB }, 'Minimum memory limit allowed is 6MB');
    fails({ Memory: 64 * MiB, MemorySwap: 32 * MiB }, 'Minimum memoryswap limit should be larger than memory limit, see usage');
    fails({ MemorySwap: 32 * MiB }, 'You should always set the Memory limit when using Memoryswap limit, see usage');
    fails({ MemorySwappiness: 101 }, 'Invalid value: 101, valid memory swappiness range is 0-100');
    fails({ MemoryReservation: MiB }, 'Minimum memory reservation allowed is 6MB');
    fails({ Memory: 16 * MiB, MemoryReservation: 32 * MiB }, 'Minimum memory limit can not be less than memory reservation limit, see usage');
    fails({ KernelMemory: MiB }, 'Minimum kernel memory limit allowed is 6MB');
  });

  it('allows a swap limit alone on update and treats swappiness −1 as unset', () => {
    expect(verifyResources({ MemorySwap: 32 * MiB }, HOST, { update: true }).warnings).toEqual([]);
    expect(verifyResources({ MemorySwappiness: -1 }, HOST).resources.MemorySwappiness).toBeNull();
  });

  it('rejects invalid CPU settings', () => {
    fails({ NanoCpus: 3e9 }, 'Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available');
    fails({ NanoCpus: -1 }, 'Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available');
    fails({ NanoCpus: 1e9, CpuPeriod: 100000 }, 'Conflicting options: Nano CPUs and CPU Period cannot both be set');
    fails({ NanoCpus: 1e9, CpuQuota: 100000 }, 'Conflicting options: Nano CPUs and CPU Quota cannot both be set');
    fails({ CpuPeriod: 999 }, 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
    fails({ CpuPeriod: 1000001 }, 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
    fails({ CpuQuota: 999 }, 'CPU cfs quota can not be less than 1ms (i.e. 1000)');
    fails({ CpuRealtimePeriod: 1000, CpuRealtimeRuntime: 2000 }, 'cpu real-time runtime cannot be higher than cpu real-time period');
    fails({ CpusetCpus: '0-3' }, 'Requested CPUs are not available - requested 0-3, available: 0-1');
    fails({ CpusetCpus: 'abc' }, 'Invalid value abc for cpuset cpus: invalid format: abc');
    fails({ CpusetMems: '1' }, 'Requested memory nodes are not available - requested 1, available: 0');
    expect(() => verifyResources({ NanoCpus: 1e9 }, { ...HOST, cpuCfs: false }, { numCpus: 2 })).toThrow(
      'NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted',
    );
  });

  it('rejects invalid block IO settings', () => {
    const withWeight = { ...HOST, blkioWeight: true };
    expect(() => verifyResources({ BlkioWeight: 5 }, withWeight)).toThrow('Range of blkio weight is from 10 to 1000');
    fails({ IOMaximumIOps: 5 }, 'Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps');
  });

  it('drops what the host cannot do, with dockerd warnings', () => {
    const none: CgroupSysInfo = Object.fromEntries(
      Object.entries(HOST).map(([k, v]) => [k, typeof v === 'boolean' ? false : v]),
    ) as unknown as CgroupSysInfo;
    const { resources, warnings } = verifyResources(
      {
        Memory: 64 * MiB,
        MemorySwap: 128 * MiB,
        MemorySwappiness: 10,
        MemoryReservation: 32 * MiB,
        OomKillDisable: true,
        PidsLimit: 10,
        CpuShares: 512,
        CpuPeriod: 100000,
        CpuQuota: 50000,
        CpusetCpus: '0',
        BlkioWeight: 300,
        BlkioWeightDevice: [{ Path: '/dev/sda', Weight: 10 }],
        BlkioDeviceReadBps: [{ Path: '/dev/sda', Rate: 1 }],
        CpuPercent: 50,
      },
      none,
      { numCpus: 2 },
    );
    expect(warnings).toEqual([
      CgroupWarnings.memoryLimit,
      CgroupWarnings.memorySwappiness,
      CgroupWarnings.memoryReservation,
      CgroupWarnings.oomKillDisable,
      CgroupWarnings.pidsLimit,
      CgroupWarnings.cpuShares,
      CgroupWarnings.cpuCfs,
      CgroupWarnings.cpuPercent,
      CgroupWarnings.cpuset,
      CgroupWarnings.blkioWeight,
      CgroupWarnings.blkioWeightDevice,
      CgroupWarnings.blkioReadBpsDevice,
    ]);
    expect(resources).toMatchObject({
      Memory: 0,
      MemorySwap: -1,
      MemorySwappiness: null,
      MemoryReservation: 0,
      OomKillDisable: null,
      PidsLimit: null,
      CpuShares: 0,
      CpuPeriod: 0,
      CpuQuota: 0,
      CpusetCpus: '',
      BlkioWeight: 0,
      BlkioWeightDevice: [],
    });
  });

  it('warns when swap accounting is missing and when the OOM killer is off without a limit', () => {
    const { resources, warnings } = verifyResources({ Memory: 64 * MiB }, { ...HOST, swapLimit: false });
    expect(warnings).toEqual([CgroupWarnings.swapLimit]);
    expect(resources.MemorySwap).toBe(-1);
    expect(verifyResources({ OomKillDisable: true }, HOST).warnings).toEqual([CgroupWarnings.oomKillDisableNoLimit]);
  });
});

describe('docker update merge', () => {
  const conflict = (cur: object, upd: object, message: string) => {
    let err: unknown;
    try {
      mergeResourcesUpdate(cur, upd);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe(message);
  };

  it('refuses a memory limit above the current memory+swap without a new swap value', () => {
    conflict({ Memory: 64 * MiB, MemorySwap: 128 * MiB }, { Memory: 256 * MiB },
      'Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
    conflict({}, { Memory: 256 * MiB },
      'Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
    expect(mergeResourcesUpdate({ Memory: 64 * MiB, MemorySwap: 128 * MiB }, { Memory: 96 * MiB }).Memory).toBe(96 * MiB);
  });

  it('refuses mixing NanoCpus with CPU period/quota across updates', () => {
    conflict({ CpuPeriod: 100000 }, { NanoCpus: 1e9 }, 'Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set');
    conflict({ CpuQuota: 100000 }, { NanoCpus: 1e9 }, 'Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set');
    conflict({ NanoCpus: 1e9 }, { CpuPeriod: 100000 }, 'Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set');
    conflict({ NanoCpus: 1e9 }, { CpuQuota: 100000 }, 'Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
  });

  it('keeps current values for fields the update leaves at zero', () => {
    const merged = mergeResourcesUpdate(
      { CpuShares: 512, CpusetCpus: '0', BlkioWeight: 300, PidsLimit: 20, MemoryReservation: 32 * MiB },
      { CpuShares: 0, CpusetCpus: '', PidsLimit: null, MemoryReservation: 16 * MiB, CpuRealtimeRuntime: 5 },
    );
    expect(merged).toEqual({ CpuShares: 512, CpusetCpus: '0', BlkioWeight: 300, PidsLimit: 20, MemoryReservation: 16 * MiB, CpuRealtimeRuntime: 5 });
  });
});

describe('device rules', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'berth-dev-'));
    await writeFile(path.join(dir, 'plain'), 'x');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("parses --device-cgroup-rule like dockerd", () => {
    expect(parseDeviceCgroupRule('c 42:* rmw')).toEqual({ allow: true, type: 'c', major: 42, minor: -1, access: 'rmw' });
    expect(parseDeviceCgroupRule('a *:* m')).toEqual({ allow: true, type: 'a', major: -1, minor: -1, access: 'm' });
    expect(() => parseDeviceCgroupRule('x 1:2 rwm')).toThrow("invalid device cgroup rule format: 'x 1:2 rwm'");
    expect(() => parseDeviceCgroupRule('c 1:2 rwmx')).toThrow("invalid device cgroup rule format: 'c 1:2 rwmx'");
    expect(() => parseDeviceCgroupRule('c 99999999999999999999:2 r')).toThrow(
      "invalid major value in device cgroup rule format: 'c 99999999999999999999:2 r'",
    );
    expect(() => parseDeviceCgroupRule('c 1:99999999999999999999 r')).toThrow(InvalidParameterError);
  });

  it('builds the rules of the many-options run (the executor appends the runtime defaults)', async () => {
    const cfg = await buildDeviceConfig({
      Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/mynull', CgroupPermissions: 'rw' }],
      DeviceCgroupRules: ['c 42:* rmw'],
    });
    expect(cfg.devices).toEqual([{ path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 }]);
    expect(cfg.rules).toEqual([
      ...defaultDeviceRules(),
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
      { allow: true, type: 'c', major: 42, minor: -1, access: 'rmw' },
    ]);
    expect(runtimeAllowedDeviceRules()[0]).toEqual({ allow: true, type: 'c', major: -1, minor: -1, access: 'm' });
    expect(defaultDeviceRules()[0]).toEqual({ allow: false, access: 'rwm' });
    expect(defaultDeviceRules().at(-1)).toEqual({ allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' });
  });

  it('expands a directory of devices and reports dockerd errors for non-devices', async () => {
    if (existsSync('/dev/net/tun')) {
      const net = await devicesFromPath('/dev/net', '/dev/net', 'rwm');
      expect(net.devices).toContainEqual(expect.objectContaining({ path: '/dev/net/tun', type: 'c', major: 10, minor: 200 }));
    }
    await expect(devicesFromPath('/dev/nope-berth', '/dev/x', 'rwm')).rejects.toThrow(
      'error gathering device information while adding custom device "/dev/nope-berth": no such file or directory',
    );
    const plain = path.join(dir, 'plain');
    await expect(devicesFromPath(plain, '/dev/x', 'rwm')).rejects.toThrow(
      `error gathering device information while adding custom device "${plain}": not a device node`,
    );
    await expect(devicesFromPath('/dev/null', '/dev/x', 'rwx')).rejects.toThrow('invalid device mode: rwx');
  });

  it('gives privileged containers every host device and a single allow-all rule', async () => {
    const cfg = await buildDeviceConfig({ Privileged: true, Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/null', CgroupPermissions: 'r' }] });
    expect(cfg.rules).toEqual([{ allow: true, access: 'rwm' }]);
    expect(cfg.devices).toContainEqual(expect.objectContaining({ path: '/dev/null', major: 1, minor: 3 }));
    expect(cfg.devices.some((d) => d.path.startsWith('/dev/pts/'))).toBe(false);
    expect(cfg.notes).toEqual([
      'custom r permissions for device /dev/null are ignored in privileged mode',
      'path in container /dev/null already exists in privileged mode',
    ]);
    expect((await hostDevices()).length).toBe(cfg.devices.length);
  });

  it('splits device numbers like glibc', () => {
    expect(splitDevNumber(0x0103n)).toEqual({ major: 1, minor: 3 });
    expect(splitDevNumber((259n << 8n) | 5n)).toEqual({ major: 259, minor: 5 });
    // major 4096+ and minor 256+ use the high bits
    expect(splitDevNumber((1n << 44n) | (1n << 20n) | 0x0a0bn)).toEqual({ major: 4096 + 10, minor: 256 + 11 });
  });
});
