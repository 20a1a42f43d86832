// The executor end to end: real berth-shim processes, overlay rootfs from the busybox fixture,
// namespaces, cgroups (the host's layout), Docker's default confinement, the control socket,
// TTYs, exec, adoption by a new Executor after a simulated berthd restart, and clean deletion.
import { waitFor } from '../helpers/wait.js';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readlinkSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxRootfs } from '../helpers/busybox-image.js';
import { DEFAULT_CAPABILITIES, tweakCapabilities } from '../../src/runtime/capabilities.js';
import { createCgroupManager, type CgroupManager } from '../../src/runtime/cgroups/index.js';
import {
  DEFAULT_DEVICE_CGROUP_RULES,
  DEFAULT_PATH,
  DEFAULT_READONLY_PATHS,
  defaultMaskedPaths,
  defaultMounts,
  defaultNetSysctls,
  defaultNamespaces,
  etcBindMount,
} from '../../src/runtime/defaults.js';
import { ContainerStartError, Executor, type ExitStatus, type OutputChunk } from '../../src/runtime/executor.js';
import type { OciProcess, OciSpec } from '../../src/runtime/oci-spec.js';
import { defaultSeccompProfile, profileToOci } from '../../src/runtime/seccomp/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SHIM = join(ROOT, 'native/build/berth-shim');
const INIT = join(ROOT, 'native/build/berth-init');
const isRoot = process.getuid?.() === 0;
const log = pino({ level: 'silent' });

let tmp: string;
let execRoot: string;
let lower: string;
let ex: Executor;
let cgroups: CgroupManager | undefined;
const created: string[] = [];

function newId(): string {
  return randomBytes(32).toString('hex');
}

function seccompFor(caps: string[]): ReturnType<typeof profileToOci> {
  return profileToOci(defaultSeccompProfile(), { arch: process.arch, capabilities: caps, kernel: os.release() });
}

interface SpecOpts {
  args: string[];
  user?: { uid: number; gid: number; additionalGids?: number[] };
  cwd?: string;
  capAdd?: string[];
  hostname?: string;
  tty?: boolean;
  init?: boolean;
  /** A host directory bound at /dev in place of the tmpfs (a /dev another party can rewrite). */
  devDir?: string;
}

function makeSpec(id: string, bundle: string, o: SpecOpts): { spec: OciSpec; caps: string[] } {
  const caps = tweakCapabilities(DEFAULT_CAPABILITIES, o.capAdd ?? [], []);
  for (const f of ['hosts', 'hostname', 'resolv.conf']) writeFileSync(join(bundle, f), f === 'hostname' ? `${id.slice(0, 12)}\n` : '');
  const hostname = o.hostname ?? id.slice(0, 12);
  const mounts = [
    ...defaultMounts().map((m) =>
      m.destination === '/dev' && o.devDir ? { destination: '/dev', type: 'bind', source: o.devDir, options: ['rbind', 'rprivate'] } : m,
    ),
    etcBindMount('/etc/resolv.conf', join(bundle, 'resolv.conf'), false),
    etcBindMount('/etc/hostname', join(bundle, 'hostname'), false),
    etcBindMount('/etc/hosts', join(bundle, 'hosts'), false),
  ];
  const args = o.init ? ['/sbin/docker-init', '--', ...o.args] : o.args;
  if (o.init) mounts.push({ destination: '/sbin/docker-init', type: 'bind', source: INIT, options: ['bind', 'ro'] });
  const spec: OciSpec = {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: o.tty ?? false,
      user: o.user ?? { uid: 0, gid: 0, additionalGids: [0] },
      args,
      env: [`PATH=${DEFAULT_PATH}`, `HOSTNAME=${hostname}`],
      cwd: o.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      oomScoreAdj: 0,
    },
    root: { path: join(bundle, 'rootfs') },
    hostname,
    mounts,
    linux: {
      sysctl: defaultNetSysctls(),
      resources: { devices: [...DEFAULT_DEVICE_CGROUP_RULES] },
      cgroupsPath: `berth-test/${id}`,
      namespaces: defaultNamespaces(cgroups?.version === '2'),
      maskedPaths: defaultMaskedPaths(),
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
  return { spec, caps };
}

interface Made {
  id: string;
  bundle: string;
  logPath: string;
}

async function createContainer(o: SpecOpts & { openStdin?: boolean; stdinOnce?: boolean; seccomp?: boolean; logMax?: number; logFiles?: number }, exr = ex): Promise<Made> {
  const id = newId();
  const bundle = join(tmp, id.slice(0, 12));
  mkdirSync(join(bundle, 'upper'), { recursive: true });
  mkdirSync(join(bundle, 'work'), { recursive: true });
  const { spec: base, caps } = makeSpec(id, bundle, o);
  // the Executor compiles the spec's seccomp profile itself
  const spec = o.seccomp === false ? base : { ...base, linux: { ...base.linux, seccomp: seccompFor(caps) } };
  const logPath = join(bundle, `${id}-json.log`);
  created.push(id);
  await exr.create(id, {
    bundleDir: bundle,
    spec,
    rootfs: { type: 'overlay', lowerDirs: [lower], upperDir: join(bundle, 'upper'), workDir: join(bundle, 'work') },
    logPath,
    logOpts: { maxSize: o.logMax ?? 10 * 1024 * 1024, maxFile: o.logFiles ?? 2 },
    tty: o.tty ?? false,
    openStdin: o.openStdin ?? false,
    stdinOnce: o.stdinOnce ?? false,
    ...(o.tty ? { consoleSize: { height: 24, width: 80 } } : {}),
  });
  return { id, bundle, logPath };
}

function readLog(logPath: string): Array<{ log: string; stream: string; time: string }> {
  if (!existsSync(logPath)) return [];
  return readFileSync(logPath, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
}

async function run(o: SpecOpts & { seccomp?: boolean }): Promise<{ st: ExitStatus; out: string; err: string; m: Made }> {
  const m = await createContainer(o);
  await ex.start(m.id);
  const st = await ex.waitExit(m.id);
  const entries = readLog(m.logPath);
  await ex.delete(m.id);
  return {
    st,
    out: entries.filter((e) => e.stream === 'stdout').map((e) => e.log).join(''),
    err: entries.filter((e) => e.stream === 'stderr').map((e) => e.log).join(''),
    m,
  };
}

/** A frame of the shim's socket protocol: type byte, 4-byte big-endian length, payload. */
function shimFrame(type: string, payload: string): Buffer {
  const f = Buffer.alloc(5 + Buffer.byteLength(payload));
  f.write(type, 0, 'latin1');
  f.writeUInt32BE(f.length - 5, 1);
  f.write(payload, 5);
  return f;
}

async function collect(output: NodeJS.ReadableStream, until: (s: string) => boolean, timeoutMs = 10_000): Promise<string> {
  let acc = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for output; got ${JSON.stringify(acc)}`)), timeoutMs);
    const done = (): void => {
      clearTimeout(t);
      resolve(acc);
    };
    output.on('data', (c: OutputChunk) => {
      acc += c.data.toString();
      if (until(acc)) done();
    });
    output.on('end', done);
  });
}

describe.skipIf(!isRoot)('executor (berth-shim)', () => {
  beforeAll(() => {
    execFileSync('make', ['-s', '-C', join(ROOT, 'native')], { stdio: 'inherit' });
    tmp = mkdtempSync('/tmp/bxt-');
    execRoot = join(tmp, 'x');
    lower = busyboxRootfs();
    try {
      cgroups = createCgroupManager({ log });
    } catch {
      cgroups = undefined;
    }
    ex = new Executor({ execRoot, shimPath: SHIM, initPath: INIT, log, ...(cgroups ? { cgroups } : {}) });
  });

  afterAll(async () => {
    for (const id of created) await ex.delete(id).catch(() => undefined);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    // the parent cgroup the tests' containers lived under, in every hierarchy
    for (const h of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
      try {
        rmdirSync(join('/sys/fs/cgroup', h, 'berth-test'));
      } catch {
        // not there, or not a cgroup hierarchy
      }
    }
  });

  it('runs echo hi and writes the json-file log', async () => {
    const { st, m } = await run({ args: ['echo', 'hi'] });
    expect(st.exitCode).toBe(0);
    const entries = readLog(m.logPath);
    expect(entries).toHaveLength(1);
    expect(entries[0]?.log).toBe('hi\n');
    expect(entries[0]?.stream).toBe('stdout');
    expect(entries[0]?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
  });

  it('splits lines longer than 16 KiB into partial entries and rotates by size', async () => {
    // max-size 20000: the third entry finds the file over the limit and starts a new one
    const m = await createContainer({
      args: ['sh', '-c', "head -c 40000 /dev/zero | tr '\\0' a; echo; printf tail"],
      logMax: 20000,
    });
    await ex.start(m.id);
    expect((await ex.waitExit(m.id)).exitCode).toBe(0);
    const rotated = readLog(m.logPath + '.1');
    const current = readLog(m.logPath);
    expect(rotated.map((e) => e.log.length)).toEqual([16384, 16384]);
    expect(current.map((e) => e.log.length)).toEqual([40000 - 2 * 16384 + 1, 4]);
    const all = [...rotated, ...current];
    const first = all.slice(0, 3).map((e) => e.log);
    expect(first.map((l) => l.length)).toEqual([16384, 16384, 40000 - 2 * 16384 + 1]);
    expect(first[2]?.endsWith('a\n')).toBe(true);
    expect(all.at(-1)?.log).toBe('tail');
    await ex.delete(m.id);
  });

  it('rotates the log by max-size into <log>.1 keeping max-file files', async () => {
    const m = await createContainer({ args: ['sh', '-c', 'i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done'], logMax: 4000 });
    await ex.start(m.id);
    expect((await ex.waitExit(m.id)).exitCode).toBe(0);
    expect(existsSync(m.logPath + '.1')).toBe(true);
    expect(existsSync(m.logPath + '.2')).toBe(false);
    const rotated = readLog(m.logPath + '.1');
    const current = readLog(m.logPath);
    expect(current.at(-1)?.log).toBe('line299\n');
    expect(Number(rotated.at(-1)?.log.slice(4)) + 1).toBe(Number(current[0]?.log.slice(4)));
    await ex.delete(m.id);
  });

  it('shifts rotated logs through <log>.1 .. <log>.(max-file - 1) with no line lost or repeated between them', async () => {
    const m = await createContainer({ args: ['sh', '-c', 'i=0; while [ $i -lt 600 ]; do echo line$i; i=$((i+1)); done'], logMax: 4000, logFiles: 4 });
    await ex.start(m.id);
    expect((await ex.waitExit(m.id)).exitCode).toBe(0);
    expect(existsSync(m.logPath + '.4')).toBe(false);
    const files = [m.logPath + '.3', m.logPath + '.2', m.logPath + '.1', m.logPath].map((f) => readLog(f).map((e) => Number(e.log.slice(4))));
    for (const f of files) expect(f.length).toBeGreaterThan(0);
    const all = files.flat();
    expect(all.at(-1)).toBe(599);
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => (all[0] ?? 0) + i));
    await ex.delete(m.id);
  });

  it('binds the console by fd: a /dev/console swapped for a symlink never redirects the bind', async () => {
    // /dev is a host directory that an attacker keeps rewriting (a /dev shared with another container):
    // console becomes a symlink to `marker` between the shim creating the mount point and binding the pty
    const devDir = join(tmp, 'console-dev');
    mkdirSync(devDir);
    writeFileSync(join(devDir, 'marker'), 'MARKER\n');
    // a bound /dev gets no default nodes or links
    symlinkSync('pts/ptmx', join(devDir, 'ptmx'));
    execFileSync('mknod', ['-m', '666', join(devDir, 'null'), 'c', '1', '3']);
    // remove console, wait for the shim to create its mount point, put the symlink in its place at once
    const script =
      'chdir shift; while (1) { unlink("console"); for (my $i = 0; $i < 200000 && !(-f "console"); $i++) {} ' +
      'symlink("marker", "console.swap"); rename("console.swap", "console"); }';
    const attacker = spawn('perl', ['-e', script, devDir], { stdio: 'ignore' });
    let started = 0;
    try {
      for (let i = 0; i < 30; i++) {
        let r: Awaited<ReturnType<typeof run>>;
        try {
          r = await run({ args: ['stat', '-c', '%F', '/dev/marker'], tty: true, devDir });
        } catch (err) {
          // refused before the command ran, naming the step
          expect(err).toBeInstanceOf(ContainerStartError);
          expect(String(err)).toMatch(/console/);
          continue;
        }
        started++;
        expect(r.out, `run ${i}: the pty was bound over the attacker's target`).toMatch(/^regular file\r?\n$/);
      }
    } finally {
      const gone = new Promise((res) => attacker.once('exit', res));
      attacker.kill('SIGKILL');
      await gone;
    }
    expect(readFileSync(join(devDir, 'marker'), 'utf8')).toBe('MARKER\n');
    expect(started).toBeGreaterThan(0);
  });

  it('passes exit codes through', async () => {
    expect((await run({ args: ['sh', '-c', 'exit 7'] })).st.exitCode).toBe(7);
  });

  it('reports 128+signal for a process killed by SIGKILL', async () => {
    const m = await createContainer({ args: ['sleep', '60'] });
    await ex.start(m.id);
    await ex.kill(m.id, 9);
    const st = await ex.waitExit(m.id);
    expect(st.exitCode).toBe(137);
    expect(st.signal).toBe(9);
    await ex.delete(m.id);
  });

  it("applies Docker's default capabilities and the seccomp filter", async () => {
    const { out } = await run({ args: ['sh', '-c', 'grep -E "^(Cap|Seccomp|NoNewPrivs)" /proc/self/status'] });
    expect(out).toContain('CapEff:\t00000000a80425fb');
    expect(out).toContain('CapBnd:\t00000000a80425fb');
    expect(out).toContain('CapInh:\t0000000000000000');
    expect(out).toMatch(/Seccomp:\t2/);
  });

  it('refuses under the default seccomp profile what the capabilities alone allow', async () => {
    // a user namespace needs no capability: only the filter (unshare is CAP_SYS_ADMIN-gated there) refuses it
    const script = 'unshare -U true; echo u=$?';
    expect((await run({ args: ['sh', '-c', script], seccomp: false })).out).toContain('u=0');
    expect((await run({ args: ['sh', '-c', script] })).out).toMatch(/u=[1-9]/);
  });

  it('grants NET_ADMIN when added', async () => {
    const { out } = await run({ args: ['sh', '-c', 'grep CapEff /proc/self/status; ip addr add 10.9.9.9/32 dev lo; echo rc=$?'], capAdd: ['NET_ADMIN'] });
    expect(out).toContain('CapEff:\t00000000a80435fb');
    expect(out).toContain('rc=0');
    const denied = await run({ args: ['sh', '-c', 'ip addr add 10.9.9.9/32 dev lo; echo rc=$?'] });
    expect(denied.out).not.toContain('rc=0');
  });

  it('runs the command as PID 1 and shows only container processes', async () => {
    const { out } = await run({ args: ['sh', '-c', 'echo pid=$$; ls /proc | grep -E "^[0-9]+$" | wc -l'] });
    expect(out).toContain('pid=1\n');
    const n = Number(out.split('\n')[1]);
    expect(n).toBeGreaterThanOrEqual(2);
    expect(n).toBeLessThanOrEqual(4);
  });

  it('masks /proc/keys, makes /proc/sys read-only and creates only the default devices', async () => {
    const { out, err } = await run({
      args: ['sh', '-c', 'echo keys=$(wc -c < /proc/keys); echo 1 > /proc/sys/kernel/domainname; echo w=$?; ls /dev | tr "\\n" " "'],
    });
    expect(out).toContain('keys=0');
    expect(out).toMatch(/w=[1-9]/);
    expect(err).toMatch(/Read-only file system/);
    const devs = out.split('\n').find((l) => l.includes('null'))?.trim().split(' ').sort();
    expect(devs).toEqual(['console', 'core', 'fd', 'full', 'mqueue', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'].filter((d) => d !== 'console' && (d !== 'core' || existsSync('/proc/kcore'))));
  });

  it('sets the hostname, user, groups and creates the working directory', async () => {
    const { out, st } = await run({
      args: ['sh', '-c', 'hostname; id; pwd; ls -ld /work/dir | cut -c1-10'],
      hostname: 'myhost',
      user: { uid: 1234, gid: 5678, additionalGids: [5678, 10] },
      cwd: '/work/dir',
    });
    expect(st.exitCode).toBe(0);
    expect(out).toContain('myhost\n');
    expect(out).toMatch(/uid=1234 gid=5678 groups=10,5678/);
    expect(out).toContain('/work/dir\n');
  });

  it('fails a missing binary with 127 and the Docker message', async () => {
    let err: unknown;
    try {
      await createContainer({ args: ['nosuch'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ContainerStartError);
    expect((err as ContainerStartError).exitCode).toBe(127);
    expect((err as Error).message).toBe('exec: "nosuch": executable file not found in $PATH');
  });

  it('fails a non-executable command with 126 and a bad working directory with a clear message', async () => {
    await expect(createContainer({ args: ['/etc/passwd'] })).rejects.toMatchObject({
      exitCode: 126,
      message: 'exec: "/etc/passwd": permission denied',
    });
    await expect(createContainer({ args: ['true'], cwd: '/etc/passwd/x' })).rejects.toThrow(/working directory \/etc\/passwd\/x: Not a directory/);
  });

  it('runs the shim from a sealed memfd so the host binary cannot be written through /proc', async () => {
    const m = await createContainer({ args: ['sleep', '60'] });
    const info = JSON.parse(readFileSync(join(m.bundle, 'shim.json'), 'utf8')) as { shimPid: number };
    expect(readlinkSync(`/proc/${info.shimPid}/exe`)).toMatch(/^\/memfd:berth-shim/);
    expect(() => openSync(`/proc/${info.shimPid}/exe`, 'r+')).toThrow(/EPERM|ETXTBSY|EACCES/);
    await ex.delete(m.id);
  });

  it('gives a TTY on /dev/pts/0 and resizes it', async () => {
    const m = await createContainer({ args: ['sh'], tty: true, openStdin: true });
    const a = await ex.attach(m.id, { stdin: true, stdout: true, stderr: true });
    await ex.start(m.id);
    a.stdin?.write('tty; stty size\n');
    let out = await collect(a.output, (s) => s.includes('24 80'));
    expect(out).toContain('/dev/pts/0');
    await ex.resize(m.id, 40, 100);
    a.stdin?.write('stty size; exit 3\n');
    out = await collect(a.output, (s) => s.includes('40 100'));
    expect(out).toContain('40 100');
    expect((await ex.waitExit(m.id)).exitCode).toBe(3);
    a.close();
    const logged = readLog(m.logPath);
    expect(logged.every((e) => e.stream === 'stdout')).toBe(true);
    await ex.delete(m.id);
  });

  it('round-trips stdin through attach and closes it on stdinOnce', async () => {
    const m = await createContainer({ args: ['sh', '-c', 'cat; echo done'], openStdin: true, stdinOnce: true });
    const a = await ex.attach(m.id, { stdin: true, stdout: true, stderr: true });
    await ex.start(m.id);
    a.stdin?.end('hello stdin\n');
    const out = await collect(a.output, (s) => s.includes('done'));
    expect(out).toBe('hello stdin\ndone\n');
    expect((await ex.waitExit(m.id)).exitCode).toBe(0);
    await ex.delete(m.id);
  });

  it('execs into a running container', async () => {
    const m = await createContainer({ args: ['sleep', '60'] });
    await ex.start(m.id);
    const proc: OciProcess = {
      user: { uid: 0, gid: 0 },
      args: ['sh', '-c', 'ps -o pid,args; exit 5'],
      env: [`PATH=${DEFAULT_PATH}`],
      cwd: '/',
      capabilities: { bounding: [...DEFAULT_CAPABILITIES], effective: [...DEFAULT_CAPABILITIES], permitted: [...DEFAULT_CAPABILITIES] },
    };
    const h = await ex.exec(m.id, 'e1', { process: proc, tty: false, openStdin: false });
    const out = await collect(h.output, () => false);
    expect(out).toMatch(/\n\s*1 sleep 60/);
    expect(out).toMatch(/ps -o pid,args/);
    expect((await h.exit).exitCode).toBe(5);
    await ex.kill(m.id, 9);
    await ex.waitExit(m.id);
    await ex.delete(m.id);
  });

  it('never stalls the container on an attached client that stops reading', async () => {
    const m = await createContainer({ args: ['sh', '-c', 'head -c 30000000 /dev/zero; echo end'] });
    const sock = net.createConnection({ path: join(execRoot, 's', `${m.id.slice(0, 24)}.sock`) });
    await new Promise((r) => sock.once('connect', r));
    sock.write(shimFrame('A', '1 1'));
    sock.pause(); // never read: the shim must drop this client rather than block the container
    await ex.start(m.id);
    expect((await ex.waitExit(m.id)).exitCode).toBe(0);
    sock.destroy();
    expect(readLog(m.logPath).at(-1)?.log.endsWith('end\n')).toBe(true);
    await ex.delete(m.id);
  });

  it('execs with a TTY of its own', async () => {
    const m = await createContainer({ args: ['sleep', '60'] });
    await ex.start(m.id);
    const h = await ex.exec(m.id, 'tty1', {
      process: { user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'tty; stty size'], env: [`PATH=${DEFAULT_PATH}`], cwd: '/' },
      tty: true,
      openStdin: false,
      consoleSize: { height: 30, width: 90 },
    });
    const out = await collect(h.output, () => false);
    expect(out).toMatch(/\/dev\/pts\/\d+/);
    expect(out).toContain('30 90');
    expect((await h.exit).exitCode).toBe(0);
    await ex.kill(m.id, 9);
    await ex.waitExit(m.id);
    await ex.delete(m.id);
  });

  it("keeps a finished session's output for a client that writes after the end (lingering close: no EPIPE)", async () => {
    const m = await createContainer({ args: ['sleep', '60'] });
    await ex.start(m.id);
    const proc = (args: string[]): OciProcess => ({ user: { uid: 0, gid: 0 }, args, env: [`PATH=${DEFAULT_PATH}`], cwd: '/' });
    // the output comes once the test says so (a second exec makes /tmp/go), not after a delay
    const h = await ex.exec(m.id, 'late1', {
      process: proc(['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.05; done; echo late-output']),
      tty: true,
      openStdin: false,
    });
    // a second client of the exec's shim, attached before the output comes; half-open, so that it can still write
    // once the shim has ended the session (EOF), as the CRI's and Docker's clients do with a resize
    const socketPath = ex.socketPathFor(m.id, 'late1');
    const sock = net.createConnection({ path: socketPath, allowHalfOpen: true });
    const got: Buffer[] = [];
    let error: Error | undefined;
    sock.on('data', (b: Buffer) => got.push(b));
    sock.on('error', (e) => (error = e));
    const ended = new Promise((r) => sock.once('end', r));
    const closed = new Promise((r) => sock.once('close', r));
    await new Promise((r) => sock.once('connect', r));
    sock.write(shimFrame('A', '1 0'));
    await waitFor(() => Buffer.concat(got).includes('ok'), 10_000);
    const go = await ex.exec(m.id, 'go1', { process: proc(['touch', '/tmp/go']), tty: false, openStdin: false });
    expect((await go.exit).exitCode).toBe(0);
    expect(await collect(h.output, () => false)).toContain('late-output');
    expect((await h.exit).exitCode).toBe(0);
    // the shim has sent everything and ended the session (EOF here); a resize written now reaches a shim that still
    // reads (before, the shim had closed the socket: EPIPE, and Node destroyed the socket with unread output in it)
    await ended;
    expect(Buffer.concat(got).toString('latin1')).toContain('late-output');
    const written = await new Promise<Error | null | undefined>((r) => sock.write(shimFrame('W', '30 90'), r));
    expect(written ?? undefined).toBeUndefined();
    sock.end();
    await closed;
    expect(error).toBeUndefined();
    await ex.kill(m.id, 9);
    await ex.waitExit(m.id);
    await ex.delete(m.id);
  });

  it('runs berth-init as PID 1 that forwards signals and reaps', async () => {
    const m = await createContainer({ args: ['sh', '-c', 'echo $$; sleep 60'], init: true });
    await ex.start(m.id);
    await waitFor(() => readLog(m.logPath).length > 0);
    expect(readLog(m.logPath)[0]?.log).not.toBe('1\n');
    await ex.kill(m.id, 15);
    const st = await ex.waitExit(m.id);
    expect(st.exitCode).toBe(143);
    await ex.delete(m.id);
  });

  it('keeps a container through an executor restart and lets a new one attach, kill and wait', async () => {
    const m = await createContainer({ args: ['sh', '-c', 'while true; do echo tick; sleep 0.1; done'] });
    await ex.start(m.id);
    ex.release(m.id);
    const ex2 = new Executor({ execRoot, shimPath: SHIM, log, ...(cgroups ? { cgroups } : {}) });
    expect(await ex2.adopt(m.id, m.bundle)).toBe('running');
    const a = await ex2.attach(m.id, { stdin: false, stdout: true, stderr: true });
    expect(await collect(a.output, (s) => s.includes('tick'))).toContain('tick');
    await ex2.kill(m.id, 9);
    expect((await ex2.waitExit(m.id)).exitCode).toBe(137);
    a.close();
    await ex2.delete(m.id);
  });

  it('reads the exit status of a container that ended while no executor was watching', async () => {
    const m = await createContainer({ args: ['sh', '-c', 'read x; exit 42'], openStdin: true });
    const a = await ex.attach(m.id, { stdin: true, stdout: false, stderr: false });
    await ex.start(m.id);
    ex.release(m.id);
    a.stdin?.write('go\n');
    await waitFor(() => existsSync(join(m.bundle, 'exit.json')));
    a.close();
    const ex2 = new Executor({ execRoot, shimPath: SHIM, log, ...(cgroups ? { cgroups } : {}) });
    const st = await ex2.adopt(m.id, m.bundle);
    expect(typeof st === 'object' && st.exitCode).toBe(42);
    await ex2.delete(m.id);
  });

  it('leaves nothing behind after delete', async () => {
    const m = await createContainer({ args: ['sleep', '60'] });
    await ex.start(m.id);
    const info = JSON.parse(readFileSync(join(m.bundle, 'shim.json'), 'utf8')) as { shimPid: number; initPid: number };
    await ex.delete(m.id);
    expect(existsSync(`/proc/${info.shimPid}`)).toBe(false);
    expect(existsSync(`/proc/${info.initPid}`)).toBe(false);
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(tmp);
    expect(readdirSync(join(execRoot, 's')).filter((f) => m.id.startsWith(f.replace(/\.sock$/, '')))).toEqual([]);
    if (cgroups) expect(existsSync(`/sys/fs/cgroup/memory/berth-test/${m.id}`)).toBe(false);
  });
});
