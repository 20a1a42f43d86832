// The daemons a benchmark talks to: a private berthd it starts itself, and optionally another Docker-API daemon
// given by --compare (a reference dockerd from scripts/reference-dockerd.sh), so figures come from one run.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { busyboxRootfs, dockerCli } from './common.js';

const MAIN = process.env.BERTHD_MAIN ?? fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/** The node flags berthd's entry point asks for on its #! line (as when it runs as `berthd`). */
export function berthdNodeFlags() {
  const first = readFileSync(MAIN, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!.*\bnode\b(.*)$/.exec(first);
  return (m?.[1] ?? '').split(' ').filter(Boolean);
}

/** Command-line options shared by the scripts: --compare unix:///path, --rounds N. */
export function benchArgs(argv = process.argv.slice(2)) {
  const out = { compare: undefined, rounds: 5, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--compare') out.compare = argv[++i];
    else if (argv[i] === '--rounds') out.rounds = Number(argv[++i]);
    else out.rest.push(argv[i]);
  }
  if (out.compare && !out.compare.startsWith('unix://')) throw new Error('--compare takes unix:///path/to/docker.sock');
  return out;
}

/** A handle on one daemon: CLI runner, raw API over a kept-alive connection, its pid for memory figures. */
function daemonHandle(name, sock, extra = {}) {
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: mkdtempSync(join(tmpdir(), 'bcfg-')) };
  const agent = new Agent({ connect: { socketPath: sock } });
  const api = async (method, path, body, retried = false) => {
    let res;
    try {
      res = await request(`http://localhost${path}`, {
        method,
        dispatcher: agent,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      // dockerd may close a kept-alive connection just as the next request is written; try once more.
      if (retried || !['EPIPE', 'ECONNRESET', 'UND_ERR_SOCKET'].includes(err.code)) throw err;
      return api(method, path, body, true);
    }
    const text = await res.body.text();
    return { status: res.statusCode, json: text && text[0] !== '\n' && res.headers['content-type']?.includes('json') ? JSON.parse(text) : undefined, text };
  };
  return {
    name,
    sock,
    env,
    docker: dockerCli(env),
    api,
    agent,
    pid: () => extra.pid ?? listenerPid(sock),
    async close() {
      await agent.close();
      rmSync(env.DOCKER_CONFIG, { recursive: true, force: true });
      await extra.stop?.();
    },
  };
}

/**
 * The NRI socket on a private path too (its default, /var/run/nri/nri.sock, is the host's: a plugin another run
 * or test starts would connect to this daemon and load the NRI codecs into the figures); builds without NRI lack
 * the option.
 */
function privateSockets(dir) {
  const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' }).stdout ?? '';
  return help.includes('--nri-socket') ? ['--nri-socket', join(dir, 'nri.sock')] : [];
}

/** Starts a private berthd on temporary paths and waits until it answers. */
export async function startBerth() {
  const dir = mkdtempSync(join(tmpdir(), 'bb-'));
  const sock = join(dir, 'd.sock');
  const child = spawn(
    process.execPath,
    [...berthdNodeFlags(), ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean), MAIN, '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', '/dev/null', '--log-level', 'warn', ...privateSockets(dir)],
    { stdio: 'ignore' },
  );
  const d = daemonHandle('Berth', sock, {
    pid: child.pid,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  });
  d.dataRoot = join(dir, 'data');
  for (let i = 0; i < 400; i++) {
    if (d.docker(['version'], { allowFail: true }).status === 0) return d;
    await new Promise((r) => setTimeout(r, 50));
  }
  await d.close();
  throw new Error('berthd did not start');
}

/** Another daemon already running on `url` (unix:///path). */
export function connectDaemon(url, name = 'dockerd') {
  return daemonHandle(name, url.slice('unix://'.length));
}

/** The daemons of this run: Berth first, then the one given by --compare. */
export async function benchDaemons(args) {
  const ds = [await startBerth()];
  if (args.compare) ds.push(connectDaemon(args.compare));
  return ds;
}

/** Makes sure `busybox` exists on the daemon (from Debian's busybox-static). */
export function ensureBusybox(d) {
  if (d.docker(['image', 'inspect', 'busybox'], { allowFail: true }).status === 0) return;
  const dir = mkdtempSync(join(tmpdir(), 'bbi-'));
  try {
    const tar = spawnSync('tar', ['-C', busyboxRootfs(dir), '-c', '.'], { maxBuffer: 1 << 28 }).stdout;
    d.docker(['import', '-c', 'CMD ["sh"]', '-', 'busybox'], { input: tar });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The pid of the process listening on a unix socket (from ss), for daemons this script did not start. */
function listenerPid(sock) {
  const out = spawnSync('ss', ['-xlpn'], { encoding: 'utf8' }).stdout ?? '';
  const line = out.split('\n').find((l) => l.includes(` ${sock} `));
  const pid = line && /pid=(\d+)/.exec(line)?.[1];
  return pid ? Number(pid) : undefined;
}

/**
 * Resident memory of a daemon and its helper processes (dockerd + containerd; berthd + shim spawner and helpers),
 * without per-container supervisors (berth-shim, containerd-shim), which are counted separately, in MiB: VmRSS,
 * or with field 'RssAnon' only the anonymous part (the daemon's own memory, without the pages it maps from files,
 * which stay in the page cache and are shared with other processes).
 */
export function daemonRssMiB(pid, field = 'VmRSS') {
  if (!pid) return undefined;
  const children = new Map();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(e));
    } catch {
      // gone
    }
  }
  let kb = 0;
  const visit = (p, parentCmd) => {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
      // The spawner forks each shim without exec, so a shim's command line is the spawner's too.
      if (/containerd-shim|berth-shim (?!spawner)/.test(cmd) || /berth-shim spawner/.test(parentCmd)) return;
      kb += rssKb(p, field);
    } catch {
      return;
    }
    for (const c of children.get(p) ?? []) visit(c, cmd);
  };
  visit(pid, '');
  return kb / 1024;
}

function rssKb(p, field = 'VmRSS') {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
}

function processTable() {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      out.push({ pid: Number(e), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), cmd: readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ') });
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Resident memory of the per-container supervisors of one daemon, in MiB, and how many there are: Berth's shims
 * (children of its spawner, under the daemon's process tree), or dockerd's containerd-shims (reparented to init;
 * found by their containerd address under the daemon's directory).
 */
export function supervisorRss(d) {
  const procs = processTable();
  let kb = 0;
  let n = 0;
  const add = (p) => {
    try {
      kb += rssKb(p.pid);
      n++;
    } catch {
      // gone
    }
  };
  if (d.name === 'Berth') {
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    const under = (p) => {
      for (let q = p; q; q = byPid.get(q.ppid)) if (q.pid === d.pid()) return true;
      return false;
    };
    for (const p of procs) if (/berth-shim spawner/.test(byPid.get(p.ppid)?.cmd ?? '') && under(p)) add(p);
  } else {
    const root = d.sock.slice(0, d.sock.lastIndexOf('/'));
    for (const p of procs) if (/containerd-shim/.test(p.cmd) && p.cmd.includes(root)) add(p);
  }
  return { mib: kb / 1024, count: n };
}
