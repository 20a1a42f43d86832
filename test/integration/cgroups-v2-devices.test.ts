// cgroup v2 device rules enforced by the eBPF program Berth attaches, on the host's real cgroup2 mount
// (/sys/fs/cgroup on pure v2 hosts, /sys/fs/cgroup/unified on v1 hybrid ones: device programs work there too, and
// the test process stays in the root v1 devices cgroup, so only the BPF program decides).

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CgroupV2Manager, compileDeviceFilter, type LinuxDeviceCgroup, parseCgroupMounts, realCgroupFs } from '../../src/runtime/cgroups/index.js';
import { defaultDeviceRules, parseDeviceCgroupRule, runtimeAllowedDeviceRules } from '../../src/containers/devices.js';
import { nativeAddon } from '../../src/native.js';

const isRoot = process.getuid?.() === 0;

function cgroup2Mount(): string | undefined {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return '/sys/fs/cgroup';
  return parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8')).unified?.mountPoint;
}
const mountPoint = isRoot ? cgroup2Mount() : undefined;
const skipReason = !isRoot ? 'needs root' : mountPoint === undefined ? 'no cgroup2 mount' : '';

const PROBE = `
read x
cat /dev/null && echo null-ok
echo "zero-bytes=$(head -c 4 /dev/zero | wc -c)"
echo "kmsg: $( (exec 3</dev/kmsg) 2>&1 && echo opened)"
mknod "$T/kmsg" c 1 11 2>&1 && echo mknod-c-ok
echo "kmsg-node: $( (exec 3<"$T/kmsg") 2>&1 && echo opened)"
mknod "$T/loop" b 7 0 2>&1 && echo mknod-b-ok
`;

function waitExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

describe.skipIf(skipReason !== '')(`cgroup v2 device filter on the real kernel${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const rel = `berth-devtest-${randomBytes(4).toString('hex')}`;
  const dir = path.join(mountPoint ?? '/nonexistent', rel);
  const manager = new CgroupV2Manager({ mountPoint: mountPoint ?? '/nonexistent', fs: realCgroupFs });
  const children: ChildProcess[] = [];
  const tmps: string[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await waitExit(c);
    }
    // Removing the cgroup detaches its programs.
    await manager.open(rel).destroy();
    expect(existsSync(dir), `${dir} left behind`).toBe(false);
    for (const t of tmps.splice(0)) rmSync(t, { recursive: true, force: true });
  });

  /** Runs PROBE in a shell that is moved into `cgroupDir` (if given) before it opens anything. */
  async function probe(cgroupDir: string | undefined): Promise<string> {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-devtest-'));
    tmps.push(tmp);
    const child = spawn('sh', ['-c', PROBE], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, T: tmp, LC_ALL: 'C' } });
    children.push(child);
    if (child.pid === undefined) throw new Error('spawn failed');
    let out = '';
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    if (cgroupDir !== undefined) {
      writeFileSync(path.join(cgroupDir, 'cgroup.procs'), String(child.pid));
      expect(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8')).toContain(`0::/${rel}\n`);
    }
    child.stdin?.end('go\n');
    await waitExit(child);
    return out;
  }

  const dockerRules = (...extra: LinuxDeviceCgroup[]): LinuxDeviceCgroup[] => [
    ...defaultDeviceRules(),
    ...extra,
    ...runtimeAllowedDeviceRules(),
  ];

  it("a container cgroup with Docker's rules reads /dev/null and /dev/zero but gets EPERM on /dev/kmsg", async () => {
    // Control: outside the cgroup root may open /dev/kmsg, so a denial below is the program's doing.
    expect(await probe(undefined)).toContain('kmsg: opened');

    const { warnings } = await manager.create(rel, { devices: dockerRules() });
    expect(warnings).toEqual([]);
    const out = await probe(dir);
    expect(out).toContain('null-ok');
    expect(out).toContain('zero-bytes=4');
    expect(out).toMatch(/kmsg: .*\/dev\/kmsg: Operation not permitted/);
    expect(out).not.toContain('kmsg: opened');
    // runc's `c *:* m` lets the node be made, but opening it is still denied.
    expect(out).toContain('mknod-c-ok');
    expect(out).toMatch(/kmsg-node: .*kmsg: Operation not permitted/);
    expect(out).toContain('mknod-b-ok');
  });

  it("with Docker's rules alone mknod is denied too", async () => {
    await manager.create(rel, { devices: defaultDeviceRules() });
    const out = await probe(dir);
    expect(out).toContain('null-ok');
    expect(out).toMatch(/mknod: .*kmsg.*Operation not permitted/);
    expect(out).toMatch(/mknod: .*loop.*Operation not permitted/);
    expect(out).not.toContain('mknod-b-ok');
  });

  it('update replaces the program (one Berth program stays attached) and the new rules apply', async () => {
    const { cgroup } = await manager.create(rel, { devices: dockerRules() });
    expect(await cgroup.update({ devices: dockerRules(parseDeviceCgroupRule('c 1:11 r')) })).toEqual([]);
    const out = await probe(dir);
    expect(out).toContain('kmsg: opened');
    expect(out).toContain('null-ok');
    // Attaching once more replaces exactly the one program update left.
    expect(nativeAddon().attachDeviceFilter(dir, compileDeviceFilter(dockerRules()))).toBe(1);
    expect(await probe(dir)).toMatch(/kmsg: .*Operation not permitted/);
  });

  it('reports the failing step and errno', () => {
    expect(() => nativeAddon().attachDeviceFilter(`${dir}-missing`, Buffer.alloc(8))).toThrow(/ENOENT.*open/);
  });
});
