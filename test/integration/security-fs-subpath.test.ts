// Issue #19 (audit of the same pattern): a volume Subpath (--mount ...,volume-subpath=) is resolved inside the
// volume and bind-mounted by descriptor. The volume is shared with a running container that swaps the subpath's
// name for a symlink to a host file (RENAME_EXCHANGE in a loop): the new container must get the volume's file or
// an error, never the host file.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { loadRacerImage, removeAllContainers, startRacer } from './security-fs-harness.js';

describe('security: volume subpaths', () => {
  let d: TestDaemon;
  let dir: string;
  let hostDir: string;
  const secret = `HOST-SUBPATH-SECRET-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'berth-sec-sp-'));
    hostDir = mkdtempSync(join(tmpdir(), 'berth-host-sp-'));
    chmodSync(hostDir, 0o755);
    writeFileSync(join(hostDir, 'secret'), `${secret}\n`);
    await loadRacerImage(d, dir, 'sec-racer:1');
    expect((await d.docker(['volume', 'create', 'sec-sp-vol'])).code).toBe(0);
  });

  afterAll(async () => {
    if (d) {
      await removeAllContainers(d);
      await d.docker(['volume', 'rm', 'sec-sp-vol']);
      await d.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(hostDir, { recursive: true, force: true });
  });

  it('a file subpath swapped for a symlink to a host file never mounts the host file', async () => {
    await startRacer(d, 'sec-sp-racer', [
      '-v',
      'sec-sp-vol:/s',
      'sec-racer:1',
      'sh',
      '-c',
      `echo inside > /s/file && ln -s ${join(hostDir, 'secret')} /s/link && exec /racer exchange /s/file /s/link`,
    ]);
    let inside = 0;
    for (let i = 0; i < 60; i++) {
      const r = await d.docker(['run', '--rm', '--mount', 'type=volume,src=sec-sp-vol,dst=/x,volume-subpath=file', 'busybox', 'cat', '/x'], {
        timeoutMs: 60_000,
      });
      expect(r.stdout, `iteration ${i}`).not.toContain(secret);
      if (r.stdout.includes('inside')) inside++;
    }
    expect(inside).toBeGreaterThan(0); // the volume's own file is mounted when the name is the file
  }, 300_000);
});
