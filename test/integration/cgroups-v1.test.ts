// The v1 backend against the host's real cgroup v1 hierarchies (CI machines are v1 hybrid).

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Cgroup, type CgroupManager, CgroupV1, CgroupWarnings, createCgroupManager, parseCgroupMounts } from '../../src/runtime/cgroups/index.js';
import { adaptResources, hostConfigToLinuxResources, mergeResourcesUpdate, verifyResources } from '../../src/containers/resources.js';
import { buildDeviceConfig, runtimeAllowedDeviceRules } from '../../src/containers/devices.js';
import { dockerCgroupStats } from '../../src/containers/stats.js';

const MiB = 1024 * 1024;

const ROOT = '/sys/fs/cgroup';
const isRoot = process.getuid?.() === 0;
const isV1 = existsSync(ROOT) && !existsSync(path.join(ROOT, 'cgroup.controllers')) && existsSync(path.join(ROOT, 'memory'));
const skipReason = !isRoot ? 'needs root' : !isV1 ? 'host is not cgroup v1' : '';

/** Every directory a test cgroup may leave behind, in each v1 hierarchy and the unified tree. */
function allDirsFor(rel: string): string[] {
  const mounts = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  const dirs = mounts.v1.map((h) => path.join(h.mountPoint, rel));
  if (mounts.unified !== undefined) dirs.push(path.join(mounts.unified.mountPoint, rel));
  return dirs;
}

function waitExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

async function poll(check: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

describe.skipIf(skipReason !== '')(`cgroup v1 on the real hierarchy${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const top = `berth-test-${randomBytes(4).toString('hex')}`;
  let manager: CgroupManager;
  let child: ChildProcess | undefined;

  afterEach(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await waitExit(child);
    }
    child = undefined;
    // Remove everything under the test's top directory, whatever happened in the test.
    await manager?.open(top).destroy();
    for (const dir of allDirsFor(top)) expect(existsSync(dir), `${dir} left behind`).toBe(false);
  });

  it('limits, tracks, freezes, kills and removes a process group', async () => {
    manager = createCgroupManager();
    expect(manager.version).toBe('1');
    const id = randomBytes(6).toString('hex');
    const rel = `${top}/${id}`;
    const { cgroup, warnings } = await manager.create(rel, {
      memory: { limit: 32 * 1024 * 1024 },
      pids: { limit: 20 },
      cpu: { shares: 512 },
    });
    expect(warnings).toEqual([]);
    const v1 = cgroup as CgroupV1;
    expect(readFileSync(path.join(v1.dirOf('memory') ?? '', 'memory.limit_in_bytes'), 'utf8').trim()).toBe('33554432');
    expect(readFileSync(path.join(v1.dirOf('pids') ?? '', 'pids.max'), 'utf8').trim()).toBe('20');

    // The child waits on stdin so it allocates (exec of sleep) only after joining: the memory cgroup sees it.
    child = spawn('sh', ['-c', 'read line; exec sleep 30'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const pid = child.pid;
    if (pid === undefined) throw new Error('spawn failed');
    await cgroup.addProcess(pid);
    child.stdin?.end('go\n');
    await poll(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep'));

    const procCgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    expect(procCgroup).toMatch(new RegExp(`:memory:/${rel}\\n`));
    expect(procCgroup).toMatch(new RegExp(`:pids:/${rel}\\n`));
    expect(procCgroup).toMatch(new RegExp(`:freezer:/${rel}\\n`));
    expect(await cgroup.pids()).toEqual([pid]);

    await cgroup.freeze();
    expect(await cgroup.isFrozen()).toBe(true);
    expect(readFileSync(path.join(v1.dirOf('freezer') ?? '', 'freezer.state'), 'utf8').trim()).toBe('FROZEN');
    // v1-frozen tasks sit in the refrigerator: uninterruptible (D) on current kernels.
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^State:\s+[DST]/m);
    await cgroup.thaw();
    expect(await cgroup.isFrozen()).toBe(false);

    const stats = dockerCgroupStats(await cgroup.counters(), os.totalmem());
    expect(stats.memory_stats.usage ?? 0).toBeGreaterThan(0);
    expect(stats.memory_stats.limit).toBe(33554432);
    expect(stats.pids_stats).toEqual({ current: 1, limit: 20 });
    expect(stats.cpu_stats.cpu_usage.total_usage).toBeGreaterThan(0);
    expect(await cgroup.oomKillCount()).toBe(0);

    await cgroup.killAll('SIGKILL');
    expect(await waitExit(child)).toEqual({ code: null, signal: 'SIGKILL' });

    await cgroup.destroy();
    for (const dir of allDirsFor(rel)) expect(existsSync(dir), `${dir} left behind`).toBe(false);
  });

  it('kill-all with SIGTERM goes through the freezer and reaches every process', async () => {
    manager = createCgroupManager();
    const { cgroup } = await manager.create(`${top}/term`, {});
    child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid;
    if (pid === undefined) throw new Error('spawn failed');
    await cgroup.addProcess(pid);
    await cgroup.killAll('SIGTERM');
    expect(await waitExit(child)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(await cgroup.isFrozen()).toBe(false);
    expect(await pollCgroupEmpty(cgroup)).toBe(true);
  });

  it("applies Docker's many-options resources and device rules as the kernel expects them", async () => {
    manager = createCgroupManager();
    const sys = await manager.sysInfo();
    const verified = verifyResources(
      { Memory: 64 * MiB, MemorySwap: 128 * MiB, MemoryReservation: 32 * MiB, NanoCpus: 500_000_000, CpuShares: 512, CpusetCpus: '0', PidsLimit: 100, BlkioWeight: 300 },
      sys,
    );
    const resources = await hostConfigToLinuxResources(adaptResources(verified.resources));
    const devices = await buildDeviceConfig({ DeviceCgroupRules: ['c 42:* rmw'] });
    // The executor appends runc's allowed devices to the spec's rules, as runc does.
    const { cgroup, warnings } = await manager.create(`${top}/many`, { ...resources, devices: [...devices.rules, ...runtimeAllowedDeviceRules()] });
    expect([...verified.warnings, ...warnings].every((w) => w === CgroupWarnings.blkioWeight || w === CgroupWarnings.swapLimit)).toBe(true);
    const v1 = cgroup as CgroupV1;
    const read = (ctl: string, file: string): string => readFileSync(path.join(v1.dirOf(ctl) ?? '', file), 'utf8').trim();
    expect(read('memory', 'memory.limit_in_bytes')).toBe(String(64 * MiB));
    if (sys.swapLimit) expect(read('memory', 'memory.memsw.limit_in_bytes')).toBe(String(128 * MiB));
    expect(read('memory', 'memory.soft_limit_in_bytes')).toBe(String(32 * MiB));
    expect(read('cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(read('cpu', 'cpu.cfs_period_us')).toBe('100000');
    expect(read('cpu', 'cpu.shares')).toBe('512');
    expect(read('cpuset', 'cpuset.cpus')).toBe('0');
    expect(read('pids', 'pids.max')).toBe('100');
    // What dockerd 20.10 + runc left in devices.list, plus the --device-cgroup-rule.
    expect(read('devices', 'devices.list').split('\n').sort()).toEqual(
      ['b *:* m', 'c *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:1 rwm', 'c 5:2 rwm', 'c 10:200 rwm', 'c 136:* rwm', 'c 42:* rwm'].sort(),
    );
    // A live update grows memory and memsw in the right order.
    const merged = mergeResourcesUpdate(
      { Memory: 64 * MiB, MemorySwap: 128 * MiB },
      { Memory: 256 * MiB, MemorySwap: 512 * MiB },
    );
    expect(await cgroup.update(await hostConfigToLinuxResources(merged, { update: true }))).toEqual([]);
    expect(read('memory', 'memory.limit_in_bytes')).toBe(String(256 * MiB));
  });

  it('destroy kills what is still running and removes the directories', async () => {
    manager = createCgroupManager();
    const { cgroup } = await manager.create(`${top}/busy`, { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }] });
    const devList = readFileSync(path.join((cgroup as CgroupV1).dirOf('devices') ?? '', 'devices.list'), 'utf8');
    expect(devList.trim()).toBe('c 1:3 rwm');
    child = spawn('sleep', ['30'], { stdio: 'ignore' });
    if (child.pid === undefined) throw new Error('spawn failed');
    await cgroup.addProcess(child.pid);
    const exited = waitExit(child);
    await cgroup.destroy();
    expect((await exited).signal).toBe('SIGKILL');
    for (const dir of allDirsFor(`${top}/busy`)) expect(existsSync(dir)).toBe(false);
  });
});

async function pollCgroupEmpty(cgroup: Cgroup): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while ((await cgroup.pids()).length > 0) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}
