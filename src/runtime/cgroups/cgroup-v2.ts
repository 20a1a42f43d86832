// cgroup v2 backend: one directory in the unified hierarchy; controllers enabled top-down through each
// parent's cgroup.subtree_control. Device rules become an eBPF BPF_PROG_TYPE_CGROUP_DEVICE program
// (device-filter.ts) attached to the directory by the native addon.

import path from 'node:path';
import { BerthError, InvalidParameterError } from '../../errors.js';
import { nativeAddon } from '../../native.js';
import type { Logger } from '../../util/logger.js';
import {
  BaseCgroup,
  type Cgroup,
  type CgroupFs,
  type CgroupManager,
  definedUint,
  errnoCode,
  normaliseCgroupPath,
  parseIoStat,
  parseKeyValues,
  parseUintValue,
  pathPrefixes,
  pollUntil,
  readOptional,
  writeSetting,
  removeCgroupTree,
  writeCgroupFile,
} from './cgroup.js';
import { compileDeviceFilter, deviceRulesOnlyAllowAll } from './device-filter.js';
import {
  type CgroupCounters,
  type CgroupSysInfo,
  CgroupWarnings,
  type LinuxDeviceCgroup,
  type LinuxResources,
  type LinuxThrottleDevice,
} from './resources.js';
import { onceUntilFailure } from '../../util/once-until-failure.js';

/** Attaches eBPF device-program bytes to a cgroup v2 directory, replacing Berth's earlier one; returns how many. */
export type DeviceFilterAttacher = (cgroupDir: string, insns: Buffer) => number;

/** errno codes meaning the kernel cannot run cgroup device programs at all (no bpf(2), no CGROUP_BPF). */
const NO_DEVICE_BPF = new Set(['ENOSYS', 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

/** Controllers Berth enables for its cgroups when the host offers them. */
const WANTED_CONTROLLERS = ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids'];

export interface CgroupV2Options {
  mountPoint: string;
  fs: CgroupFs;
  log?: Logger | undefined;
  /** Default: the native addon's attachDeviceFilter (tests inject a fake). */
  attachDeviceFilter?: DeviceFilterAttacher | undefined;
}

/** runc (≤ 1.3) mapping of cpu.shares [2, 262144] onto cpu.weight [1, 10000]. */
export function sharesToCpuWeight(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** blkio weight [10, 1000] onto io.weight [1, 10000]. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/**
 * v1-style memory+swap (`swap`) to v2's swap-only memory.swap.max value: −1 = max, 0 = leave unset.
 * Unlimited memory with swap unspecified means unlimited swap too.
 */
export function memorySwapToV2(swap: number, memory: number): number {
  if (memory === -1 && swap === 0) return -1;
  if (swap === -1 || swap === 0) return swap;
  if (memory === 0 || memory === -1) throw new InvalidParameterError('unable to set swap limit without memory limit');
  if (memory < 0) throw new InvalidParameterError(`invalid memory value: ${memory}`);
  if (swap < memory) throw new InvalidParameterError('memory+swap limit should be >= memory limit');
  return swap - memory;
}

function maxOr(n: number): string {
  return n < 0 ? 'max' : String(n);
}

export class CgroupV2Manager implements CgroupManager {
  readonly version = '2' as const;

  constructor(private readonly opts: CgroupV2Options) {}

  open(p: string): CgroupV2 {
    return new CgroupV2(normaliseCgroupPath(p), this.opts);
  }

  async create(p: string, resources: LinuxResources): Promise<{ cgroup: Cgroup; warnings: string[] }> {
    const rel = normaliseCgroupPath(p);
    const { fs, mountPoint } = this.opts;
    const created: string[] = [];
    try {
      let parent = mountPoint;
      for (const prefix of pathPrefixes(rel)) {
        await this.enableControllers(parent);
        const dir = path.join(mountPoint, prefix);
        try {
          await fs.mkdir(dir);
          created.push(dir);
        } catch (err) {
          if (errnoCode(err) !== 'EEXIST') {
            throw new BerthError(`failed to create cgroup ${dir}: ${(err as Error).message}`, { cause: err });
          }
        }
        parent = dir;
      }
      const cgroup = new CgroupV2(rel, this.opts);
      const warnings = await cgroup.apply(resources);
      return { cgroup, warnings };
    } catch (err) {
      for (const dir of created.reverse()) await removeCgroupTree(fs, dir).catch(() => undefined);
      throw err;
    }
  }

  /** Enable each wanted controller the parent has in its own cgroup.controllers; refusals are logged, not fatal. */
  private async enableControllers(parent: string): Promise<void> {
    const { fs } = this.opts;
    const available = ((await readOptional(fs, path.join(parent, 'cgroup.controllers'))) ?? '').trim().split(/\s+/);
    const enabled = ((await readOptional(fs, path.join(parent, 'cgroup.subtree_control'))) ?? '').trim().split(/\s+/);
    for (const c of WANTED_CONTROLLERS) {
      if (!available.includes(c) || enabled.includes(c)) continue;
      try {
        await fs.writeFile(path.join(parent, 'cgroup.subtree_control'), `+${c}`);
      } catch (err) {
        // EBUSY: the parent has processes of its own (no-internal-process rule); the leaf will lack `c`.
        this.opts.log?.warn({ err, parent, controller: c }, 'cannot enable cgroup controller');
      }
    }
  }

  /** Read once (dockerd reads its SysInfo once too): every create validates against it. */
  readonly sysInfo = onceUntilFailure(() => this.readSysInfo());

  private async readSysInfo(): Promise<CgroupSysInfo> {
    const { fs, mountPoint } = this.opts;
    const controllers = ((await readOptional(fs, path.join(mountPoint, 'cgroup.controllers'))) ?? '').trim().split(/\s+/);
    const has = (c: string): boolean => controllers.includes(c);
    const list = async (file: string, fallback: string): Promise<string> =>
      ((await readOptional(fs, path.join(mountPoint, file))) ?? (await readOptional(fs, path.join(mountPoint, fallback))) ?? '').trim();
    return {
      memoryLimit: has('memory'),
      swapLimit: has('memory'),
      memoryReservation: has('memory'),
      oomKillDisable: false,
      memorySwappiness: false,
      kernelMemory: false,
      kernelMemoryTCP: false,
      cpuShares: has('cpu'),
      cpuCfs: has('cpu'),
      cpuRealtime: false,
      cpuset: has('cpuset'),
      cpus: has('cpuset') ? await list('cpuset.cpus.effective', 'cpuset.cpus') : '',
      mems: has('cpuset') ? await list('cpuset.mems.effective', 'cpuset.mems') : '',
      blkioWeight: has('io'),
      blkioWeightDevice: has('io'),
      blkioReadBpsDevice: has('io'),
      blkioWriteBpsDevice: has('io'),
      blkioReadIOpsDevice: has('io'),
      blkioWriteIOpsDevice: has('io'),
      pidsLimit: has('pids'),
      devices: true,
      freezer: true,
    };
  }
}

export class CgroupV2 extends BaseCgroup {
  readonly dir: string;

  constructor(
    rel: string,
    private readonly opts: CgroupV2Options,
  ) {
    super(rel, opts.fs);
    this.dir = path.join(opts.mountPoint, rel);
  }

  protected directories(): string[] {
    return [this.dir];
  }

  procsFiles(): string[] {
    return [path.join(this.dir, 'cgroup.procs')];
  }

  update(resources: LinuxResources): Promise<string[]> {
    return this.apply(resources);
  }

  async apply(r: LinuxResources): Promise<string[]> {
    const warnings: string[] = [];
    const fs = this.fs;
    const controllers = ((await readOptional(fs, path.join(this.dir, 'cgroup.controllers'))) ?? '').trim().split(/\s+/);
    const write = async (controller: string, file: string, value: string, warning: string): Promise<boolean> => {
      if (!controllers.includes(controller)) {
        warnings.push(warning);
        return false;
      }
      return writeSetting(fs, path.join(this.dir, file), value, warning, warnings);
    };

    if (r.devices !== undefined && r.devices.length > 0) {
      if (!(await this.applyDevices(r.devices))) warnings.push(CgroupWarnings.devicesV2);
    }

    const m = r.memory;
    if (m !== undefined) {
      const limit = m.limit ?? 0;
      const swap = memorySwapToV2(m.swap ?? 0, limit);
      if (swap !== 0) await write('memory', 'memory.swap.max', maxOr(swap), CgroupWarnings.swapLimit);
      if (limit !== 0) await write('memory', 'memory.max', maxOr(limit), CgroupWarnings.memoryLimit);
      if (m.reservation !== undefined && m.reservation !== 0) {
        await write('memory', 'memory.low', maxOr(m.reservation), CgroupWarnings.memoryReservation);
      }
      if (m.swappiness !== undefined && m.swappiness !== -1) warnings.push(CgroupWarnings.memorySwappiness);
      if (m.disableOOMKiller === true) warnings.push(CgroupWarnings.oomKillDisable);
      if (m.kernel !== undefined && m.kernel !== 0) warnings.push(CgroupWarnings.kernelMemory);
      if (m.kernelTCP !== undefined && m.kernelTCP !== 0) warnings.push(CgroupWarnings.kernelMemoryTCP);
    }

    const c = r.cpu;
    if (c !== undefined) {
      if (c.shares !== undefined && c.shares !== 0) {
        await write('cpu', 'cpu.weight', String(sharesToCpuWeight(c.shares)), CgroupWarnings.cpuShares);
      }
      const quota = c.quota ?? 0;
      const period = c.period ?? 0;
      if (quota !== 0 || period !== 0) {
        let value = quota > 0 ? String(quota) : 'max';
        if (period !== 0) value += ` ${period}`;
        await write('cpu', 'cpu.max', value, CgroupWarnings.cpuCfs);
      }
      if ((c.realtimePeriod ?? 0) !== 0 || (c.realtimeRuntime ?? 0) !== 0) warnings.push(CgroupWarnings.cpuRealtime);
      if (c.cpus !== undefined && c.cpus !== '') await write('cpuset', 'cpuset.cpus', c.cpus, CgroupWarnings.cpuset);
      if (c.mems !== undefined && c.mems !== '') await write('cpuset', 'cpuset.mems', c.mems, CgroupWarnings.cpuset);
    }

    if (r.pids !== undefined && r.pids.limit !== 0) {
      if (controllers.includes('pids')) {
        await write('pids', 'pids.max', maxOr(r.pids.limit), CgroupWarnings.pidsLimit);
      } else if (r.pids.limit > 0) {
        warnings.push(CgroupWarnings.pidsLimit);
      }
    }

    const b = r.blockIO;
    if (b !== undefined) {
      const bfq = controllers.includes('io') && (await fs.exists(path.join(this.dir, 'io.bfq.weight')));
      if (b.weight !== undefined && b.weight !== 0) {
        if (bfq) await write('io', 'io.bfq.weight', String(b.weight), CgroupWarnings.blkioWeight);
        else await write('io', 'io.weight', String(blkioWeightToIoWeight(b.weight)), CgroupWarnings.blkioWeight);
      }
      for (const d of b.weightDevice ?? []) {
        if (d.weight === undefined) continue;
        const ok = bfq
          ? await write('io', 'io.bfq.weight', `${d.major}:${d.minor} ${d.weight}`, CgroupWarnings.blkioWeightDevice)
          : await write('io', 'io.weight', `${d.major}:${d.minor} ${blkioWeightToIoWeight(d.weight)}`, CgroupWarnings.blkioWeightDevice);
        if (!ok) break;
      }
      const throttles: [LinuxThrottleDevice[] | undefined, string, string][] = [
        [b.throttleReadBpsDevice, 'rbps', CgroupWarnings.blkioReadBpsDevice],
        [b.throttleWriteBpsDevice, 'wbps', CgroupWarnings.blkioWriteBpsDevice],
        [b.throttleReadIOPSDevice, 'riops', CgroupWarnings.blkioReadIOpsDevice],
        [b.throttleWriteIOPSDevice, 'wiops', CgroupWarnings.blkioWriteIOpsDevice],
      ];
      for (const [list, key, warning] of throttles) {
        for (const d of list ?? []) {
          if (!(await write('io', 'io.max', `${d.major}:${d.minor} ${key}=${d.rate}`, warning))) break;
        }
      }
    }

    const out = [...new Set(warnings)];
    if (out.length > 0) this.opts.log?.info({ cgroup: this.path, warnings: out }, 'cgroup settings skipped');
    return out;
  }

  /**
   * Compiles the rules (runc's semantics, default deny) and attaches the program. false when the kernel cannot run
   * device programs and the rules restrict something (the caller warns); other failures throw.
   */
  private async applyDevices(rules: LinuxDeviceCgroup[]): Promise<boolean> {
    const insns = compileDeviceFilter(rules);
    const attach = this.opts.attachDeviceFilter ?? ((dir: string, bytes: Buffer) => nativeAddon().attachDeviceFilter(dir, bytes));
    try {
      const replaced = attach(this.dir, insns);
      this.opts.log?.debug({ cgroup: this.path, insns: insns.length / 8, replaced }, 'device filter attached');
      return true;
    } catch (err) {
      // Rules that only allow everything restrict nothing: a refusal changes nothing (runc ignores it too).
      if (deviceRulesOnlyAllowAll(rules)) {
        this.opts.log?.info({ err, cgroup: this.path }, 'device filter not attached; the rules allow every device');
        return true;
      }
      const code = errnoCode(err);
      if (code !== undefined && NO_DEVICE_BPF.has(code)) {
        this.opts.log?.warn({ err, cgroup: this.path }, 'kernel refused the cgroup device program');
        return false;
      }
      throw new BerthError(`failed to set cgroup v2 device rules on ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  protected async canFreeze(): Promise<boolean> {
    return this.fs.exists(path.join(this.dir, 'cgroup.freeze'));
  }

  protected async killFiles(): Promise<string[]> {
    const file = path.join(this.dir, 'cgroup.kill');
    return (await this.fs.exists(file)) ? [file] : [];
  }

  private async setFrozen(freeze: boolean): Promise<void> {
    await writeCgroupFile(this.fs, path.join(this.dir, 'cgroup.freeze'), freeze ? '1' : '0');
    const want = freeze ? 1 : 0;
    const ok = await pollUntil(
      async () => parseKeyValues(await readOptional(this.fs, path.join(this.dir, 'cgroup.events'))).frozen === want,
      10_000,
    );
    if (!ok) {
      if (freeze) await writeCgroupFile(this.fs, path.join(this.dir, 'cgroup.freeze'), '0').catch(() => undefined);
      throw new BerthError(`unable to ${freeze ? 'freeze' : 'thaw'} cgroup ${this.path}`);
    }
  }

  freeze(): Promise<void> {
    return this.setFrozen(true);
  }

  thaw(): Promise<void> {
    return this.setFrozen(false);
  }

  async isFrozen(): Promise<boolean> {
    return parseKeyValues(await readOptional(this.fs, path.join(this.dir, 'cgroup.events'))).frozen === 1;
  }

  async oomKillCount(): Promise<number> {
    return parseKeyValues(await readOptional(this.fs, path.join(this.dir, 'memory.events'))).oom_kill ?? 0;
  }

  async counters(): Promise<CgroupCounters> {
    const read = (file: string): Promise<string | undefined> => readOptional(this.fs, path.join(this.dir, file));
    const [cpuStat, memCurrent, memMax, memStat, pidsCur, pidsMax, ioStat] = await Promise.all([
      read('cpu.stat'),
      read('memory.current'),
      read('memory.max'),
      read('memory.stat'),
      read('pids.current'),
      read('pids.max'),
      read('io.stat'),
    ]);
    const cpu = parseKeyValues(cpuStat);
    return {
      cpu: {
        usageNs: (cpu.usage_usec ?? 0) * 1000,
        kernelNs: (cpu.system_usec ?? 0) * 1000,
        userNs: (cpu.user_usec ?? 0) * 1000,
        periods: cpu.nr_periods ?? 0,
        throttledPeriods: cpu.nr_throttled ?? 0,
        throttledNs: (cpu.throttled_usec ?? 0) * 1000,
      },
      memory: {
        ...definedUint('usage', memCurrent),
        ...(memMax !== undefined ? { limit: parseUintValue(memMax) ?? Infinity } : {}),
        stat: parseKeyValues(memStat),
      },
      pids: { ...definedUint('current', pidsCur), ...(pidsMax !== undefined ? { limit: parseUintValue(pidsMax) ?? Infinity } : {}) },
      io: {
        version: '2',
        devices: parseIoStat(ioStat).map((d) => ({ major: d.major, minor: d.minor, rbytes: d.fields.rbytes ?? 0, wbytes: d.fields.wbytes ?? 0 })),
      },
    };
  }
}
