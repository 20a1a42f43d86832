#!/usr/bin/env node
// Runs every benchmark script in bench/ (timings are reported, never asserted). Needs root and a build.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const only = process.argv.slice(2);
let failed = 0;
for (const f of readdirSync(dir).sort()) {
  if (!f.endsWith('.js') || f === 'run.js') continue;
  if (only.length > 0 && !only.some((o) => f.includes(o))) continue;
  console.log(`\n== ${f}`);
  const r = spawnSync(process.execPath, [`${dir}/${f}`], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
