// Docker HostConfig resources → OCI linux.resources (container policy: src/runtime sees only the OCI result), with
// dockerd's defaults, validation and messages (moby daemon/daemon_unix.go: adaptContainerSettings,
// verifyPlatformContainerResources, getMemoryResources, getCPUResources, getPidsLimit, getBlkio*;
// daemon/update_linux.go toContainerdResources; container UpdateContainer). Devices: devices.ts.

import { promises as fsp } from 'node:fs';
import os from 'node:os';
import { ConflictError, InvalidParameterError } from '../errors.js';
import { errnoCode, parseCpuList } from '../runtime/cgroups/cgroup.js';
import {
  type CgroupSysInfo,
  CgroupWarnings,
  type LinuxResources,
  type LinuxThrottleDevice,
  type LinuxWeightDevice,
} from '../runtime/cgroups/resources.js';

export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer: string;
  CgroupPermissions?: string;
}

export interface WeightDevice {
  Path: string;
  Weight: number;
}

export interface ThrottleDevice {
  Path: string;
  Rate: number;
}

/** The resource fields of Docker's HostConfig (API names). */
export interface HostConfigResources {
  Memory?: number;
  MemorySwap?: number;
  MemoryReservation?: number;
  MemorySwappiness?: number | null;
  KernelMemory?: number;
  KernelMemoryTCP?: number;
  OomKillDisable?: boolean | null;
  PidsLimit?: number | null;
  NanoCpus?: number;
  CpuShares?: number;
  CpuPeriod?: number;
  CpuQuota?: number;
  CpuRealtimePeriod?: number;
  CpuRealtimeRuntime?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  CpuPercent?: number;
  CpuCount?: number;
  BlkioWeight?: number;
  BlkioWeightDevice?: WeightDevice[] | null;
  BlkioDeviceReadBps?: ThrottleDevice[] | null;
  BlkioDeviceWriteBps?: ThrottleDevice[] | null;
  BlkioDeviceReadIOps?: ThrottleDevice[] | null;
  BlkioDeviceWriteIOps?: ThrottleDevice[] | null;
  IOMaximumIOps?: number;
  IOMaximumBandwidth?: number;
  Devices?: DeviceMapping[] | null;
  DeviceCgroupRules?: string[] | null;
}

/** Not a kernel limit: dockerd's floor so a container can start at all. */
export const LINUX_MIN_MEMORY = 6 * 1024 * 1024;
export const LINUX_MIN_CPU_SHARES = 2;
export const LINUX_MAX_CPU_SHARES = 262144;
/** CFS period dockerd uses for NanoCpus (100 ms in µs). */
export const NANO_CPUS_PERIOD = 100_000;

const bad = (message: string): InvalidParameterError => new InvalidParameterError(message);

// ---------------------------------------------------------------------------------------------------------------
// Create-time defaults

/**
 * dockerd's adaptContainerSettings (resource part), applied at create *after* verifyResources: CpuShares clamped
 * to [2, 262144], MemorySwap defaults to 2×Memory, OomKillDisable defaults to false. Returns a new object.
 */
export function adaptResources(r: HostConfigResources): HostConfigResources {
  const out: HostConfigResources = { ...r };
  const shares = out.CpuShares ?? 0;
  if (shares > 0) {
    if (shares < LINUX_MIN_CPU_SHARES) out.CpuShares = LINUX_MIN_CPU_SHARES;
    else if (shares > LINUX_MAX_CPU_SHARES) out.CpuShares = LINUX_MAX_CPU_SHARES;
  }
  if ((out.Memory ?? 0) > 0 && (out.MemorySwap ?? 0) === 0) out.MemorySwap = (out.Memory ?? 0) * 2;
  if (out.OomKillDisable === undefined || out.OomKillDisable === null) out.OomKillDisable = false;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

export interface VerifyOptions {
  /** `docker update` (a swap limit without a memory limit is then allowed). */
  update?: boolean;
  /** CPUs usable by containers (default os.availableParallelism(), like Go's runtime.NumCPU). */
  numCpus?: number;
}

/**
 * dockerd's verifyPlatformContainerResources: throws InvalidParameterError with dockerd's message for invalid
 * values; settings the host cannot apply are dropped from the returned copy with dockerd's warning.
 */
export function verifyResources(
  input: HostConfigResources,
  sys: CgroupSysInfo,
  opts: VerifyOptions = {},
): { resources: HostConfigResources; warnings: string[] } {
  const r: HostConfigResources = { ...input };
  const warnings: string[] = [];
  const update = opts.update ?? false;
  const numCpus = opts.numCpus ?? os.availableParallelism();
  if (r.MemorySwappiness === -1) r.MemorySwappiness = null;

  const mem = (): number => r.Memory ?? 0;
  const swap = (): number => r.MemorySwap ?? 0;
  if (mem() !== 0 && mem() < LINUX_MIN_MEMORY) throw bad('Minimum memory limit allowed is 6MB');
  if (mem() > 0 && !sys.memoryLimit) {
    warnings.push(CgroupWarnings.memoryLimit);
    r.Memory = 0;
    r.MemorySwap = -1;
  }
  if (mem() > 0 && swap() !== -1 && !sys.swapLimit) {
    warnings.push(CgroupWarnings.swapLimit);
    r.MemorySwap = -1;
  }
  if (mem() > 0 && swap() > 0 && swap() < mem()) {
    throw bad('Minimum memoryswap limit should be larger than memory limit, see usage');
  }
  if (mem() === 0 && swap() > 0 && !update) {
    throw bad('You should always set the Memory limit when using Memoryswap limit, see usage');
  }
  if (r.MemorySwappiness !== undefined && r.MemorySwappiness !== null && !sys.memorySwappiness) {
    warnings.push(CgroupWarnings.memorySwappiness);
    r.MemorySwappiness = null;
  }
  if (r.MemorySwappiness !== undefined && r.MemorySwappiness !== null) {
    if (r.MemorySwappiness < 0 || r.MemorySwappiness > 100) {
      throw bad(`Invalid value: ${r.MemorySwappiness}, valid memory swappiness range is 0-100`);
    }
  }
  if ((r.MemoryReservation ?? 0) > 0 && !sys.memoryReservation) {
    warnings.push(CgroupWarnings.memoryReservation);
    r.MemoryReservation = 0;
  }
  const reservation = r.MemoryReservation ?? 0;
  if (reservation > 0 && reservation < LINUX_MIN_MEMORY) throw bad('Minimum memory reservation allowed is 6MB');
  if (mem() > 0 && reservation > 0 && mem() < reservation) {
    throw bad('Minimum memory limit can not be less than memory reservation limit, see usage');
  }
  if ((r.KernelMemory ?? 0) > 0) {
    if (!sys.kernelMemory) {
      warnings.push(CgroupWarnings.kernelMemory);
      r.KernelMemory = 0;
    }
    if ((r.KernelMemory ?? 0) > 0 && (r.KernelMemory ?? 0) < LINUX_MIN_MEMORY) {
      throw bad('Minimum kernel memory limit allowed is 6MB');
    }
  }
  if ((r.KernelMemoryTCP ?? 0) !== 0 && !sys.kernelMemoryTCP) {
    warnings.push(CgroupWarnings.kernelMemoryTCP);
    r.KernelMemoryTCP = 0;
  }
  if (r.OomKillDisable !== undefined && r.OomKillDisable !== null && !sys.oomKillDisable) {
    if (r.OomKillDisable) warnings.push(CgroupWarnings.oomKillDisable);
    r.OomKillDisable = null;
  }
  if (r.OomKillDisable === true && mem() === 0) warnings.push(CgroupWarnings.oomKillDisableNoLimit);
  if (r.PidsLimit !== undefined && r.PidsLimit !== null && !sys.pidsLimit) {
    if (r.PidsLimit > 0) warnings.push(CgroupWarnings.pidsLimit);
    r.PidsLimit = null;
  }

  const nano = r.NanoCpus ?? 0;
  if (nano > 0 && (r.CpuPeriod ?? 0) > 0) throw bad('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nano > 0 && (r.CpuQuota ?? 0) > 0) throw bad('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (nano > 0 && !sys.cpuCfs) {
    throw bad('NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted');
  }
  if (nano < 0 || nano > numCpus * 1e9) {
    throw bad(`Range of CPUs is from 0.01 to ${numCpus}.00, as there are only ${numCpus} CPUs available`);
  }
  if ((r.CpuShares ?? 0) > 0 && !sys.cpuShares) {
    warnings.push(CgroupWarnings.cpuShares);
    r.CpuShares = 0;
  }
  if (((r.CpuPeriod ?? 0) !== 0 || (r.CpuQuota ?? 0) !== 0) && !sys.cpuCfs) {
    warnings.push(CgroupWarnings.cpuCfs);
    r.CpuPeriod = 0;
    r.CpuQuota = 0;
  }
  const period = r.CpuPeriod ?? 0;
  if (period !== 0 && (period < 1000 || period > 1_000_000)) {
    throw bad('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  }
  const quota = r.CpuQuota ?? 0;
  if (quota > 0 && quota < 1000) throw bad('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if ((r.CpuPercent ?? 0) > 0) {
    warnings.push(CgroupWarnings.cpuPercent);
    r.CpuPercent = 0;
  }
  // Windows-only, like CpuPercent: said, not silently dropped.
  if ((r.CpuCount ?? 0) > 0) {
    warnings.push(CgroupWarnings.cpuCount);
    r.CpuCount = 0;
  }
  if ((r.CpuRealtimePeriod ?? 0) > 0 && !sys.cpuRealtime) {
    warnings.push(CgroupWarnings.cpuRealtimePeriod);
    r.CpuRealtimePeriod = 0;
  }
  if ((r.CpuRealtimeRuntime ?? 0) > 0 && !sys.cpuRealtime) {
    warnings.push(CgroupWarnings.cpuRealtimeRuntime);
    r.CpuRealtimeRuntime = 0;
  }
  if ((r.CpuRealtimePeriod ?? 0) !== 0 && (r.CpuRealtimeRuntime ?? 0) !== 0 && (r.CpuRealtimeRuntime ?? 0) > (r.CpuRealtimePeriod ?? 0)) {
    throw bad('cpu real-time runtime cannot be higher than cpu real-time period');
  }

  if (((r.CpusetCpus ?? '') !== '' || (r.CpusetMems ?? '') !== '') && !sys.cpuset) {
    warnings.push(CgroupWarnings.cpuset);
    r.CpusetCpus = '';
    r.CpusetMems = '';
  }
  checkCpusetSubset(r.CpusetCpus ?? '', sys.cpus, 'cpus', 'CPUs');
  checkCpusetSubset(r.CpusetMems ?? '', sys.mems, 'mems', 'memory nodes');

  if ((r.BlkioWeight ?? 0) > 0 && !sys.blkioWeight) {
    warnings.push(CgroupWarnings.blkioWeight);
    r.BlkioWeight = 0;
  }
  const weight = r.BlkioWeight ?? 0;
  if (weight > 0 && (weight < 10 || weight > 1000)) throw bad('Range of blkio weight is from 10 to 1000');
  if ((r.IOMaximumBandwidth ?? 0) !== 0 || (r.IOMaximumIOps ?? 0) !== 0) {
    throw bad('Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps');
  }
  const lists: [keyof HostConfigResources, boolean, string][] = [
    ['BlkioWeightDevice', sys.blkioWeightDevice, CgroupWarnings.blkioWeightDevice],
    ['BlkioDeviceReadBps', sys.blkioReadBpsDevice, CgroupWarnings.blkioReadBpsDevice],
    ['BlkioDeviceWriteBps', sys.blkioWriteBpsDevice, CgroupWarnings.blkioWriteBpsDevice],
    ['BlkioDeviceReadIOps', sys.blkioReadIOpsDevice, CgroupWarnings.blkioReadIOpsDevice],
    ['BlkioDeviceWriteIOps', sys.blkioWriteIOpsDevice, CgroupWarnings.blkioWriteIOpsDevice],
  ];
  for (const [key, supported, warning] of lists) {
    const list = r[key];
    if (Array.isArray(list) && list.length > 0 && !supported) {
      warnings.push(warning);
      (r as Record<string, unknown>)[key] = [];
    }
  }
  return { resources: r, warnings };
}

function checkCpusetSubset(requested: string, available: string, key: string, what: string): void {
  if (requested === '') return;
  let want: Set<number>;
  try {
    want = parseCpuList(requested);
  } catch (err) {
    throw bad(`Invalid value ${requested} for cpuset ${key}: ${(err as Error).message}`);
  }
  let have: Set<number>;
  try {
    have = parseCpuList(available);
  } catch {
    return;
  }
  for (const n of want) {
    if (!have.has(n)) throw bad(`Requested ${what} are not available - requested ${requested}, available: ${available}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// docker update

/**
 * dockerd's UpdateContainer merge: the update's non-zero fields over the current ones, refusing conflicting
 * changes with dockerd's messages (ConflictError, 409). The caller prefixes "Cannot update container <id>: ".
 */
export function mergeResourcesUpdate(current: HostConfigResources, upd: HostConfigResources): HostConfigResources {
  const c: HostConfigResources = { ...current };
  const n = (v: number | undefined): number => v ?? 0;
  if (n(upd.NanoCpus) > 0 && n(c.CpuPeriod) > 0) {
    throw new ConflictError('Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set');
  }
  if (n(upd.NanoCpus) > 0 && n(c.CpuQuota) > 0) {
    throw new ConflictError('Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set');
  }
  if (n(upd.CpuPeriod) > 0 && n(c.NanoCpus) > 0) {
    throw new ConflictError('Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set');
  }
  if (n(upd.CpuQuota) > 0 && n(c.NanoCpus) > 0) {
    throw new ConflictError('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
  }
  if (n(upd.BlkioWeight) !== 0) c.BlkioWeight = upd.BlkioWeight ?? 0;
  if (n(upd.CpuShares) !== 0) c.CpuShares = upd.CpuShares ?? 0;
  if (n(upd.NanoCpus) !== 0) c.NanoCpus = upd.NanoCpus ?? 0;
  if (n(upd.CpuPeriod) !== 0) c.CpuPeriod = upd.CpuPeriod ?? 0;
  if (n(upd.CpuQuota) !== 0) c.CpuQuota = upd.CpuQuota ?? 0;
  if ((upd.CpusetCpus ?? '') !== '') c.CpusetCpus = upd.CpusetCpus ?? '';
  if ((upd.CpusetMems ?? '') !== '') c.CpusetMems = upd.CpusetMems ?? '';
  if (n(upd.Memory) !== 0) {
    // A memory limit above the current memory+swap limit needs the swap limit in the same update.
    if (n(upd.Memory) > n(c.MemorySwap) && n(upd.MemorySwap) === 0) {
      throw new ConflictError(
        'Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time',
      );
    }
    c.Memory = upd.Memory ?? 0;
  }
  if (n(upd.MemorySwap) !== 0) c.MemorySwap = upd.MemorySwap ?? 0;
  if (n(upd.MemoryReservation) !== 0) c.MemoryReservation = upd.MemoryReservation ?? 0;
  if (n(upd.KernelMemory) !== 0) c.KernelMemory = upd.KernelMemory ?? 0;
  if (n(upd.CpuRealtimePeriod) !== 0) c.CpuRealtimePeriod = upd.CpuRealtimePeriod ?? 0;
  if (n(upd.CpuRealtimeRuntime) !== 0) c.CpuRealtimeRuntime = upd.CpuRealtimeRuntime ?? 0;
  if (upd.PidsLimit !== undefined && upd.PidsLimit !== null) c.PidsLimit = upd.PidsLimit;
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// HostConfig → OCI linux.resources

/** major/minor of a block device path (for blkio weight/throttle devices). */
export type StatDevice = (path: string) => Promise<{ major: number; minor: number }>;

/** glibc's gnu_dev_major / gnu_dev_minor. */
export function splitDevNumber(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev & 0xfff00n) >> 8n) | ((rdev & 0xfffff00000000000n) >> 32n);
  const minor = (rdev & 0xffn) | ((rdev & 0xffffff00000n) >> 12n);
  return { major: Number(major), minor: Number(minor) };
}

export const statDeviceNumbers: StatDevice = async (p) => {
  try {
    const st = await fsp.stat(p, { bigint: true });
    return splitDevNumber(st.rdev);
  } catch (err) {
    throw bad(`stat ${p}: ${syscallErrorText(err)}`);
  }
};

/** Go-style lower-case errno text ("no such file or directory"), as dockerd's messages carry. */
export function syscallErrorText(err: unknown): string {
  const texts: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    ENOTDIR: 'not a directory',
    EPERM: 'operation not permitted',
    ELOOP: 'too many levels of symbolic links',
  };
  const code = errnoCode(err);
  return (code !== undefined ? texts[code] : undefined) ?? (err instanceof Error ? err.message : String(err));
}

export interface ToLinuxResourcesOptions {
  /**
   * `docker update`: only what dockerd's toContainerdResources passes (memory limit/swap/reservation, CPU shares,
   * quota/period, cpuset, blkio weight, pids) — feed it the merged resources from mergeResourcesUpdate.
   */
  update?: boolean;
  statDevice?: StatDevice;
}

/** Memory, CPU, pids and block-IO parts of linux.resources (devices come from buildDeviceConfig). */
export async function hostConfigToLinuxResources(
  r: HostConfigResources,
  opts: ToLinuxResourcesOptions = {},
): Promise<LinuxResources> {
  const shares = r.CpuShares ?? 0;
  if (shares < 0) throw bad('shares: invalid argument');
  const out: LinuxResources = {};
  const nano = r.NanoCpus ?? 0;

  if (opts.update === true) {
    out.memory = {};
    if ((r.Memory ?? 0) !== 0) out.memory.limit = r.Memory;
    if ((r.MemorySwap ?? 0) !== 0) out.memory.swap = r.MemorySwap;
    if ((r.MemoryReservation ?? 0) !== 0) out.memory.reservation = r.MemoryReservation;
    let period = 0;
    let quota = 0;
    if (nano !== 0) {
      period = NANO_CPUS_PERIOD;
      quota = Math.trunc((nano * NANO_CPUS_PERIOD) / 1e9);
    }
    if (quota === 0 && (r.CpuQuota ?? 0) !== 0) quota = r.CpuQuota ?? 0;
    if (period === 0 && (r.CpuPeriod ?? 0) !== 0) period = r.CpuPeriod ?? 0;
    out.cpu = { cpus: r.CpusetCpus ?? '', mems: r.CpusetMems ?? '', period, quota };
    if (shares !== 0) out.cpu.shares = shares;
    if ((r.BlkioWeight ?? 0) !== 0) out.blockIO = { weight: r.BlkioWeight };
    const pids = pidsLimit(r.PidsLimit);
    if (pids !== undefined) out.pids = pids;
    return out;
  }

  const memory: NonNullable<LinuxResources['memory']> = {};
  if ((r.Memory ?? 0) > 0) memory.limit = r.Memory;
  if ((r.MemoryReservation ?? 0) > 0) memory.reservation = r.MemoryReservation;
  if ((r.MemorySwap ?? 0) > 0) memory.swap = r.MemorySwap;
  if (r.MemorySwappiness !== undefined && r.MemorySwappiness !== null && r.MemorySwappiness !== -1) {
    memory.swappiness = r.MemorySwappiness;
  }
  memory.disableOOMKiller = r.OomKillDisable ?? false;
  if ((r.KernelMemory ?? 0) !== 0) memory.kernel = r.KernelMemory;
  if ((r.KernelMemoryTCP ?? 0) !== 0) memory.kernelTCP = r.KernelMemoryTCP;
  out.memory = memory;

  const cpu: NonNullable<LinuxResources['cpu']> = { shares };
  if ((r.CpusetCpus ?? '') !== '') cpu.cpus = r.CpusetCpus;
  if ((r.CpusetMems ?? '') !== '') cpu.mems = r.CpusetMems;
  if (nano > 0) {
    cpu.period = NANO_CPUS_PERIOD;
    cpu.quota = Math.trunc((nano * NANO_CPUS_PERIOD) / 1e9);
  }
  if ((r.CpuPeriod ?? 0) !== 0) cpu.period = r.CpuPeriod;
  if ((r.CpuQuota ?? 0) !== 0) cpu.quota = r.CpuQuota;
  if ((r.CpuRealtimePeriod ?? 0) !== 0) cpu.realtimePeriod = r.CpuRealtimePeriod;
  if ((r.CpuRealtimeRuntime ?? 0) !== 0) cpu.realtimeRuntime = r.CpuRealtimeRuntime;
  out.cpu = cpu;

  const pids = pidsLimit(r.PidsLimit);
  if (pids !== undefined) out.pids = pids;

  const stat = opts.statDevice ?? statDeviceNumbers;
  const blockIO: NonNullable<LinuxResources['blockIO']> = { weight: r.BlkioWeight ?? 0 };
  const weightDevice: LinuxWeightDevice[] = [];
  for (const d of r.BlkioWeightDevice ?? []) weightDevice.push({ ...(await stat(d.Path)), weight: d.Weight });
  if (weightDevice.length > 0) blockIO.weightDevice = weightDevice;
  const throttle = async (list: ThrottleDevice[] | null | undefined): Promise<LinuxThrottleDevice[] | undefined> => {
    if (list === undefined || list === null || list.length === 0) return undefined;
    const devs: LinuxThrottleDevice[] = [];
    for (const d of list) devs.push({ ...(await stat(d.Path)), rate: d.Rate });
    return devs;
  };
  const rb = await throttle(r.BlkioDeviceReadBps);
  if (rb !== undefined) blockIO.throttleReadBpsDevice = rb;
  const wb = await throttle(r.BlkioDeviceWriteBps);
  if (wb !== undefined) blockIO.throttleWriteBpsDevice = wb;
  const ri = await throttle(r.BlkioDeviceReadIOps);
  if (ri !== undefined) blockIO.throttleReadIOPSDevice = ri;
  const wi = await throttle(r.BlkioDeviceWriteIOps);
  if (wi !== undefined) blockIO.throttleWriteIOPSDevice = wi;
  out.blockIO = blockIO;
  return out;
}

/** PidsLimit: unset → no entry; ≤ 0 → −1 (unlimited; runc needs −1 to lift an earlier limit); else the limit. */
function pidsLimit(v: number | null | undefined): { limit: number } | undefined {
  if (v === undefined || v === null) return undefined;
  return { limit: v <= 0 ? -1 : v };
}
