#!/usr/bin/env node
// Image load throughput: a docker-save archive of a 200 MB image with 20,000 files (3 layers) is loaded
// through the real docker CLI into a fresh berthd. Reports MB/s and files/s; compare with dockerd's
// `docker load` of the same file (the script prints the path with --keep). Needs root and a build.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pack } from 'tar-stream';

const FILES = Number(process.env.BENCH_FILES ?? 20_000);
const TOTAL = Number(process.env.BENCH_BYTES ?? 200_000_000);
const LAYERS = 3;
const keep = process.argv.includes('--keep');
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'berth-bench-img-'));

/** Streams a tar made of `entries` ({name, size} or {name, dir}) into `out`, returning its sha256. */
async function writeTar(entries, out, content) {
  const p = pack();
  const hash = createHash('sha256');
  p.on('data', (c) => hash.update(c));
  const done = new Promise((resolve, reject) => {
    p.pipe(out);
    out.on('finish', resolve);
    out.on('error', reject);
  });
  for (const e of entries) {
    if (e.dir) await new Promise((r, j) => p.entry({ name: `${e.name}/`, type: 'directory', mode: 0o755 }, (err) => (err ? j(err) : r())));
    else if (e.file) await new Promise((r, j) => {
      const s = p.entry({ name: e.name, size: e.size, mode: 0o644 }, (err) => (err ? j(err) : r()));
      const rs = (async function* () { yield* e.file(); })();
      (async () => { for await (const c of rs) if (!s.write(c)) await new Promise((x) => s.once('drain', x)); s.end(); })().catch(j);
    });
    else await new Promise((r, j) => p.entry({ name: e.name, size: e.size, mode: e.mode ?? 0o644 }, content(e.size), (err) => (err ? j(err) : r())));
  }
  p.finalize();
  await done;
  return `sha256:${hash.digest('hex')}`;
}

async function makeArchive() {
  const layerFiles = [];
  const diffIds = [];
  const per = Math.ceil(FILES / LAYERS);
  const avg = Math.floor(TOTAL / FILES);
  const pool = randomBytes(4 * avg + 65536); // incompressible-ish content, sliced per file
  const content = (size) => pool.subarray(0, size);
  for (let l = 0; l < LAYERS; l++) {
    const entries = [];
    for (let d = 0; d < Math.ceil(per / 100); d++) entries.push({ name: `l${l}/d${d}`, dir: true });
    for (let i = 0; i < per; i++) {
      // Sizes vary from 0 to 2x the average, mixing many small files with some larger ones.
      const size = Math.floor(((i * 7919) % 2000) / 1000 * avg);
      entries.push({ name: `l${l}/d${Math.floor(i / 100)}/f${i}`, size });
    }
    const path = join(dir, `layer${l}.tar`);
    diffIds.push(await writeTar(entries, createWriteStream(path), content));
    layerFiles.push(path);
  }
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z', config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `bench layer ${i}` })),
  }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const archive = join(dir, 'bench-image.tar');
  const outer = [
    ...layerFiles.map((f, i) => ({ name: `layer${i}/layer.tar`, size: statSync(f).size, file: () => streamFile(f) })),
    { name: configName, size: config.length, file: async function* () { yield config; } },
  ];
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ['bench/load:200mb'], Layers: layerFiles.map((_, i) => `layer${i}/layer.tar`) }]));
  outer.push({ name: 'manifest.json', size: manifest.length, file: async function* () { yield manifest; } });
  await writeTar(outer, createWriteStream(archive), () => Buffer.alloc(0));
  for (const f of layerFiles) rmSync(f);
  return archive;
}

async function* streamFile(path) {
  const { createReadStream } = await import('node:fs');
  yield* createReadStream(path, { highWaterMark: 1 << 20 });
}

async function waitForSocket(sock, child) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error('berthd exited during start-up');
    const r = spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { env: { ...process.env, DOCKER_HOST: `unix://${sock}` } });
    if (r.status === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('berthd did not start');
}

async function main() {
  if (!existsSync(MAIN)) throw new Error('run `npm run build` first');
  const t0 = Date.now();
  const archive = await makeArchive();
  const size = statSync(archive).size;
  console.log(`archive: ${(size / 1e6).toFixed(1)} MB, ${FILES} files in ${LAYERS} layers (built in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const sock = join(dir, 'd.sock');
  const child = spawn(process.execPath, [MAIN, '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', '/dev/null', '--log-level', process.env.BENCH_LOG ?? 'warn'], { stdio: process.env.BENCH_LOG ? ['ignore', 'inherit', 'inherit'] : 'ignore' });
  try {
    await waitForSocket(sock, child);
    const env = { ...process.env, DOCKER_HOST: `unix://${sock}` };
    spawnSync('sync');
    const start = process.hrtime.bigint();
    const r = spawnSync('docker', ['load', '-q', '-i', archive], { env, encoding: 'utf8' });
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    if (r.status !== 0) throw new Error(`docker load failed: ${r.stderr}`);
    console.log(r.stdout.trim());
    console.log(`berthd docker load: ${secs.toFixed(2)} s, ${(size / 1e6 / secs).toFixed(1)} MB/s, ${Math.round(FILES / secs)} files/s`);
    const again = process.hrtime.bigint();
    spawnSync('docker', ['rmi', 'bench/load:200mb'], { env });
    console.log(`docker rmi: ${(Number(process.hrtime.bigint() - again) / 1e9).toFixed(2)} s`);
    if (keep) console.log(`archive kept at ${archive} (compare: time docker load -i ${archive} against dockerd)`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    if (!keep) rmSync(dir, { recursive: true, force: true });
    else rmSync(join(dir, 'data'), { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
