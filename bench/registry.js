#!/usr/bin/env node
// Registry throughput: a 200 MB image (4 layers of incompressible files) is pushed to and pulled from Debian's
// docker-registry on 127.0.0.1 through the real docker CLI and a fresh berthd; once with uncompressed layers
// (docker load → push → rmi → pull) and once with gzip layers uploaded raw (pull only). Reports MB/s.
// --compare unix:///path also pulls both images with that daemon (a reference dockerd), alternating with Berth,
// --rounds N times (median): both daemons pull the very same registry copies (the uncompressed one Berth pushed,
// the gzip one uploaded raw), so the figures compare like with like. --keep prints the archive and registry.
// Needs root, docker-registry and a build.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { request } from 'undici';
import { dockerCli, freePort, median } from './lib/common.js';
import { benchArgs, connectDaemon } from './lib/daemons.js';

const TOTAL = Number(process.env.BENCH_BYTES ?? 200_000_000);
const LAYERS = 4;
const FILE = 1_000_000;
const args = benchArgs();
const keep = args.rest.includes('--keep');
const MAIN = process.env.BERTHD_MAIN ?? fileURLToPath(new URL('../dist/main.js', import.meta.url));
const REGISTRY = '/usr/bin/docker-registry';
const dir = mkdtempSync(join(tmpdir(), 'berth-bench-reg-'));
const children = [];

async function waitFor(check, what) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what} did not come up`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function writeLayer(path, l) {
  const p = pack();
  const hash = createHash('sha256');
  p.on('data', (c) => hash.update(c));
  const out = createWriteStream(path);
  const done = pipeline(p, out);
  const files = Math.floor(TOTAL / LAYERS / FILE);
  for (let i = 0; i < files; i++) {
    const data = randomBytes(FILE);
    await new Promise((r, j) => p.entry({ name: `l${l}/f${i}`, size: FILE, mode: 0o644 }, data, (e) => (e ? j(e) : r())));
  }
  p.finalize();
  await done;
  return `sha256:${hash.digest('hex')}`;
}

function sha256File(path) {
  const h = createHash('sha256');
  h.update(readFileSync(path));
  return `sha256:${h.digest('hex')}`;
}

async function main() {
  if (!existsSync(REGISTRY)) throw new Error(`${REGISTRY} is missing: apt-get install -y docker-registry`);
  // The image: layer tars, then a docker-save archive around them.
  const layers = [];
  for (let l = 0; l < LAYERS; l++) {
    const path = join(dir, `layer${l}.tar`);
    layers.push({ path, diffId: await writeLayer(path, l) });
  }
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z', config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `bench layer ${i}` })),
  }));
  const configHex = createHash('sha256').update(config).digest('hex');
  const archive = join(dir, 'image.tar');
  {
    const p = pack();
    const done = pipeline(p, createWriteStream(archive));
    const add = (name, data) => new Promise((r, j) => p.entry({ name, size: data.length, mode: 0o644 }, data, (e) => (e ? j(e) : r())));
    await add(`${configHex}.json`, config);
    for (let i = 0; i < LAYERS; i++) {
      const size = statSync(layers[i].path).size;
      await new Promise((r, j) => {
        const s = p.entry({ name: `l${i}/layer.tar`, size, mode: 0o644 }, (e) => (e ? j(e) : r()));
        pipeline(createReadStream(layers[i].path), s).catch(j);
      });
    }
    await add('manifest.json', Buffer.from(JSON.stringify([{ Config: `${configHex}.json`, RepoTags: ['bench/reg:1'], Layers: layers.map((_, i) => `l${i}/layer.tar`) }])));
    p.finalize();
    await done;
  }
  const imageBytes = layers.reduce((n, l) => n + statSync(l.path).size, 0);

  // Registry and daemon.
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  writeFileSync(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\nhttp:\n  addr: ${host}\n  secret: ${randomBytes(8).toString('hex')}\n`);
  const regLog = openSync(join(dir, 'registry.log'), 'a');
  const reg = spawn(REGISTRY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', regLog, regLog] });
  closeSync(regLog);
  children.push(reg);
  await waitFor(async () => (await request(`http://${host}/v2/`)).statusCode === 200, 'docker-registry');
  const sock = join(dir, 'docker.sock');
  writeFileSync(join(dir, 'daemon.json'), '{}');
  const dlog = openSync(join(dir, 'berthd.log'), 'a');
  const daemon = spawn(process.execPath, [...(process.env.BERTHD_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.BERTHD_PROF] : []), MAIN, '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', join(dir, 'daemon.json'), '--log-level', 'warn'], { stdio: ['ignore', dlog, dlog] });
  closeSync(dlog);
  children.push(daemon);
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, 'docker-config') };
  const docker = (...args) => {
    const t = process.hrtime.bigint();
    const r = spawnSync('docker', args, { env, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  await waitFor(() => spawnSync('docker', ['version'], { env }).status === 0, 'berthd');
  const name = `${host}/bench/reg:1`;
  const mb = (bytes, s) => (bytes / 1e6 / s).toFixed(1);

  docker('load', '-i', archive);
  docker('tag', 'bench/reg:1', name);
  const push = docker('push', name);
  console.log(`push  ${(imageBytes / 1e6).toFixed(0)} MB, ${LAYERS} uncompressed layers: ${push.toFixed(2)} s, ${mb(imageBytes, push)} MB/s`);
  docker('rmi', 'bench/reg:1', name);
  const pull = docker('pull', name);
  console.log(`pull  ${(imageBytes / 1e6).toFixed(0)} MB, ${LAYERS} uncompressed layers: ${pull.toFixed(2)} s, ${mb(imageBytes, pull)} MB/s (download, verify, extract)`);
  docker('rmi', name);

  // gzip layers, uploaded with raw distribution calls, then pulled.
  const descs = [];
  for (const l of layers) {
    const gz = `${l.path}.gz`;
    await pipeline(createReadStream(l.path), createGzip({ level: 1 }), createWriteStream(gz));
    const digest = sha256File(gz);
    const size = statSync(gz).size;
    const start = await request(`http://${host}/v2/bench/gz/blobs/uploads/`, { method: 'POST' });
    await start.body.dump();
    const loc = new URL(String(start.headers.location), `http://${host}`);
    loc.searchParams.set('digest', digest);
    const put = await request(loc.toString(), { method: 'PUT', headers: { 'content-length': String(size) }, body: createReadStream(gz) });
    await put.body.dump();
    descs.push({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size, digest });
  }
  {
    const start = await request(`http://${host}/v2/bench/gz/blobs/uploads/`, { method: 'POST' });
    await start.body.dump();
    const loc = new URL(String(start.headers.location), `http://${host}`);
    loc.searchParams.set('digest', `sha256:${configHex}`);
    await (await request(loc.toString(), { method: 'PUT', body: config })).body.dump();
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: `sha256:${configHex}` }, layers: descs });
    const r = await request(`http://${host}/v2/bench/gz/manifests/1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' }, body: manifest });
    await r.body.dump();
  }
  const gzBytes = descs.reduce((n, d) => n + d.size, 0);
  const gzPull = docker('pull', `${host}/bench/gz:1`);
  console.log(`pull  ${(gzBytes / 1e6).toFixed(0)} MB, ${LAYERS} gzip layers: ${gzPull.toFixed(2)} s, ${mb(gzBytes, gzPull)} MB/s compressed (${mb(imageBytes, gzPull)} MB/s of layer data)`);
  docker('rmi', `${host}/bench/gz:1`);

  if (args.compare) {
    // Same images, same registry, alternating daemons; each pull starts from an empty image store.
    const ref = connectDaemon(args.compare);
    const timed = (run, a) => {
      const t = process.hrtime.bigint();
      run(a);
      return Number(process.hrtime.bigint() - t) / 1e9;
    };
    const berthRun = dockerCli(env);
    const refRun = ref.docker;
    try {
      for (const [label, image, bytes] of [['uncompressed', name, imageBytes], ['gzip', `${host}/bench/gz:1`, gzBytes]]) {
        const t = { Berth: [], dockerd: [] };
        for (let i = 0; i < args.rounds; i++) {
          for (const [who, run] of [['Berth', berthRun], ['dockerd', refRun]]) {
            run(['rmi', '-f', image], { allowFail: true });
            t[who].push(timed(run, ['pull', '-q', image]));
            run(['rmi', '-f', image]);
          }
        }
        const b = median(t.Berth);
        const d = median(t.dockerd);
        console.log(`compare pull ${(bytes / 1e6).toFixed(0)} MB ${label}: Berth ${b.toFixed(2)} s, dockerd ${d.toFixed(2)} s, ratio ${(b / d).toFixed(2)} (median of ${args.rounds}; Berth ${t.Berth.map((x) => x.toFixed(2)).join(' ')}; dockerd ${t.dockerd.map((x) => x.toFixed(2)).join(' ')})`);
      }
    } finally {
      await ref.close();
    }
  }
  if (keep) console.log(`kept: archive ${archive}, registry ${host} (config ${join(dir, 'config.yml')})`);
}

try {
  await main();
} finally {
  for (const c of children.reverse()) {
    if (c.exitCode === null) {
      const done = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await done;
      clearTimeout(t);
    }
  }
  if (!keep) rmSync(dir, { recursive: true, force: true });
}
