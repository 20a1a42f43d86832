#!/usr/bin/env node
// Runs every benchmark script in bench/ (timings are reported, never asserted). Needs root and a build.
//   npm run bench -- [name …] [--compare unix:///other.sock] [--rounds N] [--scale]
// --compare and the other options go to the scripts that measure another daemon side by side (containers.js,
// build.js; daemon-start.js restarts its own reference dockerd: run it alone with --dockerd);
// a reference dockerd comes from scripts/reference-dockerd.sh start.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const COMPARING = new Set(['containers.js', 'build.js']);
const argv = process.argv.slice(2);
const options = [];
const only = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--compare' || argv[i] === '--rounds') options.push(argv[i], argv[++i]);
  else if (argv[i].startsWith('--')) options.push(argv[i]);
  else only.push(argv[i]);
}
let failed = 0;
for (const f of readdirSync(dir).sort()) {
  if (!f.endsWith('.js') || f === 'run.js') continue;
  if (only.length > 0 && !only.some((o) => f.includes(o))) continue;
  console.log(`\n== ${f}`);
  const r = spawnSync(process.execPath, [`${dir}/${f}`, ...(COMPARING.has(f) ? options : [])], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
