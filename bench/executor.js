#!/usr/bin/env node
// Executor figures (reported, never asserted): create+start+wait of `true`, and the RSS of an idle
// container's berth-shim. Needs root and a build (`npm run build`). Targets: start well under 360 ms,
// shim RSS under 2 MiB.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Executor } from '../dist/runtime/executor.js';
import { DEFAULT_CAPABILITIES } from '../dist/runtime/capabilities.js';
import { DEFAULT_PATH, DEFAULT_READONLY_PATHS, defaultMaskedPaths, defaultMounts, defaultNamespaces } from '../dist/runtime/defaults.js';

if (process.getuid?.() !== 0) {
  console.log('skipped: needs root');
  process.exit(0);
}
const root = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync('/tmp/bxb-');
const lower = join(tmp, 'lower');
for (const d of ['bin', 'dev', 'proc', 'sys', 'etc', 'tmp']) mkdirSync(join(lower, d), { recursive: true });
chmodSync(join(lower, 'tmp'), 0o1777);
copyFileSync('/bin/busybox', join(lower, 'bin/busybox'));
chmodSync(join(lower, 'bin/busybox'), 0o755);
for (const a of ['true', 'sleep', 'sh']) symlinkSync('busybox', join(lower, 'bin', a));
writeFileSync(join(lower, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');

const ex = new Executor({ execRoot: join(tmp, 'x'), shimPath: process.env.BERTH_SHIM ?? join(root, 'native/build/berth-shim'), log: pino({ level: 'silent' }) });
let n = 0;
function spec(args) {
  return {
    ociVersion: '1.0.2-dev',
    process: {
      user: { uid: 0, gid: 0 },
      args,
      env: [`PATH=${DEFAULT_PATH}`],
      cwd: '/',
      capabilities: { bounding: [...DEFAULT_CAPABILITIES], effective: [...DEFAULT_CAPABILITIES], permitted: [...DEFAULT_CAPABILITIES] },
    },
    hostname: 'bench',
    mounts: defaultMounts(),
    linux: { namespaces: defaultNamespaces(false), maskedPaths: defaultMaskedPaths(), readonlyPaths: [...DEFAULT_READONLY_PATHS] },
  };
}
async function create(args) {
  const id = `bench${String(++n).padStart(4, '0')}`.padEnd(64, '0');
  const bundle = join(tmp, id.slice(0, 10));
  mkdirSync(join(bundle, 'upper'), { recursive: true });
  mkdirSync(join(bundle, 'work'), { recursive: true });
  await ex.create(id, {
    bundleDir: bundle,
    spec: spec(args),
    rootfs: { type: 'overlay', lowerDirs: [lower], upperDir: join(bundle, 'upper'), workDir: join(bundle, 'work') },
    logPath: join(bundle, 'log.json'),
    tty: false,
    openStdin: false,
    stdinOnce: false,
  });
  return { id, bundle };
}

try {
  const times = [];
  for (let i = 0; i < 10; i++) {
    const t0 = process.hrtime.bigint();
    const { id } = await create(['true']);
    await ex.start(id);
    await ex.waitExit(id);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await ex.delete(id);
  }
  times.sort((a, b) => a - b);
  console.log(`create+start+wait(true): median ${times[5].toFixed(1)} ms, min ${times[0].toFixed(1)} ms, max ${times[9].toFixed(1)} ms (10 runs, no cgroup, no seccomp)`);

  const { id, bundle } = await create(['sleep', '60']);
  await ex.start(id);
  const { shimPid } = JSON.parse(readFileSync(join(bundle, 'shim.json'), 'utf8'));
  const status = readFileSync(`/proc/${shimPid}/status`, 'utf8');
  const field = (k) => /^(\S+):\s+(\d+) kB$/m.test(status) ? (new RegExp(`^${k}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? '?') : '?';
  console.log(`idle shim: VmRSS ${field('VmRSS')} kB (RssAnon ${field('RssAnon')} kB, RssFile ${field('RssFile')} kB, RssShmem ${field('RssShmem')} kB)`);
  await ex.kill(id, 9);
  await ex.waitExit(id);
  await ex.delete(id);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
