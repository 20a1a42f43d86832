#!/usr/bin/env node
// Container benchmarks against a real berthd (as root, after `npm run build`): run latency, raw-API
// lifecycle, attach throughput, log reading, shim memory. Reports figures; asserts nothing.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxRootfs, dockerCli, median } from './lib/common.js';
import { Agent, request } from 'undici';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bb-'));
const sock = join(dir, 'd.sock');
const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, 'cfg') };
const docker = dockerCli(env);
const agent = new Agent({ connect: { socketPath: sock } });

async function api(method, path, body) {
  const res = await request(`http://localhost${path}`, {
    method,
    dispatcher: agent,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
}

const daemon = spawn(process.execPath, [MAIN, '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', '/dev/null'], {
  stdio: 'ignore',
});
try {
  for (let i = 0; i < 200; i++) {
    if (docker(['version'], { allowFail: true }).status === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const tar = spawnSync('tar', ['-C', busyboxRootfs(dir), '-c', '.'], { maxBuffer: 1 << 28 }).stdout;
  docker(['import', '-c', 'CMD ["sh"]', '-', 'busybox'], { input: tar });

  // 1. docker run --rm busybox true (CLI end to end)
  docker(['run', '--rm', 'busybox', 'true']);
  const runs = [];
  for (let i = 0; i < 20; i++) {
    const t = process.hrtime.bigint();
    docker(['run', '--rm', 'busybox', 'true']);
    runs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  console.log(`docker run --rm busybox true: median ${median(runs).toFixed(1)} ms (min ${Math.min(...runs).toFixed(1)}, n=${runs.length}; dockerd 20.10 here: ~360 ms)`);

  // 2. create + start + wait + remove over the raw API
  const cycles = [];
  for (let i = 0; i < 20; i++) {
    const t = process.hrtime.bigint();
    const { json } = await api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'] });
    const wait = api('POST', `/containers/${json.Id}/wait?condition=next-exit`);
    await api('POST', `/containers/${json.Id}/start`);
    await wait;
    await api('DELETE', `/containers/${json.Id}`);
    cycles.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  console.log(`create+start+wait+remove (raw API): median ${median(cycles).toFixed(1)} ms (n=${cycles.length})`);

  // 3. attach throughput: 200 MB through stdout
  const bytes = 200 * 1000 * 1000;
  let t = process.hrtime.bigint();
  const out = docker(['run', '--rm', 'busybox', 'head', '-c', String(bytes), '/dev/zero'], { maxBuffer: bytes + 1024 });
  let secs = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(`attach throughput: ${(out.stdout.length / 1e6 / secs).toFixed(1)} MB/s (${out.stdout.length} bytes in ${secs.toFixed(2)} s; dockerd 20.10 here: ~23 MB/s)`);

  // 4. reading 100k log lines
  docker(['run', '--name', 'chatty', 'busybox', 'sh', '-c', 'seq 1 100000']);
  t = process.hrtime.bigint();
  const logs = docker(['logs', 'chatty']);
  secs = Number(process.hrtime.bigint() - t) / 1e9;
  const lines = logs.stdout.toString().split('\n').length - 1;
  console.log(`docker logs of 100k lines: ${(secs * 1000).toFixed(0)} ms (${lines} lines)`);
  docker(['rm', 'chatty']);

  // 5. resident memory of one idle berth-shim
  const id = docker(['run', '-d', 'busybox', 'sleep', '60']).stdout.toString().trim();
  const shim = JSON.parse(readFileSync(join(dir, 'data', 'containers', id, 'shim.json'), 'utf8'));
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${shim.shimPid}/status`, 'utf8'))?.[1];
  console.log(`idle berth-shim RSS: ${(Number(rss) / 1024).toFixed(2)} MiB (containerd-shim-runc-v2: ~13 MiB)`);
  docker(['rm', '-f', id]);
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
}
