// releaseExePages (native/addon/exe_pages.c) in a node of its own: it drops the mappings of the executable's clean
// pages, and the process runs on, mapping again what it uses.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ADDON = fileURLToPath(new URL('../../../native/build/berth_addon.node', import.meta.url));

const SCRIPT = `
const addon = require(process.argv[1]);
const exeRss = () => {
  // the executable's own mappings, summed from smaps
  const exe = require('node:fs').readlinkSync('/proc/self/exe');
  let kb = 0, mine = false;
  for (const line of require('node:fs').readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) mine = line.endsWith(' ' + exe);
    else if (mine && line.startsWith('Rss:')) kb += Number(line.split(/\\s+/)[1]);
  }
  return kb;
};
const before = exeRss();
const released = addon.releaseExePages();
const after = exeRss();
// JS, the compiler and the runtime still work once their pages are gone
let h = 0;
for (let i = 0; i < 1e6; i++) h = (h * 31 + i) | 0;
JSON.parse(JSON.stringify({ h, s: 'x'.repeat(1000) }));
process.stdout.write(JSON.stringify({ before, released, after }));
`;

describe('releaseExePages', () => {
  it('drops the mapped pages of the node executable and the process runs on', () => {
    const r = spawnSync(process.execPath, ['-e', SCRIPT, ADDON], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const { before, released, after } = JSON.parse(r.stdout) as { before: number; released: number; after: number };
    expect(released).toBeGreaterThan(0);
    expect(released).toBeLessThanOrEqual(before);
    expect(after).toBeLessThan(before);
  });
});
