#!/usr/bin/env node
// Network sandbox cost against a real berthd (as root, after `npm run build`): `docker run --rm busybox true`
// with the default bridge, with a published port (-p 80: proxy and firewall rules), --network none and
// --network host, interleaved so machine load hits all alike. Prints medians and the overhead over host
// mode. Asserts nothing.
//   node bench/network-sandbox.js [rounds=20] [mode...]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxRootfs, dockerCli, median } from './lib/common.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const rounds = Number(process.argv[2] ?? 20);
const only = process.argv.slice(3); // a subset of: bridge publish none host
const dir = mkdtempSync(join(tmpdir(), 'bn-'));
const sock = join(dir, 'd.sock');
const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, 'cfg') };
const docker = dockerCli(env);

// KEEP_LOG=<file>: the daemon logs at debug level into that file (timings of the sandbox steps).
const keepLog = process.env.KEEP_LOG;
const daemon = spawn(
  process.execPath,
  [MAIN, '--host', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', '/dev/null', '--log-level', keepLog ? 'debug' : 'info'],
  { stdio: ['ignore', keepLog ? openSync(keepLog, 'w') : 'ignore', 'ignore'] },
);
try {
  for (let i = 0; i < 200; i++) {
    if (docker(['version'], { allowFail: true }).status === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const tar = spawnSync('tar', ['-C', busyboxRootfs(dir), '-c', '.'], { maxBuffer: 1 << 28 }).stdout;
  docker(['import', '-c', 'CMD ["sh"]', '-', 'busybox'], { input: tar });

  const args = { bridge: [], publish: ['-p', '80'], none: ['--network', 'none'], host: ['--network', 'host'] };
  const modes = Object.fromEntries((only.length > 0 ? only : Object.keys(args)).map((m) => [m, []]));
  for (const m of Object.keys(modes)) docker(['run', '--rm', ...args[m], 'busybox', 'true']);
  const load0 = loadavg()[0];
  for (let i = 0; i < rounds; i++) {
    for (const m of Object.keys(modes)) {
      const t = process.hrtime.bigint();
      docker(['run', '--rm', ...args[m], 'busybox', 'true']);
      modes[m].push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  const load1 = loadavg()[0];
  const host = modes.host ? median(modes.host) : undefined;
  for (const [m, xs] of Object.entries(modes)) {
    const extra = m === 'host' || host === undefined ? '' : ` (+${(median(xs) - host).toFixed(1)} over host)`;
    console.log(`docker run --rm ${args[m].join(' ') || '(bridge)'} busybox true: median ${median(xs).toFixed(1)} ms, min ${Math.min(...xs).toFixed(1)}${extra}`);
  }
  console.log(`n=${rounds} each, load average ${load0.toFixed(2)} -> ${load1.toFixed(2)}`);
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
