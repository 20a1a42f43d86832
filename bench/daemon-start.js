#!/usr/bin/env node
// Daemon start with a full store: 200 images and 1,000 containers (50 of them with restart policy "always", running
// when the daemon stops). Each round stops the daemon and starts it again on the same paths, and reports the time to
// the first /_ping answer and to all 50 restart-policy containers running, and the daemon's RSS then.
// With --dockerd, the same rounds on the reference dockerd, alternating: this script starts it
// (scripts/reference-dockerd.sh start), restarts it with `halt` and `launch`, and stops it at the end, so it must not
// be running already (it would be restarted under other runs). Needs root and a build.
//   node bench/daemon-start.js [--rounds 3] [--dockerd]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { benchArgs, berthdNodeFlags, daemonRssMiB, ensureBusybox } from './lib/daemons.js';
import { dockerCli, median } from './lib/common.js';
import { writeImageArchive } from './lib/images.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const REFD = fileURLToPath(new URL('../scripts/reference-dockerd.sh', import.meta.url));
const args = benchArgs();
const rounds = args.rounds ?? 3;
const CONTAINERS = 1000;
const RESTARTING = 50;
const dir = mkdtempSync(join(tmpdir(), 'bench-start-'));

const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;

/** A daemon this script stops and starts: its socket, an API client, and start/stop/pid. */
function daemon(name, sock, { start, stop, pid }) {
  const d = { name, sock, agent: undefined, pid };
  d.docker = dockerCli({ ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, `cfg-${name}`) });
  d.api = async (method, path, body) => {
    const res = await request(`http://localhost${path}`, { method, dispatcher: d.agent, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
    const text = await res.body.text();
    return { status: res.statusCode, json: text && res.headers['content-type']?.includes('json') ? JSON.parse(text) : undefined };
  };
  d.start = () => {
    start();
    d.agent = new Agent({ connect: { socketPath: sock } });
  };
  d.stop = async () => {
    await d.agent?.close();
    d.agent = undefined;
    await stop();
  };
  return d;
}

function berth() {
  const sock = join(dir, 'd.sock');
  let child;
  // BENCH_NODE_FLAGS (e.g. --cpu-prof --cpu-prof-dir=/tmp/p) go to node for berthd: profiles of the restarts.
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  return daemon('Berth', sock, {
    start: () => {
      child = spawn(process.execPath, [...berthdNodeFlags(), ...flags, MAIN, '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', '/dev/null', '--log-level', 'warn'], { stdio: 'ignore' });
    },
    stop: () => {
      child.kill('SIGTERM');
      return new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    },
    pid: () => child.pid,
  });
}

function refd(verb) {
  const r = spawnSync('bash', [REFD, verb], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`reference-dockerd.sh ${verb}: ${r.stderr}`);
  return r.stdout.trim().split('\n').pop();
}

function dockerd() {
  const dirOf = process.env.REFD_DIR ?? '/var/tmp/berth-refd';
  let first = true;
  return daemon('dockerd', join(dirOf, 'docker.sock'), {
    start: () => {
      if (first) first = false; // `start` waited for it to answer: the setup's start is not timed
      else refd('launch');
    },
    stop: () => refd('halt'),
    pid: () => Number(readFileSync(join(dirOf, 'dockerd.pid'), 'utf8')),
  });
}

async function until(check, what) {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`${what}: timed out`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const runningFilter = encodeURIComponent(JSON.stringify({ label: ['restart=1'], status: ['running'] }));
const pinged = async (d) => (await d.api('GET', '/_ping')).status === 200;
const allRunning = async (d) => (await d.api('GET', `/containers/json?filters=${runningFilter}`)).json?.length === RESTARTING;

/** 200 images and 1,000 containers, 50 of them running with restart policy always (stopped within 1 s). */
async function fill(d) {
  await until(() => pinged(d), `${d.name}: first start`);
  ensureBusybox(d);
  d.docker(['load', '-q', '-i', await writeImageArchive(join(dir, 'imgs.tar'), { images: 199, name: 'bench/start' })]);
  const t = process.hrtime.bigint();
  for (let i = 0; i < CONTAINERS; i += 4) {
    await Promise.all([0, 1, 2, 3].map(async (k) => {
      const n = i + k;
      const restart = n < RESTARTING;
      const r = await d.api('POST', '/containers/create', {
        Image: 'busybox', Cmd: restart ? ['sleep', '3600'] : ['true'], Labels: restart ? { restart: '1' } : {},
        StopTimeout: 1, HostConfig: restart ? { RestartPolicy: { Name: 'always' } } : {},
      });
      if (r.status !== 201) throw new Error(`${d.name}: create: ${r.status}`);
      if (restart) await d.api('POST', `/containers/${r.json.Id}/start`);
    }));
  }
  console.log(`${d.name} store: 200 images, ${CONTAINERS} containers (${RESTARTING} restart=always, running) made in ${(ms(t) / 1000).toFixed(1)} s`);
  await until(() => allRunning(d), `${d.name}: setup`);
}

async function empty(d) {
  try {
    const all = (await d.api('GET', '/containers/json?all=1')).json ?? [];
    for (const c of all) await d.api('DELETE', `/containers/${c.Id}?force=1`);
  } catch {
    // daemon gone
  }
}

const daemons = [berth()];
if (args.rest.includes('--dockerd')) {
  if (spawnSync('bash', ['-c', `kill -0 "$(cat ${process.env.REFD_DIR ?? '/var/tmp/berth-refd'}/dockerd.pid 2>/dev/null)" 2>/dev/null`]).status === 0) {
    throw new Error('the reference dockerd is running: stop it first (this script restarts it)');
  }
  refd('start');
  daemons.push(dockerd());
}
const figures = daemons.map(() => ({ ping: [], running: [], rss: [] }));
try {
  for (const d of daemons) {
    d.start();
    await fill(d);
  }
  for (let r = 0; r < rounds; r++) {
    for (const [i, d] of daemons.entries()) {
      await d.stop();
      const t0 = process.hrtime.bigint();
      d.start();
      await until(() => pinged(d), `${d.name}: ping`);
      figures[i].ping.push(ms(t0));
      await until(() => allRunning(d), `${d.name}: restart-policy containers`);
      figures[i].running.push(ms(t0));
      figures[i].rss.push(daemonRssMiB(d.pid()));
    }
  }
  const cell = (key, unit, digits = 0) => figures.map((f) => `${median(f[key]).toFixed(digits)} ${unit}`).join(' | ');
  const ratio = (key) => (daemons.length > 1 ? ` ${(median(figures[0][key]) / median(figures[1][key])).toFixed(2)} |` : '');
  console.log(`\n| figure (median of ${rounds}) | ${daemons.map((d) => d.name).join(' | ')} |${daemons.length > 1 ? ' ratio |' : ''}`);
  console.log(`|---|${daemons.map(() => '---|').join('')}${daemons.length > 1 ? '---|' : ''}`);
  console.log(`| daemon start, 200 images + 1,000 containers: to /_ping answering | ${cell('ping', 'ms')} |${ratio('ping')}`);
  console.log(`| … to all ${RESTARTING} restart-policy containers running | ${cell('running', 'ms')} |${ratio('running')}`);
  console.log(`| daemon RSS right after that start (with its helpers, no per-container supervisors) | ${cell('rss', 'MiB')} |${ratio('rss')}`);
  if (daemons.length > 1) console.log(`\nBerth's containers keep running while berthd restarts; dockerd (without live-restore) stops them and starts them again.`);
} finally {
  for (const d of daemons) {
    await empty(d);
    await d.stop().catch(() => undefined);
  }
  if (daemons.length > 1) refd('stop');
  rmSync(dir, { recursive: true, force: true });
}
