// cgroup v1 backend: one directory per mounted hierarchy (plus the unified tree on hybrid hosts, which gives
// cgroup.kill / cgroup.freeze and makes `0::/<path>` show in /proc/<pid>/cgroup as with runc).

import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BerthError, InvalidParameterError } from '../../errors.js';
import type { Logger } from '../../util/logger.js';
import {
  BaseCgroup,
  type Cgroup,
  type CgroupFs,
  type CgroupManager,
  definedUint,
  errnoCode,
  normaliseCgroupPath,
  parseKeyValues,
  parseUintValue,
  pathPrefixes,
  pollUntil,
  readOptional,
  writeSetting,
  writeSettings,
  removeCgroupTree,
  writeCgroupFile,
} from './cgroup.js';
import type { V1Hierarchy } from './mountinfo.js';
import {
  type BlkioStatEntry,
  type CgroupCounters,
  type CgroupSysInfo,
  CgroupWarnings,
  type LinuxDeviceCgroup,
  type LinuxResources,
  type LinuxThrottleDevice,
} from './resources.js';
import { onceUntilFailure } from '../../util/once-until-failure.js';

/** USER_HZ: cpuacct.stat counts in clock ticks of 10 ms. */
const NS_PER_TICK = 10_000_000;

export interface CgroupV1Options {
  hierarchies: V1Hierarchy[];
  /** Mount point of the cgroup2 tree on a hybrid host, if any. */
  unifiedMount?: string | undefined;
  fs: CgroupFs;
  log?: Logger | undefined;
}

/** One rule as the v1 devices files take it: "c 1:5 rwm", "a". */
export function formatV1DeviceRule(rule: LinuxDeviceCgroup): string {
  const type = rule.type ?? 'a';
  if (type === 'a') return 'a';
  const num = (n: number | undefined): string => (n === undefined || n < 0 ? '*' : String(n));
  const access = rule.access === undefined || rule.access === '' ? 'rwm' : rule.access;
  return `${type} ${num(rule.major)}:${num(rule.minor)} ${access}`;
}

export class CgroupV1Manager implements CgroupManager {
  readonly version = '1' as const;

  constructor(private readonly opts: CgroupV1Options) {}

  /** Mount point of the hierarchy holding `controller`, if mounted. */
  private mountOf(controller: string): string | undefined {
    return this.opts.hierarchies.find((h) => h.controllers.includes(controller))?.mountPoint;
  }

  open(p: string): CgroupV1 {
    return new CgroupV1(normaliseCgroupPath(p), this.opts);
  }

  /**
   * Parent directories (e.g. <mount>/berth) this manager made or found, with their cpuset filled in: every
   * container's cgroup has the same parents, and checking them again cost 4 syscalls per hierarchy per create. A
   * parent removed behind our back shows as ENOENT on its child's mkdir, which forgets them and goes again.
   */
  private readonly readyParents = new Set<string>();

  async create(p: string, resources: LinuxResources): Promise<{ cgroup: Cgroup; warnings: string[] }> {
    try {
      return await this.createOnce(p, resources);
    } catch (err) {
      if (this.readyParents.size === 0 || !(err instanceof BerthError) || errnoCode(err.cause) !== 'ENOENT') throw err;
      this.readyParents.clear();
      return this.createOnce(p, resources);
    }
  }

  private async createOnce(p: string, resources: LinuxResources): Promise<{ cgroup: Cgroup; warnings: string[] }> {
    const rel = normaliseCgroupPath(p);
    const { fs } = this.opts;
    const created: string[] = [];
    const warnings: string[] = [];
    const prefixes = pathPrefixes(rel);
    const ready: string[] = [];
    try {
      for (const h of this.opts.hierarchies) {
        const isCpuset = h.controllers.includes('cpuset');
        for (const [i, prefix] of prefixes.entries()) {
          const dir = path.join(h.mountPoint, prefix);
          const parent = i < prefixes.length - 1;
          if (parent && this.readyParents.has(dir)) continue;
          if (await mkdirIfMissing(fs, dir)) created.push(dir);
          // A new cpuset cgroup starts with empty cpus/mems and refuses tasks until they are filled in.
          if (isCpuset) await inheritCpuset(fs, dir);
          if (parent) ready.push(dir);
        }
      }
      if (this.opts.unifiedMount !== undefined) {
        for (const [i, prefix] of prefixes.entries()) {
          const dir = path.join(this.opts.unifiedMount, prefix);
          const parent = i < prefixes.length - 1;
          if (parent && this.readyParents.has(dir)) continue;
          try {
            if (await mkdirIfMissing(fs, dir)) created.push(dir);
          } catch (err) {
            // a remembered parent gone: create() goes again without the memory
            if (i > 0 && this.readyParents.has(path.dirname(dir)) && errnoCode((err as Error).cause) === 'ENOENT') throw err;
            this.opts.log?.warn({ err, dir }, 'cannot create the unified (cgroup2) directory; continuing with v1 only');
            break;
          }
          if (parent) ready.push(dir);
        }
      }
      const cgroup = new CgroupV1(rel, this.opts);
      warnings.push(...(await cgroup.apply(resources)));
      for (const dir of ready) this.readyParents.add(dir);
      return { cgroup, warnings: dedupe(warnings) };
    } catch (err) {
      for (const dir of created.reverse()) await removeCgroupTree(fs, dir).catch(() => undefined);
      throw err;
    }
  }

  /** Read once (dockerd reads its SysInfo once too): every create validates against it. */
  readonly sysInfo = onceUntilFailure(() => this.readSysInfo());

  private async readSysInfo(): Promise<CgroupSysInfo> {
    const { fs } = this.opts;
    const has = async (controller: string, file: string): Promise<boolean> => {
      const mount = this.mountOf(controller);
      return mount !== undefined && (await fs.exists(path.join(mount, file)));
    };
    const cpusetMount = this.mountOf('cpuset');
    const readList = async (files: string[]): Promise<string> => {
      if (cpusetMount === undefined) return '';
      for (const f of files) {
        const v = await readOptional(fs, path.join(cpusetMount, f));
        if (v !== undefined && v.trim() !== '') return v.trim();
      }
      return '';
    };
    return {
      memoryLimit: this.mountOf('memory') !== undefined,
      swapLimit: await has('memory', 'memory.memsw.limit_in_bytes'),
      memoryReservation: await has('memory', 'memory.soft_limit_in_bytes'),
      oomKillDisable: await has('memory', 'memory.oom_control'),
      memorySwappiness: await has('memory', 'memory.swappiness'),
      kernelMemory: await has('memory', 'memory.kmem.limit_in_bytes'),
      kernelMemoryTCP: await has('memory', 'memory.kmem.tcp.limit_in_bytes'),
      cpuShares: await has('cpu', 'cpu.shares'),
      cpuCfs: (await has('cpu', 'cpu.cfs_quota_us')) && (await has('cpu', 'cpu.cfs_period_us')),
      cpuRealtime: (await has('cpu', 'cpu.rt_period_us')) && (await has('cpu', 'cpu.rt_runtime_us')),
      cpuset: cpusetMount !== undefined,
      cpus: await readList(['cpuset.effective_cpus', 'cpuset.cpus']),
      mems: await readList(['cpuset.effective_mems', 'cpuset.mems']),
      blkioWeight: (await has('blkio', 'blkio.weight')) || (await has('blkio', 'blkio.bfq.weight')),
      blkioWeightDevice: (await has('blkio', 'blkio.weight_device')) || (await has('blkio', 'blkio.bfq.weight_device')),
      blkioReadBpsDevice: await has('blkio', 'blkio.throttle.read_bps_device'),
      blkioWriteBpsDevice: await has('blkio', 'blkio.throttle.write_bps_device'),
      blkioReadIOpsDevice: await has('blkio', 'blkio.throttle.read_iops_device'),
      blkioWriteIOpsDevice: await has('blkio', 'blkio.throttle.write_iops_device'),
      pidsLimit: this.mountOf('pids') !== undefined,
      devices: this.mountOf('devices') !== undefined,
      freezer: this.mountOf('freezer') !== undefined,
    };
  }
}

async function mkdirIfMissing(fs: CgroupFs, dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw new BerthError(`failed to create cgroup ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** Copy cpuset.cpus / cpuset.mems from the parent when empty (clone_children is off by default). */
async function inheritCpuset(fs: CgroupFs, dir: string): Promise<void> {
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    const own = await readOptional(fs, path.join(dir, file));
    if (own === undefined || own.trim() !== '') continue;
    const parent = await readOptional(fs, path.join(path.dirname(dir), file));
    if (parent !== undefined && parent.trim() !== '') await writeCgroupFile(fs, path.join(dir, file), parent.trim());
  }
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}

export class CgroupV1 extends BaseCgroup {
  constructor(
    rel: string,
    private readonly opts: CgroupV1Options,
  ) {
    super(rel, opts.fs);
  }

  /** This cgroup's directory in the hierarchy holding `controller`. */
  dirOf(controller: string): string | undefined {
    const h = this.opts.hierarchies.find((x) => x.controllers.includes(controller));
    return h === undefined ? undefined : path.join(h.mountPoint, this.path);
  }

  private unifiedDir(): string | undefined {
    return this.opts.unifiedMount === undefined ? undefined : path.join(this.opts.unifiedMount, this.path);
  }

  protected directories(): string[] {
    const dirs = this.opts.hierarchies.map((h) => path.join(h.mountPoint, this.path));
    const u = this.unifiedDir();
    if (u !== undefined) dirs.push(u);
    return dirs;
  }

  procsFiles(): string[] {
    return this.directories().map((d) => path.join(d, 'cgroup.procs'));
  }

  override async addProcess(pid: number): Promise<void> {
    if (!Number.isInteger(pid) || pid <= 0) throw new InvalidParameterError(`invalid pid ${pid}`);
    const u = this.unifiedDir();
    for (const file of this.procsFiles()) {
      try {
        await writeCgroupFile(this.fs, file, String(pid));
      } catch (err) {
        // The unified tree of a hybrid host is only for tracking; v1 membership is what limits apply to.
        if (u !== undefined && file.startsWith(u + '/')) {
          this.opts.log?.warn({ err, file }, 'cannot join the unified (cgroup2) directory');
          continue;
        }
        throw err;
      }
    }
  }

  update(resources: LinuxResources): Promise<string[]> {
    return this.apply(resources);
  }

  /** Write every setting; missing files become warnings, other failures throw. */
  async apply(r: LinuxResources): Promise<string[]> {
    const warnings: string[] = [];
    const fs = this.fs;
    /** Write `value` to `file` in `controller`'s dir; false (and a warning) if the controller or file is missing. */
    const write = async (controller: string, file: string, value: string, warning: string): Promise<boolean> => {
      const dir = this.dirOf(controller);
      if (dir === undefined) {
        warnings.push(warning);
        return false;
      }
      return writeSetting(fs, path.join(dir, file), value, warning, warnings);
    };
    const exists = async (controller: string, file: string): Promise<boolean> => {
      const dir = this.dirOf(controller);
      return dir !== undefined && (await fs.exists(path.join(dir, file)));
    };

    // devices: start from deny-all, then replay the rules in order (correct for a new cgroup; an update replays too).
    if (r.devices !== undefined && r.devices.length > 0) {
      if (this.dirOf('devices') === undefined) {
        warnings.push(CgroupWarnings.devices);
      } else {
        // each run of rules for the same file through one open (one rule per write): 20 rules, 3 opens
        const runs: { file: string; values: string[] }[] = [{ file: 'devices.deny', values: ['a'] }];
        for (const rule of r.devices) {
          const file = rule.allow ? 'devices.allow' : 'devices.deny';
          const last = runs[runs.length - 1]!;
          if (last.file === file) last.values.push(formatV1DeviceRule(rule));
          else runs.push({ file, values: [formatV1DeviceRule(rule)] });
        }
        for (const run of runs) {
          if (!(await writeSettings(fs, path.join(this.dirOf('devices')!, run.file), run.values, CgroupWarnings.devices, warnings))) break;
        }
      }
    }

    const m = r.memory;
    if (m !== undefined) {
      let limit = m.limit ?? 0;
      let swap = m.swap ?? 0;
      const hasMemsw = await exists('memory', 'memory.memsw.limit_in_bytes');
      if (swap !== 0 && !hasMemsw) {
        if (swap !== -1) warnings.push(CgroupWarnings.swapLimit);
        swap = 0;
      }
      // Unlimited memory with swap unspecified means unlimited memory+swap too (memsw may not be below memory).
      if (limit === -1 && swap === 0 && hasMemsw) swap = -1;
      if (limit !== 0 && this.dirOf('memory') === undefined) {
        warnings.push(CgroupWarnings.memoryLimit);
        limit = 0;
        swap = 0;
      }
      const writeLimit = () => write('memory', 'memory.limit_in_bytes', String(limit), CgroupWarnings.memoryLimit);
      const writeSwap = () => write('memory', 'memory.memsw.limit_in_bytes', String(swap), CgroupWarnings.swapLimit);
      if (limit !== 0 && swap !== 0) {
        // memsw must stay ≥ the memory limit at every step: raise memsw first when growing, else memory first.
        const current = parseUintValue(await readOptional(fs, path.join(this.dirOf('memory') ?? '', 'memory.limit_in_bytes')));
        if (swap === -1 || (current !== undefined && current < swap)) {
          await writeSwap();
          await writeLimit();
        } else {
          await writeLimit();
          await writeSwap();
        }
      } else {
        if (limit !== 0) await writeLimit();
        if (swap !== 0) await writeSwap();
      }
      if (m.reservation !== undefined && m.reservation !== 0) {
        await write('memory', 'memory.soft_limit_in_bytes', String(m.reservation), CgroupWarnings.memoryReservation);
      }
      if (m.kernel !== undefined && m.kernel !== 0) {
        await this.writeSoft('memory', 'memory.kmem.limit_in_bytes', String(m.kernel), CgroupWarnings.kernelMemory, warnings);
      }
      if (m.kernelTCP !== undefined && m.kernelTCP !== 0) {
        await this.writeSoft('memory', 'memory.kmem.tcp.limit_in_bytes', String(m.kernelTCP), CgroupWarnings.kernelMemoryTCP, warnings);
      }
      if (m.swappiness !== undefined && m.swappiness !== -1) {
        if (!Number.isInteger(m.swappiness) || m.swappiness < 0 || m.swappiness > 100) {
          throw new InvalidParameterError(`Invalid value: ${m.swappiness}, valid memory swappiness range is 0-100`);
        }
        await write('memory', 'memory.swappiness', String(m.swappiness), CgroupWarnings.memorySwappiness);
      }
      if (m.disableOOMKiller === true) {
        await write('memory', 'memory.oom_control', '1', CgroupWarnings.oomKillDisable);
      }
    }

    const c = r.cpu;
    if (c !== undefined) {
      if (c.shares !== undefined && c.shares !== 0) {
        await write('cpu', 'cpu.shares', String(c.shares), CgroupWarnings.cpuShares);
      }
      const period = c.period ?? 0;
      const quota = c.quota ?? 0;
      if (period !== 0 || quota !== 0) {
        const cfs = (await exists('cpu', 'cpu.cfs_period_us')) && (await exists('cpu', 'cpu.cfs_quota_us'));
        if (!cfs) {
          warnings.push(CgroupWarnings.cpuCfs);
        } else {
          // A new period can be refused against the current quota; then set the quota first and retry.
          let periodPending = false;
          if (period !== 0) {
            try {
              await fs.writeFile(path.join(this.dirOf('cpu') ?? '', 'cpu.cfs_period_us'), String(period));
            } catch (err) {
              if (errnoCode(err) !== 'EINVAL' || quota === 0) {
                throw new BerthError(`failed to write ${period} to cpu.cfs_period_us: ${(err as Error).message}`, { cause: err });
              }
              periodPending = true;
            }
          }
          if (quota !== 0) await write('cpu', 'cpu.cfs_quota_us', String(quota), CgroupWarnings.cpuCfs);
          if (periodPending) await write('cpu', 'cpu.cfs_period_us', String(period), CgroupWarnings.cpuCfs);
        }
      }
      if (c.realtimePeriod !== undefined && c.realtimePeriod !== 0) {
        await write('cpu', 'cpu.rt_period_us', String(c.realtimePeriod), CgroupWarnings.cpuRealtime);
      }
      if (c.realtimeRuntime !== undefined && c.realtimeRuntime !== 0) {
        await write('cpu', 'cpu.rt_runtime_us', String(c.realtimeRuntime), CgroupWarnings.cpuRealtime);
      }
      if (c.cpus !== undefined && c.cpus !== '') await write('cpuset', 'cpuset.cpus', c.cpus, CgroupWarnings.cpuset);
      if (c.mems !== undefined && c.mems !== '') await write('cpuset', 'cpuset.mems', c.mems, CgroupWarnings.cpuset);
    }

    if (r.pids !== undefined && r.pids.limit !== 0) {
      const value = r.pids.limit > 0 ? String(r.pids.limit) : 'max';
      if (this.dirOf('pids') === undefined) {
        if (r.pids.limit > 0) warnings.push(CgroupWarnings.pidsLimit);
      } else {
        await write('pids', 'pids.max', value, CgroupWarnings.pidsLimit);
      }
    }

    const b = r.blockIO;
    if (b !== undefined) {
      if (b.weight !== undefined && b.weight !== 0) {
        const file = (await exists('blkio', 'blkio.weight')) ? 'blkio.weight' : 'blkio.bfq.weight';
        await write('blkio', file, String(b.weight), CgroupWarnings.blkioWeight);
      }
      if (b.weightDevice !== undefined && b.weightDevice.length > 0) {
        const file = (await exists('blkio', 'blkio.weight_device')) ? 'blkio.weight_device' : 'blkio.bfq.weight_device';
        for (const d of b.weightDevice) {
          if (d.weight === undefined) continue;
          if (!(await write('blkio', file, `${d.major}:${d.minor} ${d.weight}`, CgroupWarnings.blkioWeightDevice))) break;
        }
      }
      const throttles: [LinuxThrottleDevice[] | undefined, string, string][] = [
        [b.throttleReadBpsDevice, 'blkio.throttle.read_bps_device', CgroupWarnings.blkioReadBpsDevice],
        [b.throttleWriteBpsDevice, 'blkio.throttle.write_bps_device', CgroupWarnings.blkioWriteBpsDevice],
        [b.throttleReadIOPSDevice, 'blkio.throttle.read_iops_device', CgroupWarnings.blkioReadIOpsDevice],
        [b.throttleWriteIOPSDevice, 'blkio.throttle.write_iops_device', CgroupWarnings.blkioWriteIOpsDevice],
      ];
      for (const [list, file, warning] of throttles) {
        for (const d of list ?? []) {
          if (!(await write('blkio', file, `${d.major}:${d.minor} ${d.rate}`, warning))) break;
        }
      }
    }

    const out = dedupe(warnings);
    if (out.length > 0) this.opts.log?.info({ cgroup: this.path, warnings: out }, 'cgroup settings skipped');
    return out;
  }

  /** Kernel-memory knobs are deprecated: a kernel refusing them is a warning, not an error. */
  private async writeSoft(controller: string, file: string, value: string, warning: string, warnings: string[]): Promise<void> {
    const dir = this.dirOf(controller);
    if (dir === undefined) {
      warnings.push(warning);
      return;
    }
    try {
      await this.fs.writeFile(path.join(dir, file), value);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'EINVAL') {
        warnings.push(warning);
        return;
      }
      throw new BerthError(`failed to write ${JSON.stringify(value)} to ${path.join(dir, file)}: ${(err as Error).message}`, { cause: err });
    }
  }

  protected async canFreeze(): Promise<boolean> {
    if (this.dirOf('freezer') !== undefined) return true;
    const u = this.unifiedDir();
    return u !== undefined && (await this.fs.exists(path.join(u, 'cgroup.freeze')));
  }

  protected async killFiles(): Promise<string[]> {
    const u = this.unifiedDir();
    if (u === undefined) return [];
    const file = path.join(u, 'cgroup.kill');
    return (await this.fs.exists(file)) ? [file] : [];
  }

  async freeze(): Promise<void> {
    const dir = this.dirOf('freezer');
    if (dir === undefined) return this.unifiedFreeze(true);
    const file = path.join(dir, 'freezer.state');
    // FREEZING can persist while tasks are in uninterruptible sleep; retry, thawing briefly every 50 tries.
    for (let attempt = 0; attempt < 1000; attempt++) {
      if (attempt > 0 && attempt % 50 === 0) {
        await writeCgroupFile(this.fs, file, 'THAWED');
        await delay(10);
      }
      await writeCgroupFile(this.fs, file, 'FROZEN');
      const state = (await this.fs.readFile(file)).trim();
      if (state === 'FROZEN') return;
      await delay(1);
    }
    await writeCgroupFile(this.fs, file, 'THAWED');
    throw new BerthError(`unable to freeze cgroup ${this.path}: still FREEZING`);
  }

  async thaw(): Promise<void> {
    const dir = this.dirOf('freezer');
    if (dir === undefined) return this.unifiedFreeze(false);
    const file = path.join(dir, 'freezer.state');
    await writeCgroupFile(this.fs, file, 'THAWED');
    const ok = await pollUntil(async () => (await this.fs.readFile(file)).trim() === 'THAWED', 10_000);
    if (!ok) throw new BerthError(`unable to thaw cgroup ${this.path}`);
  }

  async isFrozen(): Promise<boolean> {
    const dir = this.dirOf('freezer');
    if (dir !== undefined) return (await readOptional(this.fs, path.join(dir, 'freezer.state')))?.trim() === 'FROZEN';
    const u = this.unifiedDir();
    if (u === undefined) return false;
    return parseKeyValues(await readOptional(this.fs, path.join(u, 'cgroup.events'))).frozen === 1;
  }

  /** Freezing through the unified tree when no v1 freezer is mounted. */
  private async unifiedFreeze(freeze: boolean): Promise<void> {
    const u = this.unifiedDir();
    if (u === undefined || !(await this.fs.exists(path.join(u, 'cgroup.freeze')))) {
      throw new BerthError('the freezer cgroup is not available on this host');
    }
    await writeCgroupFile(this.fs, path.join(u, 'cgroup.freeze'), freeze ? '1' : '0');
    const want = freeze ? 1 : 0;
    const ok = await pollUntil(
      async () => parseKeyValues(await readOptional(this.fs, path.join(u, 'cgroup.events'))).frozen === want,
      10_000,
    );
    if (!ok) {
      if (freeze) await writeCgroupFile(this.fs, path.join(u, 'cgroup.freeze'), '0').catch(() => undefined);
      throw new BerthError(`unable to ${freeze ? 'freeze' : 'thaw'} cgroup ${this.path}`);
    }
  }

  async oomKillCount(): Promise<number> {
    const dir = this.dirOf('memory');
    if (dir === undefined) return 0;
    return parseKeyValues(await readOptional(this.fs, path.join(dir, 'memory.oom_control'))).oom_kill ?? 0;
  }

  async counters(): Promise<CgroupCounters> {
    const read = (controller: string, file: string): Promise<string | undefined> => {
      const dir = this.dirOf(controller);
      return dir === undefined ? Promise.resolve(undefined) : readOptional(this.fs, path.join(dir, file));
    };
    const [usage, percpu, acctStat, cpuStat, memUsage, memMax, memFail, memLimit, memStat, pidsCur, pidsMax] =
      await Promise.all([
        read('cpuacct', 'cpuacct.usage'),
        read('cpuacct', 'cpuacct.usage_percpu'),
        read('cpuacct', 'cpuacct.stat'),
        read('cpu', 'cpu.stat'),
        read('memory', 'memory.usage_in_bytes'),
        read('memory', 'memory.max_usage_in_bytes'),
        read('memory', 'memory.failcnt'),
        read('memory', 'memory.limit_in_bytes'),
        read('memory', 'memory.stat'),
        read('pids', 'pids.current'),
        read('pids', 'pids.max'),
      ]);
    const acct = parseKeyValues(acctStat);
    const throttle = parseKeyValues(cpuStat);
    return {
      cpu: {
        usageNs: parseUintValue(usage) ?? 0,
        perCpuNs: (percpu ?? '').trim() === '' ? [] : (percpu ?? '').trim().split(/\s+/).map(Number),
        kernelNs: (acct.system ?? 0) * NS_PER_TICK,
        userNs: (acct.user ?? 0) * NS_PER_TICK,
        periods: throttle.nr_periods ?? 0,
        throttledPeriods: throttle.nr_throttled ?? 0,
        throttledNs: throttle.throttled_time ?? 0,
      },
      memory: {
        ...definedUint('usage', memUsage),
        ...definedUint('maxUsage', memMax),
        ...definedUint('failcnt', memFail),
        ...(memLimit !== undefined ? { limit: parseUintValue(memLimit) ?? Infinity } : {}),
        stat: parseKeyValues(memStat),
      },
      pids: { ...definedUint('current', pidsCur), ...(pidsMax !== undefined ? { limit: parseUintValue(pidsMax) ?? Infinity } : {}) },
      io: await this.blkioCounters(),
    };
  }

  /** CFQ/BFQ-era recursive files when they carry data, else the throttle layer's counters (as containerd does). */
  private async blkioCounters(): Promise<CgroupCounters['io']> {
    const dir = this.dirOf('blkio');
    const read = async (file: string): Promise<BlkioStatEntry[]> =>
      dir === undefined ? [] : parseBlkioFile(await readOptional(this.fs, path.join(dir, file)));
    const cfqBytes = await read('blkio.io_service_bytes_recursive');
    if (cfqBytes.length > 0) {
      return {
        version: '1',
        serviceBytes: cfqBytes,
        serviced: await read('blkio.io_serviced_recursive'),
        queued: await read('blkio.io_queued_recursive'),
        serviceTime: await read('blkio.io_service_time_recursive'),
        waitTime: await read('blkio.io_wait_time_recursive'),
        merged: await read('blkio.io_merged_recursive'),
        time: await read('blkio.time_recursive'),
        sectors: await read('blkio.sectors_recursive'),
      };
    }
    return {
      version: '1',
      serviceBytes: await read('blkio.throttle.io_service_bytes_recursive'),
      serviced: await read('blkio.throttle.io_serviced_recursive'),
      queued: [],
      serviceTime: [],
      waitTime: [],
      merged: [],
      time: [],
      sectors: [],
    };
  }
}

/** "8:0 Read 4096" lines (and "8:0 123" for op-less files); the trailing "Total N" line is dropped. */
export function parseBlkioFile(text: string | undefined): BlkioStatEntry[] {
  const out: BlkioStatEntry[] = [];
  if (text === undefined) return out;
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    const m = parts[0] === undefined ? null : /^(\d+):(\d+)$/.exec(parts[0]);
    if (m === null) continue;
    const op = parts.length >= 3 ? (parts[1] ?? '') : '';
    const value = Number(parts.length >= 3 ? parts[2] : parts[1]);
    if (!Number.isFinite(value)) continue;
    out.push({ major: Number(m[1]), minor: Number(m[2]), op, value });
  }
  return out;
}
