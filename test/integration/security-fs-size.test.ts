// Issue #19 (found while auditing the same pattern): `docker ps -s` / inspect --size / system df walk the
// container's writable layer on the host. A running container that swaps a directory of its root for a symlink to
// a host directory must not make berthd walk (and report the size of) the host directory.

import { chmodSync, closeSync, ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { loadRacerImage, removeAllContainers, startRacer } from './security-fs-harness.js';

describe('security: layer size walks', () => {
  let d: TestDaemon;
  let dir: string;
  let hostBig: string;

  beforeAll(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'berth-sec-sz-'));
    // A host directory holding an 8 GiB sparse file: counted, it shows as GB in the container's size.
    hostBig = mkdtempSync(join(tmpdir(), 'berth-host-big-'));
    chmodSync(hostBig, 0o755);
    const fd = openSync(join(hostBig, 'sparse'), 'w');
    ftruncateSync(fd, 8 * 1024 ** 3);
    closeSync(fd);
    await loadRacerImage(d, dir, 'sec-racer:1');
    await startRacer(d, 'sec-sz-racer', ['sec-racer:1', 'sh', '-c', `mkdir /d && ln -s ${hostBig} /dl && exec /racer exchange /d /dl`]);
  });

  afterAll(async () => {
    if (d) {
      await removeAllContainers(d);
      await d.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(hostBig, { recursive: true, force: true });
  });

  it('docker ps -s never counts a host directory swapped in for a directory of the container', async () => {
    // Before the fix the host directory was counted within about 20 tries.
    for (let i = 0; i < 120; i++) {
      const r = await d.docker(['ps', '-s', '--filter', 'name=sec-sz-racer', '--format', '{{.Size}}']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout, `iteration ${i}`).not.toMatch(/GB/);
    }
  }, 300_000);
});
