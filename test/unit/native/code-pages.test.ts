// releaseCodePages (native/addon/code_pages.c) in a node of its own: it drops the mappings of the clean pages of
// the executable and the shared libraries, and the process runs on, mapping again what it uses.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ADDON = fileURLToPath(new URL('../../../native/build/berth_addon.node', import.meta.url));

const SCRIPT = `
const fs = require('node:fs');
const addon = require(process.argv[1]);
const exe = fs.realpathSync('/proc/self/exe');
// resident KiB of the executable's mappings and of the shared libraries' (paths with .so)
const mapped = () => {
  const kb = { exe: 0, libs: 0 };
  let into;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \\S+ \\S+ \\S+ \\S+\\s+(.*)$/.exec(line);
    if (m) into = m[1] === exe ? 'exe' : /\\.so(\\.|$)/.test(m[1]) ? 'libs' : undefined;
    else if (into && line.startsWith('Rss:')) kb[into] += Number(line.split(/\\s+/)[1]);
  }
  return kb;
};
const before = mapped();
const released = addon.releaseCodePages();
const after = mapped();
// JS, the compiler and the runtime still work once their pages are gone
let h = 0;
for (let i = 0; i < 1e6; i++) h = (h * 31 + i) | 0;
JSON.parse(JSON.stringify({ h, s: 'x'.repeat(1000) }));
require('node:zlib').gzipSync(Buffer.alloc(1 << 16));
process.stdout.write(JSON.stringify({ before, released, after }));
`;

interface Kb {
  exe: number;
  libs: number;
}

describe('releaseCodePages', () => {
  it('drops the mapped pages of the node executable and its shared libraries, and the process runs on', () => {
    const r = spawnSync(process.execPath, ['-e', SCRIPT, ADDON], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const { before, released, after } = JSON.parse(r.stdout) as { before: Kb; released: number; after: Kb };
    expect(released).toBeGreaterThan(0);
    expect(released).toBeLessThanOrEqual(before.exe + before.libs);
    // Node from nodejs.org is one big executable; Debian's is a small one linking libnode.so: the code falls in both
    expect(after.exe + after.libs).toBeLessThan(before.exe + before.libs);
    expect(after.libs).toBeLessThan(before.libs);
  });
});
