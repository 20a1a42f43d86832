#!/usr/bin/env node
// Daemon start with a full store: 200 images and 1,000 containers (50 of them with restart policy "always", running
// when the daemon stops). Each round stops berthd and starts it again on the same paths, and reports the time to
// the first /_ping answer and to all 50 restart-policy containers running, and berthd's RSS then. Berth only: the
// reference dockerd is started by scripts/reference-dockerd.sh, outside this script, so it is not restarted here.
// Needs root and a build.   node bench/daemon-start.js [--rounds 3]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { benchArgs, berthdNodeFlags, daemonRssMiB, ensureBusybox } from './lib/daemons.js';
import { dockerCli, median } from './lib/common.js';
import { writeImageArchive } from './lib/images.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const args = benchArgs();
const rounds = args.rounds ?? 3;
const CONTAINERS = 1000;
const RESTARTING = 50;
const dir = mkdtempSync(join(tmpdir(), 'bench-start-'));
const sock = join(dir, 'd.sock');
const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, 'cfg') };
const docker = dockerCli(env);
let child;
let agent;

const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;

async function api(method, path, body) {
  const res = await request(`http://localhost${path}`, { method, dispatcher: agent, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  const text = await res.body.text();
  return { status: res.statusCode, json: text && res.headers['content-type']?.includes('json') ? JSON.parse(text) : undefined };
}

function start() {
  // BENCH_NODE_FLAGS (e.g. --cpu-prof --cpu-prof-dir=/tmp/p) go to node for berthd: profiles of the restarts.
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  child = spawn(process.execPath, [...berthdNodeFlags(), ...flags, MAIN, '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', '/dev/null', '--log-level', 'warn'], { stdio: 'ignore' });
  agent = new Agent({ connect: { socketPath: sock } });
}

async function stop() {
  await agent.close();
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
}

async function until(check, what) {
  const deadline = Date.now() + 120_000;
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
const pinged = async () => (await api('GET', '/_ping')).status === 200;
const allRunning = async () => (await api('GET', `/containers/json?filters=${runningFilter}`)).json?.length === RESTARTING;

try {
  start();
  await until(pinged, 'first start');
  ensureBusybox({ docker });
  docker(['load', '-q', '-i', await writeImageArchive(join(dir, 'imgs.tar'), { images: 199, name: 'bench/start' })]);
  const t = process.hrtime.bigint();
  for (let i = 0; i < CONTAINERS; i += 4) {
    await Promise.all([0, 1, 2, 3].map(async (k) => {
      const n = i + k;
      const restart = n < RESTARTING;
      const r = await api('POST', '/containers/create', {
        Image: 'busybox', Cmd: restart ? ['sleep', '3600'] : ['true'], Labels: restart ? { restart: '1' } : {},
        HostConfig: restart ? { RestartPolicy: { Name: 'always' } } : {},
      });
      if (restart) await api('POST', `/containers/${r.json.Id}/start`);
    }));
  }
  console.log(`store: 200 images, ${CONTAINERS} containers (${RESTARTING} restart=always, running) made in ${(ms(t) / 1000).toFixed(1)} s`);
  await until(allRunning, 'setup');
  const ping = [];
  const running = [];
  const rss = [];
  for (let r = 0; r < rounds; r++) {
    await stop();
    const t0 = process.hrtime.bigint();
    start();
    await until(pinged, 'ping');
    ping.push(ms(t0));
    await until(allRunning, 'restart-policy containers');
    running.push(ms(t0));
    rss.push(daemonRssMiB(child.pid));
  }
  console.log(`\n| figure (Berth only; median of ${rounds}) | Berth |\n|---|---|`);
  console.log(`| daemon start, 200 images + 1,000 containers: to /_ping answering | ${median(ping).toFixed(0)} ms |`);
  console.log(`| … to all ${RESTARTING} restart-policy containers running | ${median(running).toFixed(0)} ms |`);
  console.log(`| berthd RSS right after that start (berthd + its helpers, no shims) | ${median(rss).toFixed(0)} MiB |`);
} finally {
  try {
    await api('POST', '/containers/prune');
    const all = (await api('GET', '/containers/json?all=1')).json ?? [];
    for (const c of all) await api('DELETE', `/containers/${c.Id}?force=1`);
  } catch {
    // daemon gone
  }
  await stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
