import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

/**
 * A separate process that stats `path` in a tight loop from before the daemon starts until it has seen the
 * final mode for a while, and prints every mode it observed. A chmod after listen() shows up as a first mode
 * of 0777 & ~umask.
 */
const WATCHER = `
const fs = require('fs');
const path = process.argv[1];
const seen = new Set();
let finalSince = 0;
const deadline = Date.now() + 30000;
while (Date.now() < deadline) {
  const st = fs.statSync(path, { throwIfNoEntry: false });
  if (st) {
    const mode = st.mode & 0o777;
    seen.add(mode);
    if (mode === 0o660) { if (!finalSince) finalSince = Date.now(); else if (Date.now() - finalSince > 300) break; }
  }
}
process.stdout.write(JSON.stringify([...seen]));
`;

describe('security: the API socket is never connectable by other users', () => {
  let d: TestDaemon | undefined;
  let dir: string | undefined;
  const saved = process.umask();
  afterAll(async () => {
    process.umask(saved);
    await d?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('never has a mode wider than 0660, even under umask 0', async () => {
    // A second --host at a path known before the daemon starts, so the watcher can be running first.
    dir = mkdtempSync(join(tmpdir(), 'bt-sockw-'));
    const sock = join(dir, 'api.sock');
    const watcher = spawn(process.execPath, ['-e', WATCHER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    watcher.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const watched = new Promise<void>((resolve) => watcher.once('close', () => resolve()));
    process.umask(0);
    try {
      d = await startDaemon({ extraArgs: ['--host', `unix://${sock}`] });
    } finally {
      process.umask(saved);
    }
    await watched;
    const modes = (JSON.parse(out) as number[]).map((m) => m.toString(8).padStart(4, '0'));
    expect(modes.length).toBeGreaterThan(0);
    for (const m of modes) expect(['0000', '0660']).toContain(m);
    expect((statSync(sock).mode & 0o777).toString(8)).toBe('660');
  });
});
