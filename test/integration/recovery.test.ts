import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { waitForValue } from '../helpers/wait.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

function readOr(path: string, fallback = ''): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** Pids of the direct children of `pid` (every thread's children list). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    for (const c of readOr(`/proc/${pid}/task/${t}/children`).split(/\s+/)) if (c !== '') out.push(Number(c));
  }
  return out;
}

function cmdline(pid: number): string[] {
  return readOr(`/proc/${pid}/cmdline`).split('\0').filter((s) => s !== '');
}

/** The `berth-shim spawner` child of the daemon, if one runs. */
function spawnerPid(d: TestDaemon): number | undefined {
  const daemonPid = d.process?.pid;
  if (daemonPid === undefined) return undefined;
  return childrenOf(daemonPid).find((p) => {
    const argv = cmdline(p);
    return (argv[0] ?? '').endsWith('berth-shim') && argv[1] === 'spawner';
  });
}

function alive(pid: number): boolean {
  const stat = readOr(`/proc/${pid}/stat`);
  if (stat === '') return false;
  // state field after the ")" of the comm: a zombie is as good as gone
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

interface Created {
  id: string;
  dataRoot: string;
  execRoot: string;
  pids: number[];
}

describe('recovery paths through a real berthd and the docker CLI', () => {
  let d: TestDaemon;
  const created: Created[] = [];
  let shimsSeen = 0;

  const ok = async (daemon: TestDaemon, args: string[]): Promise<string> => {
    const r = await daemon.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  /** Remembers a container (and its init pid while it runs) for the final leftovers check. */
  const track = async (daemon: TestDaemon, name: string): Promise<string> => {
    const out = (await ok(daemon, ['inspect', '-f', '{{.Id}} {{.State.Pid}}', name])).trim().split(' ');
    const id = out[0] ?? '';
    const pid = Number(out[1] ?? '0');
    let c = created.find((x) => x.id === id);
    if (!c) {
      c = { id, dataRoot: daemon.dataRoot, execRoot: daemon.execRoot, pids: [] };
      created.push(c);
    }
    if (pid > 0 && !c.pids.includes(pid)) {
      c.pids.push(pid);
      // its supervisor: the berth-shim that is the init process's parent
      const stat = readOr(`/proc/${pid}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '0');
      if (ppid > 0 && (cmdline(ppid)[0] ?? '').endsWith('berth-shim')) {
        c.pids.push(ppid);
        shimsSeen++;
      }
    }
    return id;
  };
  const state = async (daemon: TestDaemon, name: string): Promise<string> =>
    (await ok(daemon, ['inspect', '-f', '{{.State.Status}}', name])).trim();

  beforeAll(async () => {
    d = await startDaemon();
    await ok(d, ['load', '-i', await busyboxImageTar()]);
  });

  afterAll(async () => {
    if (!d) return;
    if (d.process && d.process.exitCode === null && d.process.signalCode === null) {
      const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
    }
    await d.stop();
  });

  it('a SIGKILLed shim spawner leaves running containers alone and a fresh one serves the next start and exec', async () => {
    await ok(d, ['run', '-d', '--name', 'sp-run', 'busybox', 'sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done']);
    await track(d, 'sp-run');
    const old = await waitForValue('the shim spawner', () => spawnerPid(d));

    process.kill(old, 'SIGKILL');
    await waitForValue('the spawner to die', () => (alive(old) ? undefined : true));

    expect(await state(d, 'sp-run')).toBe('running');
    // logs continue: a tick written after the kill shows up
    const ticks = async (): Promise<number> => (await ok(d, ['logs', 'sp-run'])).split('\n').filter((l) => l.startsWith('tick ')).length;
    const before = await ticks();
    await waitForValue('new log lines after the spawner died', async () => ((await ticks()) > before + 2 ? true : undefined));

    // exec goes through a new spawner
    expect((await ok(d, ['exec', 'sp-run', 'echo', 'exec-ok'])).trim()).toBe('exec-ok');
    const fresh = await waitForValue('a new shim spawner', () => spawnerPid(d));
    expect(fresh).not.toBe(old);

    const r = await d.docker(['run', '--rm', 'busybox', 'echo', 'ok']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
    expect(await state(d, 'sp-run')).toBe('running');

    await ok(d, ['rm', '-f', 'sp-run']);
  });

  it('a removed container directory goes through containers-trash and the trash is emptied at daemon start', async () => {
    const trash = join(d.dataRoot, 'containers-trash');
    await ok(d, ['create', '--name', 'trash-c', 'busybox', 'true']);
    const id = await track(d, 'trash-c');
    expect(existsSync(join(d.dataRoot, 'containers', id))).toBe(true);
    await ok(d, ['rm', 'trash-c']);
    expect(existsSync(join(d.dataRoot, 'containers', id))).toBe(false);
    await waitForValue('the trash to be emptied in the background', () =>
      (existsSync(trash) ? readdirSync(trash) : []).some((n) => n.startsWith(id)) ? undefined : true,
    );

    // a removal that the daemon did not finish: a leftover in the trash while berthd is down
    await d.signal('SIGTERM');
    const fake = join(trash, 'leftover-0123abcd');
    mkdirSync(join(fake, 'rootfs', 'deep', 'er'), { recursive: true });
    writeFileSync(join(fake, 'rootfs', 'deep', 'er', 'file'), 'x'.repeat(4096));
    writeFileSync(join(fake, 'config.v2.json'), '{}');
    await d.launch();
    await waitForValue('the leftover to be deleted after the restart', () => (existsSync(fake) ? undefined : true));
  });

  it('after a daemon restart an unless-stopped container stopped by docker stop stays stopped; a running one keeps running', async () => {
    await ok(d, ['run', '-d', '--name', 'us-stopped', '--restart', 'unless-stopped', 'busybox', 'sleep', '1000']);
    await track(d, 'us-stopped');
    await ok(d, ['stop', '-t', '1', 'us-stopped']);
    expect(await state(d, 'us-stopped')).toBe('exited');
    await ok(d, ['run', '-d', '--name', 'us-running', '--restart', 'unless-stopped', 'busybox', 'sleep', '1000']);
    await track(d, 'us-running');
    const runningPid = (await ok(d, ['inspect', '-f', '{{.State.Pid}}', 'us-running'])).trim();
    // An `always` container stopped by hand IS started by the daemon restart (dockerd's rule): it marks
    // that the daemon's start-up pass over the restart policies has run.
    await ok(d, ['run', '-d', '--name', 'al-stopped', '--restart', 'always', 'busybox', 'sleep', '1000']);
    await track(d, 'al-stopped');
    await ok(d, ['stop', '-t', '1', 'al-stopped']);

    await d.signal('SIGTERM');
    await d.launch();

    await waitForValue('the always container to be started by the restart', async () => ((await state(d, 'al-stopped')) === 'running' ? true : undefined));
    await track(d, 'al-stopped');
    expect(await state(d, 'us-running')).toBe('running');
    // re-adopted, not started again
    expect((await ok(d, ['inspect', '-f', '{{.State.Pid}}', 'us-running'])).trim()).toBe(runningPid);
    expect(await state(d, 'us-stopped')).toBe('exited');
    expect((await ok(d, ['exec', 'us-running', 'echo', 'alive'])).trim()).toBe('alive');

    await ok(d, ['rm', '-f', 'us-stopped', 'us-running', 'al-stopped']);
  });

  it('docker events --since/--until returns the events from before a daemon restart', async () => {
    const t0 = Math.floor(Date.now() / 1000) - 1;
    await ok(d, ['create', '--name', 'ev-c', 'busybox', 'true']);
    const id = await track(d, 'ev-c');
    await ok(d, ['start', '-a', 'ev-c']);
    await ok(d, ['rm', 'ev-c']);

    await d.signal('SIGTERM');
    await d.launch();

    const until = Math.ceil(Date.now() / 1000) + 1;
    const out = await ok(d, ['events', '--since', String(t0), '--until', String(until), '--filter', `container=${id}`, '--format', '{{.Type}} {{.Action}} {{.Actor.ID}}']);
    const actions = out.split('\n').filter(Boolean).map((l) => l.split(' '));
    expect(actions.every((a) => a[0] === 'container' && a[2] === id)).toBe(true);
    const names = actions.map((a) => a[1]);
    expect(names).toEqual(expect.arrayContaining(['create', 'start', 'die', 'destroy']));
    expect(names.indexOf('create')).toBeLessThan(names.indexOf('start'));
    expect(names.indexOf('die')).toBeLessThan(names.indexOf('destroy'));
  });

  describe('the vfs storage driver end to end', () => {
    let v: TestDaemon;

    beforeAll(async () => {
      v = await startDaemon({ config: { 'storage-driver': 'vfs' } });
    });

    afterAll(async () => {
      if (!v) return;
      const ids = (await v.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await v.docker(['rm', '-f', ...ids]);
      await v.stop();
    });

    it('loads, runs, diffs, copies, removes and untags busybox on vfs and leaves no container files', async () => {
      await ok(v, ['load', '-i', await busyboxImageTar()]);
      expect(await ok(v, ['info'])).toMatch(/Storage Driver: vfs/);

      const hi = await v.docker(['run', '--rm', 'busybox', 'echo', 'hi']);
      expect(hi.code, hi.stderr).toBe(0);
      expect(hi.stdout.trim()).toBe('hi');

      await ok(v, ['run', '--name', 'vfs-w', 'busybox', 'sh', '-c', 'echo vfs-data > /new.txt && rm /bin/vi']);
      const id = await track(v, 'vfs-w');

      const diff = await v.docker(['diff', 'vfs-w']);
      if (diff.code === 0) {
        const lines = diff.stdout.split('\n');
        expect(lines).toContain('A /new.txt');
        expect(lines).toContain('D /bin/vi');
      } else {
        // dockerd-style: a clear reason, not an internal error
        expect(diff.stderr).toMatch(/vfs|not (implemented|supported)/i);
        expect(diff.stderr).not.toMatch(/internal server error/i);
      }

      const cp = await v.docker(['cp', 'vfs-w:/new.txt', '-']);
      expect(cp.code, cp.stderr).toBe(0);
      expect(cp.stdout).toContain('vfs-data');
      // and into the stopped container's own tree (not a layer nobody reads)
      const hostFile = join(v.dir, 'to-vfs.txt');
      writeFileSync(hostFile, 'from-host\n');
      await ok(v, ['cp', hostFile, 'vfs-w:/tmp/in.txt']);
      const back = await v.docker(['cp', 'vfs-w:/tmp/in.txt', '-']);
      expect(back.code, back.stderr).toBe(0);
      expect(back.stdout).toContain('from-host');
      expect(readFileSync(join(v.dataRoot, 'containers', id, 'fs', 'tmp', 'in.txt'), 'utf8')).toBe('from-host\n');

      // the testcontainers pattern: create, copy a file in, start
      await ok(v, ['create', '--name', 'vfs-c', 'busybox', 'cat', '/tmp/in.txt']);
      await track(v, 'vfs-c');
      const seen = await v.docker(['cp', 'vfs-c:/etc/passwd', '-']);
      expect(seen.code, seen.stderr).toBe(0);
      await ok(v, ['cp', hostFile, 'vfs-c:/tmp/in.txt']);
      expect(await ok(v, ['start', '-a', 'vfs-c'])).toBe('from-host\n');
      await ok(v, ['rm', 'vfs-c']);

      await ok(v, ['rm', 'vfs-w']);
      const trash = join(v.dataRoot, 'containers-trash');
      await waitForValue('the vfs container files to be gone', () =>
        !existsSync(join(v.dataRoot, 'containers', id)) && !(existsSync(trash) ? readdirSync(trash) : []).some((n) => n.startsWith(id)) ? true : undefined,
      );
      expect((await ok(v, ['ps', '-aq'])).trim()).toBe('');

      await ok(v, ['rmi', 'busybox']);
      expect((await ok(v, ['images', '-q'])).trim()).toBe('');
      const layers = join(v.dataRoot, 'layers');
      expect(readdirSync(layers).filter((n) => n !== 'l')).toEqual([]);
    });
  });

  it('leaves no process, mount, cgroup or netns file behind for the containers it created', async () => {
    expect(created.length).toBeGreaterThan(0);
    // the shims were seen (the check below is not vacuous)
    expect(shimsSeen).toBeGreaterThan(0);
    const cgroupRoots = readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c));
    for (const c of created) {
      for (const pid of c.pids) await waitForValue(`container process ${pid} to end`, () => (alive(pid) ? undefined : true));
      await waitForValue(`cgroups of ${c.id} to be removed`, () =>
        [...cgroupRoots.map((r) => join(r, 'berth', c.id)), join('/sys/fs/cgroup/berth', c.id)].some((p) => existsSync(p)) ? undefined : true,
      );
      expect(existsSync(join(c.execRoot, 'netns', c.id))).toBe(false);
      expect(existsSync(join(c.dataRoot, 'containers', c.id))).toBe(false);
    }
    for (const root of new Set(created.flatMap((c) => [c.dataRoot, c.execRoot]))) {
      await waitForValue(`mounts under ${root} to go`, () => {
        const mounts = readOr('/proc/mounts').split('\n').filter((l) => l.includes(root));
        // the container ids must not appear at all; the daemon's own mounts (its exec root, the netns dir) may
        return mounts.some((l) => created.some((c) => l.includes(c.id))) ? undefined : true;
      });
    }
    // no process anywhere names one of the containers (shims carry the id in their paths)
    const stray = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        const argv = readOr(`/proc/${p}/cmdline`);
        return created.some((c) => argv.includes(c.id)) && alive(Number(p));
      });
    expect(stray).toEqual([]);
  });
});
