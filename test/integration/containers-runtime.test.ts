import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { waitFor } from '../helpers/wait.js';

/** Issue "Executor": confinement defaults, resource flags and supervision across daemon restarts, via the CLI. */
describe('container runtime through the docker CLI', () => {
  let d: TestDaemon;
  const ok = async (...args: string[]): Promise<string> => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const run = (...args: string[]) => ok('run', '--rm', ...args);

  beforeAll(async () => {
    d = await startDaemon();
    await ok('load', '-i', await busyboxImageTar());
  });
  afterAll(async () => {
    const left = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (left.length > 0) await d.docker(['rm', '-f', ...left]);
    await d.stop();
  });

  it("confines a default container as Docker does", async () => {
    const status = await run('busybox', 'grep', '-E', '^(CapEff|CapBnd|CapInh|Seccomp):', '/proc/self/status');
    expect(status).toMatch(/CapInh:\s+0000000000000000/);
    expect(status).toMatch(/CapEff:\s+00000000a80425fb/);
    expect(status).toMatch(/CapBnd:\s+00000000a80425fb/);
    expect(status).toMatch(/Seccomp:\s+2/);
    const refused = await run('busybox', 'sh', '-c', 'mkdir -p /m; mount -t tmpfs x /m; echo mount=$?; unshare -m true; echo unshare=$?');
    expect(refused).toContain('mount=1');
    expect(refused).toContain('unshare=1');
    expect(await run('busybox', 'sh', '-c', 'cat /proc/keys /proc/timer_list | wc -c')).toBe('0\n');
    expect(await run('busybox', 'sh', '-c', 'echo 1 > /proc/sys/kernel/shmmax 2>/dev/null; echo $?')).toBe('1\n');
    expect(await run('busybox', 'sh', '-c', 'ls /proc | grep -E "^[0-9]+$" | wc -l')).toMatch(/^\s*[1-5]\n$/);
    expect(await run('busybox', 'sh', '-c', 'echo $$')).toBe('1\n');
    expect((await run('busybox', 'ls', '/dev')).split('\n').filter(Boolean).sort()).toEqual(
      ['fd', 'full', 'mqueue', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'].concat(
        existsSync('/proc/kcore') ? ['core'] : [],
      ).sort(),
    );
  });

  it("the shim runs as a batch task (SCHED_BATCH) while the container's processes, run and exec, keep the normal policy", async () => {
    /** The scheduling policy in a /proc/<pid>/stat line (field 41; counted after the command's closing paren). */
    const policy = (stat: string): number => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
    const id = (await ok('run', '-d', 'busybox', 'sleep', '300')).trim();
    try {
      const init = Number((await ok('inspect', '-f', '{{.State.Pid}}', id)).trim());
      const shim = Number(readFileSync(`/proc/${init}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
      expect(policy(readFileSync(`/proc/${shim}/stat`, 'utf8'))).toBe(3); // SCHED_BATCH
      expect(policy(readFileSync(`/proc/${init}/stat`, 'utf8'))).toBe(0); // SCHED_OTHER
      expect(policy(await ok('exec', id, 'cat', '/proc/self/stat'))).toBe(0);
      expect(policy(await ok('exec', id, 'sh', '-c', 'cat /proc/self/stat'))).toBe(0);
    } finally {
      await ok('rm', '-f', id);
    }
    expect(policy(await run('busybox', 'cat', '/proc/self/stat'))).toBe(0);
  });

  it('--privileged grants every capability berthd holds, even without CAP_SYS_RESOURCE', async () => {
    const own = /CapBnd:\s+([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    const out = await run('--privileged', 'busybox', 'sh', '-c', 'grep CapEff /proc/self/status; mkdir -p /m; mount -t tmpfs x /m && echo mounted');
    expect(out).toContain(`CapEff:\t${own}`);
    expect(out).toContain('mounted');
  });

  it('applies capability, seccomp and read-only options', async () => {
    expect(await run('--cap-drop', 'ALL', 'busybox', 'grep', 'CapEff', '/proc/self/status')).toMatch(/0000000000000000/);
    expect(await run('--cap-add', 'NET_ADMIN', 'busybox', 'grep', 'CapEff', '/proc/self/status')).toMatch(/00000000a80435fb/);
    expect(await run('--security-opt', 'seccomp=unconfined', 'busybox', 'grep', 'Seccomp:', '/proc/self/status')).toMatch(/Seccomp:\s+0/);
    const ro = await d.docker(['run', '--rm', '--read-only', 'busybox', 'touch', '/x']);
    expect(ro.code).toBe(1);
    expect(ro.stderr).toContain('Read-only file system');
    expect(await run('--read-only', 'busybox', 'touch', '/tmp/../dev/shm/x')).toBe('');
  });

  it('applies ulimits, pids and cpu limits, shm size, sysctls, user, workdir and hostname', async () => {
    expect(await run('--ulimit', 'nofile=1024:2048', 'busybox', 'sh', '-c', 'ulimit -n; ulimit -Hn')).toBe('1024\n2048\n');
    expect(await run('--pids-limit', '10', 'busybox', 'cat', '/sys/fs/cgroup/pids/pids.max')).toBe('10\n');
    expect(await run('--cpus', '0.5', 'busybox', 'cat', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us')).toBe('50000\n');
    expect(await run('--shm-size', '10m', 'busybox', 'sh', '-c', "df -k /dev/shm | tail -1 | awk '{print $2}'")).toBe('10240\n');
    expect(await run('--sysctl', 'net.ipv4.ip_forward=1', 'busybox', 'cat', '/proc/sys/net/ipv4/ip_forward')).toBe('1\n');
    expect(await run('--user', '1234:5678', 'busybox', 'id')).toBe('uid=1234 gid=5678 groups=5678\n');
    expect(await run('--workdir', '/a/b', 'busybox', 'pwd')).toBe('/a/b\n');
    expect(await run('--hostname', 'myhost', 'busybox', 'hostname')).toBe('myhost\n');
    const bad = await d.docker(['run', '--rm', '--sysctl', 'kernel.hostname=x', 'busybox', 'true']);
    expect(bad.code).not.toBe(0);
  });

  it('-m 32m: an allocation beyond it is OOM-killed with exit 137 and OOMKilled true', async () => {
    const r = await d.docker(['run', '--name', 'oomer', '-m', '32m', 'busybox', 'sh', '-c', 'tail /dev/zero']);
    expect(r.code).toBe(137);
    expect((await ok('inspect', '-f', '{{.State.OOMKilled}} {{.State.ExitCode}}', 'oomer')).trim()).toBe('true 137');
    await ok('rm', 'oomer');
  });

  it('leaves no mount, cgroup, process or bundle after docker rm', async () => {
    const id = (await ok('run', '-d', 'busybox', 'sleep', '60')).trim();
    const cgroupDirs = ['memory', 'pids', 'cpu', 'freezer'].map((c) => `/sys/fs/cgroup/${c}/berth/${id}`);
    expect(cgroupDirs.some((p) => existsSync(p))).toBe(true);
    const shimPid = JSON.parse(readFileSync(join(d.dataRoot, 'containers', id, 'shim.json'), 'utf8')).shimPid as number;
    await ok('rm', '-f', id);
    expect(cgroupDirs.filter((p) => existsSync(p))).toEqual([]);
    expect(existsSync(`/proc/${shimPid}`)).toBe(false);
    expect(existsSync(join(d.dataRoot, 'containers', id))).toBe(false);
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(id);
    expect(readdirSync(join(d.execRoot, 's')).filter((f) => f.startsWith(id.slice(0, 12)))).toEqual([]);
  });

  it('keeps containers running and logging through kill -9 of berthd, and manages them after', async () => {
    const survivor = (await ok('run', '-d', '--name', 'survivor', 'busybox', 'sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done')).trim();
    const leaver = (await ok('run', '-d', '--name', 'leaver', 'busybox', 'sh', '-c', 'trap "exit 42" TERM; echo trapping; while true; do sleep 0.1; done')).trim();
    // the SIGTERM below is dropped unless PID 1 has its handler by then
    await waitFor(async () => (await ok('logs', 'leaver')).includes('trapping'));
    await ok('run', '-d', '--name', 'always', '--restart', 'always', 'busybox', 'sleep', '600');
    const leaverPid = Number((await ok('inspect', '-f', '{{.State.Pid}}', 'leaver')).trim());
    await d.signal('SIGKILL');
    // berthd is down: the survivor keeps logging, the leaver exits and its shim records the code.
    const log = join(d.dataRoot, 'containers', survivor, `${survivor}-json.log`);
    const size = readFileSync(log).length;
    await waitFor(() => readFileSync(log).length > size + 100);
    process.kill(leaverPid, 'SIGTERM');
    await waitFor(() => existsSync(join(d.dataRoot, 'containers', leaver, 'exit.json')));
    await d.launch();
    const ps = await ok('ps', '-a', '--format', '{{.Names}} {{.State}}');
    expect(ps).toContain('survivor running');
    expect(ps).toContain('always running');
    expect((await ok('inspect', '-f', '{{.State.ExitCode}} {{.State.Status}}', 'leaver')).trim()).toBe('42 exited');
    const ticks = (await ok('logs', 'survivor')).trim().split('\n');
    expect(ticks.length).toBeGreaterThan(3);
    expect(await ok('exec', 'survivor', 'echo', 'exec-ok')).toBe('exec-ok\n');
    const follow = d.docker(['logs', '-f', '--tail', '0', 'survivor']);
    await waitFor(async () => (await d.docker(['logs', 'survivor'])).stdout.split('\n').length > ticks.length + 2);
    await ok('stop', '-t', '1', 'survivor');
    expect((await follow).code).toBe(0);
    await ok('rm', '-f', 'survivor', 'leaver', 'always');
  });

  it('restarts an always container when berthd starts again after a graceful stop', async () => {
    await ok('run', '-d', '--name', 'phoenix', '--restart', 'always', 'busybox', 'sleep', '600');
    const pid = Number((await ok('inspect', '-f', '{{.State.Pid}}', 'phoenix')).trim());
    await d.signal('SIGTERM');
    process.kill(pid, 'SIGKILL'); // it dies while berthd is down
    await d.launch();
    await waitFor(async () => (await ok('inspect', '-f', '{{.State.Status}}', 'phoenix')).trim() === 'running', 15_000);
    await ok('rm', '-f', 'phoenix');
  });
});
