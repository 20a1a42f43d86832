#!/usr/bin/env node
// docker build (classic builder, DOCKER_BUILDKIT=0) against Berth and, with --compare unix:///other.sock, another
// Docker-API daemon in the same run (alternating per round); medians of the rounds, ratio Berth / other.
// The fully cached build is also measured at the API level (the same context tar POSTed to /build on a kept-alive
// connection), without the docker CLI's own start-up, which is most of the CLI figure (a `docker build -q` against
// a server that answers at once takes ~20 ms here). Reports figures; asserts nothing. Needs root and a build.
//   node bench/build.js [--compare unix:///var/tmp/berth-refd/docker.sock] [--rounds 3]
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'undici';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, benchDaemons, ensureBusybox } from './lib/daemons.js';
import { median } from './lib/common.js';

const args = benchArgs();
const rounds = Math.min(args.rounds, 3);
const work = mkdtempSync(join(tmpdir(), 'bench-build-'));

/** 20 steps over 1 MB of context: COPYs, RUNs that write, metadata instructions. */
function twentySteps() {
  const dir = join(work, 'twenty');
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 8; i++) writeFileSync(join(dir, `f${i}.bin`), randomBytes(128 * 1024));
  const lines = ['FROM busybox'];
  for (let i = 0; i < 4; i++) lines.push(`COPY f${i}.bin /data/f${i}.bin`);
  lines.push('COPY . /ctx/');
  for (let i = 0; i < 6; i++) lines.push(`RUN echo step-${i} > /data/run-${i} && ls /data > /dev/null`);
  lines.push('ENV A=1 B=2', 'LABEL bench=build', 'WORKDIR /srv', 'USER nobody', 'EXPOSE 8080', 'VOLUME /cache', 'STOPSIGNAL SIGTERM');
  lines.push('CMD ["sh"]');
  writeFileSync(join(dir, 'Dockerfile'), `${lines.join('\n')}\n`);
  return dir;
}

/** 200 MB in 20,000 files sent to a one-line Dockerfile. */
function bigContext() {
  const dir = join(work, 'big');
  for (let d = 0; d < 100; d++) {
    mkdirSync(join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < 200; f++) writeFileSync(join(dir, `d${d}`, `f${f}`), randomBytes(10 * 1024));
  }
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\n');
  return dir;
}

/** The context as a tar, sent unchanged to every daemon. */
function contextTar(dir) {
  return spawnSync('tar', ['-C', dir, '--sort=name', '--owner=0', '--group=0', '-c', '.'], { maxBuffer: 1 << 28 }).stdout;
}

/** Median of 10 POST /build of `tar` (every step cached), in ms. */
async function apiBuild(d, tar) {
  const xs = [];
  for (let i = 0; i < 10; i++) {
    const t = process.hrtime.bigint();
    const res = await request('http://localhost/v1.41/build?q=1', {
      method: 'POST',
      dispatcher: d.agent,
      body: tar,
      headers: { 'content-type': 'application/x-tar' },
    });
    const text = await res.body.text();
    if (res.statusCode !== 200 || !text.includes('sha256:')) throw new Error(`${d.name}: build failed: ${text}`);
    xs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(xs);
}

function build(d, dir, extra = []) {
  const t = process.hrtime.bigint();
  const r = spawnSync('docker', ['build', '-q', ...extra, dir], { env: { ...d.env, DOCKER_BUILDKIT: '0' }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${d.name}: docker build failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/**
 * The docker CLI's own floor: a server (in a child process: spawnSync blocks this one) that answers /_ping and
 * POST /build at once, with the same output as a `-q` build.
 */
async function cliFloorServer() {
  const sock = join(work, 'floor.sock');
  const script = `
    const { createServer } = require('node:http');
    const h = { 'Api-Version': '1.41', 'Ostype': 'linux', 'Builder-Version': '1', 'Docker-Experimental': 'false' };
    createServer((req, res) => {
      if (req.url.endsWith('/_ping')) { res.writeHead(200, h); res.end(req.method === 'HEAD' ? undefined : 'OK'); return; }
      req.resume();
      req.on('end', () => {
        res.writeHead(req.url.includes('/build') ? 200 : 404, { ...h, 'content-type': 'application/json' });
        res.end(req.url.includes('/build') ? '{"stream":"sha256:${'0'.repeat(64)}\\\\n"}\\n' : '{"message":"page not found"}');
      });
    }).listen(${JSON.stringify(sock)});`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
  return { name: 'CLI floor', env: { ...process.env, DOCKER_HOST: `unix://${sock}` }, close: () => child.kill() };
}

const daemons = await benchDaemons(args);
const floor = await cliFloorServer();
const floorFigures = [];
const rows = [];
try {
  for (const d of daemons) ensureBusybox(d);
  const twenty = twentySteps();
  const big = bigContext();
  const tar = contextTar(twenty);
  const workloads = [
    { name: '20-step build, 1 MB context, cold (--no-cache)', target: 0.5, run: (d) => build(d, twenty, ['--no-cache']) },
    { name: '20-step build, fully cached (median of 5)', target: 0.3, run: (d) => median([0, 1, 2, 3, 4].map(() => build(d, twenty))) },
    { name: '20-step build, fully cached, raw API (median of 10)', target: 0.3, run: (d) => apiBuild(d, tar) },
    { name: '200 MB / 20,000-file context, one-line Dockerfile', target: 0.5, run: (d) => build(d, big) },
  ];
  for (const w of workloads) {
    const figures = daemons.map(() => []);
    for (const d of daemons) build(d, twenty); // warm the cache for the cached figures
    if (w.name.includes('raw API')) for (const d of daemons) await apiBuild(d, tar); // and for this tar's COPY checksums
    for (let r = 0; r < rounds; r++) {
      for (const [i, d] of daemons.entries()) figures[i].push(await w.run(d));
      if (w.name.startsWith('20-step build, fully cached (')) floorFigures.push(await w.run(floor));
    }
    const row = { name: w.name, target: w.target, values: figures.map((xs) => median(xs)) };
    rows.push(row);
    console.log(`${row.name}: ${row.values.map((v, i) => `${daemons[i].name} ${v.toFixed(0)} ms`).join(', ')}`);
  }
} finally {
  for (const d of daemons) await d.close();
  floor.close();
  rmSync(work, { recursive: true, force: true });
}

console.log(`\n| figure | ${daemons.map((d) => d.name).join(' | ')} |${daemons.length > 1 ? ' ratio | target |' : ''}`);
console.log(`|---|${daemons.map(() => '---|').join('')}${daemons.length > 1 ? '---|---|' : ''}`);
for (const r of rows) {
  const ratio = r.values.length > 1 ? r.values[0] / r.values[1] : undefined;
  const extra = daemons.length > 1 ? ` ${ratio.toFixed(2)} | ≤ ${r.target}${ratio <= r.target ? ' ✓' : ' ✗'} |` : '';
  console.log(`| ${r.name} | ${r.values.map((v) => `${v.toFixed(0)} ms`).join(' | ')} |${extra}`);
}
if (floorFigures.length > 0) {
  console.log(`\nThe docker CLI's floor, measured in the same rounds: \`docker build -q\` of the same context against a server that answers at once takes ${median(floorFigures).toFixed(0)} ms.`);
}
