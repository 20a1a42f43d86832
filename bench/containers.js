#!/usr/bin/env node
// Container workloads against Berth and, with --compare unix:///other.sock, another Docker-API daemon in the same
// run: each round runs every workload on each daemon in turn (alternating), and the table shows medians of the
// rounds with the ratio Berth / other. Reports figures; asserts nothing. Needs root and a build.
//   node bench/containers.js [--compare unix:///var/tmp/berth-refd/docker.sock] [--rounds 5] [workload-name …]
import { execFile, spawn } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { createConnection } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { benchArgs, benchDaemons, berthdNodeFlags, daemonRssMiB, ensureBusybox, startBerth, supervisorRss } from './lib/daemons.js';
import { median } from './lib/common.js';
import { startPingFloor } from './lib/ping-floor.js';
import { startRegistry, writeImageArchive } from './lib/images.js';

const args = benchArgs();

const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;

async function parallel(n, limit, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** CPU time (user + system, clock ticks) a process has used. */
function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Resolves once the process has used no CPU time for `quietMs` (checked every 250 ms), or after `maxMs`. */
async function untilIdle(pid, quietMs, maxMs) {
  const end = Date.now() + maxMs;
  let last = cpuTicks(pid);
  let quietSince = Date.now();
  while (Date.now() < end && Date.now() - quietSince < quietMs) {
    await new Promise((r) => setTimeout(r, 250));
    const now = cpuTicks(pid);
    if (now !== last) quietSince = Date.now();
    last = now;
  }
}

/** Creates `n` stopped containers (for list/inspect figures); returns their ids. */
async function createMany(d, n, cmd = ['true']) {
  const ids = [];
  await parallel(n, 4, async () => {
    const r = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: cmd, Labels: { bench: '1' } });
    ids.push(r.json.Id);
  });
  return ids;
}

async function removeAll(d, ids) {
  await parallel(ids.length, 4, async (i) => {
    await d.api('DELETE', `/containers/${ids[i]}?force=1`);
  });
}

/** Starts `n` sleeping containers; returns their ids. */
async function runMany(d, n) {
  const ids = await createMany(d, n, ['sleep', '600']);
  await parallel(ids.length, 4, async (i) => d.api('POST', `/containers/${ids[i]}/start`));
  return ids;
}

const scratch = mkdtempSync(join(tmpdir(), 'bench-c-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
const archives = new Map();
/** A docker-save archive made once per run and shared by the daemons. */
function archive(key, opts) {
  if (!archives.has(key)) archives.set(key, writeImageArchive(join(scratch, `${key}.tar`), opts));
  return archives.get(key);
}

/** Removes the images of one archive from a daemon. */
function rmiPrefix(d, name, n) {
  d.docker(['rmi', '-f', ...Array.from({ length: n }, (_, i) => `${name}:${i}`)], { allowFail: true });
}

/** Reads /events with a given query until `until(count)` holds; resolves to the count. */
async function subscribe(d, agent, query, wanted, signal) {
  const res = await request(`http://localhost/events?${query}`, { dispatcher: agent, signal });
  let seen = 0;
  let rest = '';
  let ready;
  const done = new Promise((r) => (ready = r));
  res.body.on('data', (c) => {
    const lines = (rest + c.toString()).split('\n');
    rest = lines.pop();
    seen += lines.filter(Boolean).length;
    if (seen >= wanted) ready(seen);
  });
  res.body.on('error', () => ready(seen));
  return { done, close: () => res.body.destroy() };
}

/**
 * One kept-alive unix-socket connection sending raw requests one at a time; each resolves once the response's
 * headers and Content-Length bytes of body are in (enough for /_ping).
 */
async function rawKeepAlive(sock) {
  const conn = createConnection(sock);
  await new Promise((resolve, reject) => conn.once('connect', resolve).once('error', reject));
  let buf = Buffer.alloc(0);
  let waiting;
  conn.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0 || !waiting) return;
    const len = Number(/content-length:\s*(\d+)/i.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0);
    if (buf.length < end + 4 + len) return;
    buf = buf.subarray(end + 4 + len);
    const w = waiting;
    waiting = undefined;
    w();
  });
  const send = (req) => new Promise((resolve) => {
    waiting = resolve;
    conn.write(req);
  });
  send.close = () => conn.destroy();
  return send;
}

/** RSS (MiB) of bench/stack-floor's do-nothing server once idle, started with berthd's node flags. */
async function stackFloorRssMiB() {
  const dir = mkdtempSync(join(tmpdir(), 'bsf-'));
  const child = spawn(process.execPath, [...berthdNodeFlags(), fileURLToPath(new URL('./stack-floor/server.mjs', import.meta.url)), join(dir, 's.sock')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((resolve, reject) => {
      child.stdout.once('data', resolve);
      child.once('exit', (code) => reject(new Error(`stack floor exited (${code})`)));
    });
    await untilIdle(child.pid, 2000, 20_000);
    return daemonRssMiB(child.pid);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Microseconds per /_ping on one kept-alive connection. A bare HTTP/1.1 client on one unix-socket connection (as the
 * Go client keeps one): undici's own cost per request is close to a daemon's and would hide the difference.
 */
async function pingLatency(sock) {
  const ping = await rawKeepAlive(sock);
  try {
    for (let i = 0; i < 200; i++) await ping('GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n');
    // The median of 20 batches of 100: one scheduling hiccup of a loaded machine moves one batch, not the figure.
    const batches = [];
    for (let b = 0; b < 20; b++) {
      const t = process.hrtime.bigint();
      for (let i = 0; i < 100; i++) await ping('GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n');
      batches.push((ms(t) * 1000) / 100);
    }
    return median(batches);
  } finally {
    ping.close();
  }
}

/** Each workload: name, unit, lower-is-better, the issue's target ratio, and a function giving one round's figure. */
const workloads = [
  {
    // First, before any workload of this run: Berth's figure is a daemon started for it (directly, not via npm),
    // once it is idle: no CPU time used for 2 s (its start and the release of its start's memory done; at most
    // 20 s, at least 2 s); dockerd's the reference daemon as the script left it (idle since it started).
    name: 'daemon RSS idle', unit: 'MiB', target: 0.5, rounds: 1,
    setup: async (d) => {
      if (d.name !== 'Berth') return d;
      const fresh = await startBerth();
      await untilIdle(fresh.pid(), 2000, 20_000);
      return fresh;
    },
    run: (_d, fresh) => daemonRssMiB(fresh.pid()),
    also: [
      { name: 'daemon anonymous memory idle (RssAnon)', run: (_d, fresh) => daemonRssMiB(fresh.pid(), 'RssAnon') },
      // Berth's column: Node + Fastify + pino + better-sqlite3 answering /_ping and nothing else, with berthd's node
      // flags and idle measures, idle the same way (bench/stack-floor); dockerd's column: dockerd again, for the ratio.
      { name: 'idle RSS floor: the stack alone (Node, Fastify, pino, better-sqlite3) / dockerd', run: (d, fresh) => (d.name === 'Berth' ? stackFloorRssMiB() : daemonRssMiB(fresh.pid())) },
    ],
    teardown: async (d, fresh) => {
      if (fresh !== d) await fresh.close();
    },
  },
  {
    name: 'docker run --rm busybox true', unit: 'ms', target: 0.15,
    run: (d) => {
      const xs = [];
      for (let i = 0; i < 5; i++) {
        const t = process.hrtime.bigint();
        d.docker(['run', '--rm', 'busybox', 'true']);
        xs.push(ms(t));
      }
      return median(xs);
    },
  },
  {
    name: 'create+start+wait+remove, raw API', unit: 'ms', target: 0.15,
    run: async (d) => {
      const xs = [];
      for (let i = 0; i < 5; i++) {
        const t = process.hrtime.bigint();
        const { json } = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'] });
        const wait = d.api('POST', `/containers/${json.Id}/wait?condition=next-exit`);
        await d.api('POST', `/containers/${json.Id}/start`);
        await wait;
        await d.api('DELETE', `/containers/${json.Id}`);
        xs.push(ms(t));
      }
      return median(xs);
    },
  },
  {
    name: '30 detached runs, 6 at a time, then rm -f of the 30', unit: 'ms', target: 0.2, pair: 'rm -f of 30 running',
    run: async (d) => {
      const ids = [];
      const t = process.hrtime.bigint();
      await parallel(30, 6, async () => {
        // The CLI as a user runs it, spawned asynchronously so that six run at once.
        const id = await new Promise((resolve) =>
          execFile('docker', ['run', '-d', 'busybox', 'sleep', '300'], { env: d.env }, (err, stdout) => resolve(err ? '' : stdout.trim())),
        );
        ids.push(id);
      });
      const runMs = ms(t);
      const t2 = process.hrtime.bigint();
      d.docker(['rm', '-f', ...ids.filter(Boolean)]);
      return [runMs, ms(t2)];
    },
  },
  {
    name: '/_ping on a kept-alive connection', unit: 'µs', target: 0.8,
    run: (d) => pingLatency(d.sock),
    // The same client against a do-nothing HTTP server in each daemon's runtime, in each daemon's turn: Berth's
    // column is Node's floor, dockerd's Go's (bench/ping-floor; n/a without go).
    setup: (d) => startPingFloor(d.name === 'Berth' ? 'node' : 'go'),
    teardown: (_d, floor) => floor?.stop(),
    also: { name: '/_ping floor: a do-nothing HTTP server, Node / Go', run: (_d, floor) => floor && pingLatency(floor.sock) },
  },
  {
    name: 'list 30 containers', unit: 'ms', target: 0.3, setup: (d) => createMany(d, 30), teardown: removeAll,
    run: async (d) => {
      const xs = [];
      for (let i = 0; i < 20; i++) {
        const t = process.hrtime.bigint();
        await d.api('GET', '/containers/json?all=1');
        xs.push(ms(t));
      }
      return median(xs);
    },
  },
  {
    name: 'attach: 200 MB through stdout', unit: 'ms', target: 0.25, rounds: 3,
    run: (d) => {
      const bytes = 200 * 1000 * 1000;
      const t = process.hrtime.bigint();
      const out = d.docker(['run', '--rm', 'busybox', 'head', '-c', String(bytes), '/dev/zero'], { maxBuffer: bytes + 1024 });
      if (out.stdout.length !== bytes) throw new Error(`attach: got ${out.stdout.length} bytes`);
      return ms(t);
    },
  },
  {
    name: 'read 100k log lines', unit: 'ms', target: 0.4,
    setup: (d) => {
      d.docker(['run', '--name', 'bench-chatty', 'busybox', 'sh', '-c', 'seq 1 100000']);
      return ['bench-chatty'];
    },
    teardown: (d) => d.docker(['rm', '-f', 'bench-chatty'], { allowFail: true }),
    run: (d) => {
      const t = process.hrtime.bigint();
      const logs = d.docker(['logs', 'bench-chatty']);
      if (logs.stdout.length < 588895) throw new Error('logs: short read');
      return ms(t);
    },
  },
  {
    name: 'docker stats --no-stream of 50 running', unit: 'ms', rounds: 3,
    setup: (d) => runMany(d, 50), teardown: removeAll,
    run: (d, ids) => {
      const t = process.hrtime.bigint();
      const out = d.docker(['stats', '--no-stream', ...ids]);
      if (out.stdout.toString().trim().split('\n').length !== ids.length + 1) throw new Error('stats: rows missing');
      return ms(t);
    },
  },
  {
    name: 'events: 20 subscribers while 100 containers start', unit: 'ms', rounds: 3,
    setup: async (d) => ({ agent: new Agent({ connect: { socketPath: d.sock }, connections: 32 }) }),
    teardown: async (d, s) => s.agent.close(),
    run: async (d, s) => {
      const ids = await createMany(d, 100);
      const filters = encodeURIComponent(JSON.stringify({ event: ['start'], label: ['bench=1'] }));
      const ac = new AbortController();
      setMaxListeners(32, ac.signal);
      const subs = await Promise.all(Array.from({ length: 20 }, () => subscribe(d, s.agent, `filters=${filters}`, ids.length, ac.signal)));
      const t = process.hrtime.bigint();
      await parallel(ids.length, 6, async (i) => d.api('POST', `/containers/${ids[i]}/start`));
      const counts = await Promise.all(subs.map((x) => x.done));
      const figure = ms(t);
      for (const x of subs) x.close();
      ac.abort();
      if (counts.some((c) => c < ids.length)) throw new Error('events: a subscriber missed some');
      await removeAll(d, ids);
      return figure;
    },
  },
  {
    name: 'image load: 50 MB, 1 layer of 50 files', unit: 'ms', rounds: 3, pair: 'image save of it',
    setup: () => archive('load', { images: 1, name: 'bench/load', files: 50, fileBytes: 1_000_000 }),
    run: (d, path) => {
      rmiPrefix(d, 'bench/load', 1);
      const t = process.hrtime.bigint();
      d.docker(['load', '-q', '-i', path]);
      const loadMs = ms(t);
      const t2 = process.hrtime.bigint();
      const out = d.docker(['save', 'bench/load:0'], { maxBuffer: 1 << 28 });
      if (out.stdout.length < 50_000_000) throw new Error('save: short');
      return [loadMs, ms(t2)];
    },
    teardown: (d) => rmiPrefix(d, 'bench/load', 1),
  },
  {
    name: 'push of a 200 MB image to a loopback registry', unit: 'ms', rounds: 3, pair: 'pull of it',
    setup: async (d) => {
      const path = await archive('reg', { images: 1, name: 'bench/reg', files: 200, fileBytes: 1_000_000 });
      d.docker(['load', '-q', '-i', path]);
      return {};
    },
    run: async (d) => {
      // A fresh registry each time: neither daemon finds a layer already there.
      const reg = await startRegistry();
      try {
        const ref = `${reg.host}/bench/reg:0`;
        d.docker(['tag', 'bench/reg:0', ref]);
        const t = process.hrtime.bigint();
        d.docker(['push', '-q', ref]);
        const pushMs = ms(t);
        d.docker(['rmi', ref, 'bench/reg:0']);
        const t2 = process.hrtime.bigint();
        d.docker(['pull', '-q', ref]);
        const pullMs = ms(t2);
        d.docker(['tag', ref, 'bench/reg:0']);
        d.docker(['rmi', ref]);
        return [pushMs, pullMs];
      } finally {
        await reg.stop();
      }
    },
    teardown: (d) => rmiPrefix(d, 'bench/reg', 1),
  },
  {
    name: 'daemon RSS with 50 running', unit: 'MiB', rounds: 1,
    setup: (d) => runMany(d, 50),
    teardown: removeAll,
    run: (d) => daemonRssMiB(d.pid()),
    also: {
      name: 'per-container supervisor RSS (shim), 50 running',
      run: (d, ids) => {
        const { mib, count } = supervisorRss(d);
        if (count < ids.length) throw new Error(`supervisors: found ${count} of ${ids.length}`);
        return mib / count;
      },
    },
  },
];

// Scale: list and inspect with 100 and 1,000 containers (stopped ones: the figure is the daemon's bookkeeping).
for (const n of [100, 1000]) {
  workloads.push({
    name: `list ${n} containers`, unit: 'ms', rounds: 3, scale: true,
    setup: (d) => createMany(d, n), teardown: removeAll,
    run: async (d, ids) => {
      const xs = [];
      for (let i = 0; i < 10; i++) {
        const t = process.hrtime.bigint();
        const r = await d.api('GET', '/containers/json?all=1');
        if (r.json.length < ids.length) throw new Error('list: short');
        xs.push(ms(t));
      }
      return median(xs);
    },
    also: {
      name: `inspect each of ${n} containers`,
      run: async (d, ids) => {
        const t = process.hrtime.bigint();
        for (const id of ids) await d.api('GET', `/containers/${id}/json`);
        return ms(t);
      },
    },
  });
}

// system df with many images and containers: the figure is whether sizes are kept or walked.
workloads.push({
  name: 'system df, 200 images and 1,000 containers', unit: 'ms', rounds: 3, scale: true,
  setup: async (d) => {
    d.docker(['load', '-q', '-i', await archive('df', { images: 200, name: 'bench/df' })]);
    return createMany(d, 1000);
  },
  teardown: async (d, ids) => {
    await removeAll(d, ids);
    rmiPrefix(d, 'bench/df', 200);
  },
  run: async (d) => {
    const xs = [];
    for (let i = 0; i < 5; i++) {
      const t = process.hrtime.bigint();
      const r = await d.api('GET', '/system/df');
      if (r.status !== 200 || (r.json.Images?.length ?? 0) < 200) throw new Error(`system df: ${r.status}`);
      xs.push(ms(t));
    }
    return median(xs);
  },
});

const only = args.rest.filter((a) => !a.startsWith('-'));
const selected = workloads.filter((w) => (only.length ? only.some((o) => w.name.includes(o)) : !w.scale || args.rest.includes('--scale')));
const daemons = await benchDaemons(args);
const rows = [];
try {
  for (const d of daemons) ensureBusybox(d);
  for (const w of selected) {
    // figures[row][daemon] = list of round figures; a workload may give two rows (a pair, or an 'also').
    const also = w.also ? [w.also].flat() : [];
    const names = [w.name, ...(w.pair ? [w.pair] : []), ...also.map((a) => a.name)];
    const figures = names.map(() => daemons.map(() => []));
    const state = [];
    for (const [i, d] of daemons.entries()) state[i] = w.setup ? await w.setup(d) : undefined;
    try {
      for (let r = 0; r < (w.rounds ?? args.rounds); r++) {
        for (const [i, d] of daemons.entries()) {
          const v = await w.run(d, state[i]);
          const vs = Array.isArray(v) ? v : [v];
          for (const a of also) vs.push(await a.run(d, state[i]));
          vs.forEach((x, k) => figures[k][i].push(x));
        }
      }
    } finally {
      for (const [i, d] of daemons.entries()) if (w.teardown) await w.teardown(d, state[i]);
    }
    names.forEach((name, k) => {
      const row = { name, unit: w.unit, target: k === 0 || w.pair ? w.target : undefined, values: figures[k].map((xs) => median(xs)) };
      rows.push(row);
      console.log(formatRow(row));
    });
  }
} finally {
  for (const d of daemons) await d.close();
}

console.log(`\n| figure | ${daemons.map((d) => d.name).join(' | ')} |${daemons.length > 1 ? ' ratio | target |' : ''}`);
console.log(`|---|${daemons.map(() => '---|').join('')}${daemons.length > 1 ? '---|---|' : ''}`);
for (const r of rows) {
  const cells = r.values.map((v) => fmt(v, r.unit));
  const ratio = r.values.length > 1 && r.values[0] !== undefined && r.values[1] ? r.values[0] / r.values[1] : undefined;
  const extra = daemons.length > 1 ? ` ${ratio?.toFixed(2) ?? '—'} | ${r.target !== undefined ? `≤ ${r.target}${ratio !== undefined ? (ratio <= r.target ? ' ✓' : ' ✗') : ''}` : '—'} |` : '';
  console.log(`| ${r.name} | ${cells.join(' | ')} |${extra}`);
}

function fmt(v, unit) {
  if (v === undefined) return 'n/a';
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${unit}`;
}

function formatRow(r) {
  return `${r.name}: ${r.values.map((v, i) => `${daemons[i].name} ${fmt(v, r.unit)}`).join(', ')}`;
}
