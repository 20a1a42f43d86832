// Defence in depth in berth-shim (issue 19): the masks and /dev/console are mounted by fd after checking
// what was opened, the sealed re-exec is decided by the seals of /proc/self/exe (not by an environment
// variable), and `exec` joins the namespaces of the process berthd checked (not of a recycled pid).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { procStartTime } from '../../src/runtime/executor.js';
import { compileLaunchPlan, writeLaunchFiles } from '../../src/runtime/launch-plan.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

const SHIM = fileURLToPath(new URL('../../native/build/berth-shim', import.meta.url));

/** A host loop that keeps replacing dir/<name> with a symlink to `target` (rename over it, as a racing
 * container sharing the directory would). Returns the process; the caller kills it by pid. */
function swapper(dir: string, names: string[], target: string): ChildProcess {
  const script = 'chdir shift; my $t = shift; while (1) { for my $n (@ARGV) { symlink($t, "$n.swap"); rename("$n.swap", $n); } }';
  return spawn('perl', ['-e', script, dir, target, ...names], { stdio: 'ignore' });
}

async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGKILL');
  await done;
}

describe('berth-shim hardening through the docker CLI', () => {
  let d: TestDaemon;
  let tmp: string;

  beforeAll(async () => {
    d = await startDaemon();
    tmp = mkdtempSync(join(tmpdir(), 'berth-harden-'));
    const r = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    const left = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (left.length > 0) await d.docker(['rm', '-f', ...left]);
    await d.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('never masks a path with a file that replaced /dev/null (CVE-2025-31133 pattern)', async () => {
    // /dev is a host directory that an attacker keeps rewriting: /dev/null becomes a symlink to a file
    // the attacker chose between the shim creating the node and masking /proc/keys with it.
    const dev = join(tmp, 'dev');
    rmSync(dev, { recursive: true, force: true });
    mkdirSync(dev);
    writeFileSync(join(dev, 'marker'), 'MARKER\n');
    const attacker = swapper(dev, ['null'], 'marker');
    const outcomes = { clean: 0, refused: 0 };
    try {
      for (let i = 0; i < 40; i++) {
        const r = await d.docker(['run', '--rm', '-v', `${dev}:/dev`, 'busybox', 'sh', '-c', 'cat /proc/keys /proc/timer_list; echo done']);
        expect(r.stdout, `run ${i}: the mask bound the attacker's file`).not.toContain('MARKER');
        if (r.code === 0) {
          expect(r.stdout).toBe('done\n');
          outcomes.clean++;
        } else {
          // refused before the command ran, with a message naming the step
          expect(r.stderr).toMatch(/\/dev\/null/);
          outcomes.refused++;
        }
      }
    } finally {
      await stopProcess(attacker);
    }
    expect(readFileSync(join(dev, 'marker'), 'utf8')).toBe('MARKER\n');
    expect(outcomes.clean + outcomes.refused).toBe(40);
  });
});

describe('joining another container\'s namespaces through the docker CLI', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
    const r = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    const left = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (left.length > 0) await d.docker(['rm', '-f', ...left]);
    await d.stop();
  });

  it('--pid/--ipc container:<id> join the running init pinned by its start time', async () => {
    const a = await d.docker(['run', '-d', 'busybox', 'sleep', '60']);
    expect(a.code, a.stderr).toBe(0);
    const owner = a.stdout.trim();
    const b = await d.docker(['run', '-d', '--pid', `container:${owner}`, '--ipc', `container:${owner}`, 'busybox', 'sleep', '60']);
    expect(b.code, b.stderr).toBe(0);
    const joiner = b.stdout.trim();
    // the plan names the owner's init and its start time instead of /proc/<pid>/ns paths
    const plan = readFileSync(join(d.dataRoot, 'containers', joiner, 'plan'), 'latin1');
    expect(plan).toMatch(/\nns_proc \d+\n\d+ \d+\n/);
    expect([...plan.matchAll(/\nns_join_proc \d+\n(\w+)(?=\n)/g)].map((m) => m[1]).sort()).toEqual(['ipc', 'pid']);
    const ipc = async (id: string): Promise<string> => (await d.docker(['exec', id, 'readlink', '/proc/self/ns/ipc'])).stdout;
    expect(await ipc(joiner)).toBe(await ipc(owner));
    const seen = await d.docker(['exec', joiner, 'sh', '-c', 'ps -o args | grep -c "^sleep 60"']);
    expect(seen.code, seen.stderr).toBe(0);
    expect(seen.stdout).toBe('2\n');
    await d.docker(['rm', '-f', joiner, owner]);
  });
});

describe('berth-shim sealed re-exec', () => {
  it('runs from a sealed memfd even when started from disk with the old "already sealed" variable set', async () => {
    const spawner = spawn(SHIM, ['spawner'], { stdio: ['pipe', 'pipe', 'ignore'], env: { ...process.env, _BERTH_SHIM_SEALED: '1' } });
    try {
      const pid = spawner.pid ?? 0;
      // the spawner answers a request only once it runs (from the sealed copy): a malformed one is enough
      const answer = new Promise<string>((resolve) => {
        let acc = '';
        spawner.stdout?.on('data', (b: Buffer) => {
          acc += b.toString();
          if (acc.includes('\n')) resolve(acc);
        });
      });
      spawner.stdin?.write('probe\n');
      expect(await answer).toBe('probe err 128 malformed spawn request\n');
      expect(readlinkSync(`/proc/${pid}/exe`)).toMatch(/^\/memfd:berth-shim/);
    } finally {
      const gone = new Promise((r) => spawner.once('exit', r));
      spawner.stdin?.end();
      await gone;
    }
  });
});

/** Runs `berth-shim exec` for a plan joining the uts namespace of `pid` (said to have started at `start`)
 * and resolves with its report line. */
async function execReport(dir: string, pid: number, start: number): Promise<string> {
  const records = compileLaunchPlan(
    { ociVersion: '1.0.2-dev', process: { args: ['/bin/true'], cwd: '/', user: { uid: 0, gid: 0 }, env: [] } },
    {
      mode: 'exec',
      id: 't/e',
      socketPath: join(dir, 'exec.sock'),
      exitFile: join(dir, 'exit.json'),
      tty: false,
      openStdin: false,
      nsOf: { pid, startTime: start, namespaces: ['uts', 'mnt'] },
    },
  );
  const plan = await writeLaunchFiles(dir, undefined, records);
  const shim = spawn(SHIM, ['exec', plan], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  let report = '';
  shim.stdio[3]?.on('data', (b: Buffer) => (report += b.toString()));
  await new Promise((r) => shim.once('exit', r));
  return report;
}

describe('berth-shim exec joins only the process berthd checked', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-nsjoin-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a pid now held by another process (start time differs) and a pid that is gone, without running anything', async () => {
    // a process in namespaces of its own, standing for the container's init
    const init = spawn('unshare', ['--uts', '--mount', 'sleep', '60'], { stdio: 'ignore' });
    try {
      const pid = init.pid ?? 0;
      let start: number | undefined;
      for (let i = 0; i < 200 && (start = procStartTime(pid)) === undefined; i++) await new Promise((r) => setImmediate(r));
      expect(start).toBeDefined();
      // the pid now names a process that started at another time: a recycled pid
      const recycled = await execReport(dir, pid, (start ?? 0) + 1);
      expect(recycled).toMatch(new RegExp(`^err 128 join the namespaces of process ${pid}: it is not the container's process any more`));
      const exit = JSON.parse(readFileSync(join(dir, 'exit.json'), 'utf8')) as { exitCode: number; error: string };
      expect(exit.exitCode).toBe(128);
      expect(exit.error).toMatch(/not the container's process/);
      // the process is gone
      const gone = new Promise((r) => init.once('exit', r));
      init.kill('SIGKILL');
      await gone;
      expect(await execReport(dir, pid, start ?? 0)).toMatch(/^err 128 join the namespaces of process \d+: it is not the container's process any more/);
    } finally {
      if (init.exitCode === null && init.signalCode === null) init.kill('SIGKILL');
    }
  });
});
