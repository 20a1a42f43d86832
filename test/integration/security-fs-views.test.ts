// Issue #19, container views: `docker cp` on a stopped container mounts its root privately and binds its volumes
// at their destinations inside. A volume nested in another one (-v V:/v -v W:/v/sub) is bound on a name inside V,
// and V is shared with a running container that swaps that name for a symlink to a host directory
// (RENAME_EXCHANGE in a loop): the bind must land inside the view or fail, never over the host directory.

import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { loadRacerImage, removeAllContainers, startRacer } from './security-fs-harness.js';

/** Mount points at or below `dir` in this mount namespace (only what the test created is looked at). */
function mountsAt(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

describe('security: container views', () => {
  let d: TestDaemon;
  let dir: string;
  let target: string;

  beforeAll(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'berth-sec-vw-'));
    target = mkdtempSync(join(tmpdir(), 'berth-mnt-target-'));
    chmodSync(target, 0o755);
    await loadRacerImage(d, dir, 'sec-racer:1');
    for (const v of ['sec-vw-outer', 'sec-vw-inner']) expect((await d.docker(['volume', 'create', v])).code).toBe(0);
    const seed = await d.docker(['run', '--rm', '-v', 'sec-vw-inner:/w', 'busybox', 'sh', '-c', 'echo inner > /w/marker']);
    expect(seed.code, seed.stderr).toBe(0);
    const a = await d.docker(['create', '--name', 'sec-vw-victim', '-v', 'sec-vw-outer:/v', '-v', 'sec-vw-inner:/v/sub', 'busybox', 'true']);
    expect(a.code, a.stderr).toBe(0);
    // Started once, so its mount points exist in its layer (a read-only view binds only onto existing ones).
    const ran = await d.docker(['start', '-a', 'sec-vw-victim']);
    expect(ran.code, ran.stderr).toBe(0);
    await startRacer(d, 'sec-vw-racer', [
      '-v',
      'sec-vw-outer:/s',
      'sec-racer:1',
      'sh',
      '-c',
      `mkdir -p /s/sub && ln -sfn ${target} /s/sublink && exec /racer exchange /s/sub /s/sublink`,
    ]);
  });

  afterAll(async () => {
    // Whatever a failed run left mounted over the host directory goes first.
    for (let i = 0; i < 100 && target && mountsAt(target).length > 0; i++) await runCommand('umount', ['-l', target]);
    if (d) {
      await removeAllContainers(d);
      await d.docker(['volume', 'rm', 'sec-vw-outer', 'sec-vw-inner']);
      await d.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(target, { recursive: true, force: true });
  });

  it('docker cp from a stopped container never mounts a volume over a host path swapped in by a racer', async () => {
    let copied = 0;
    // Before the fix the volume landed on the host directory within about 20 tries.
    for (let i = 0; i < 100; i++) {
      const r = await d.docker(['cp', 'sec-vw-victim:/v/sub/marker', '-'], { timeoutMs: 60_000 });
      if (r.code === 0 && r.stdout.includes('inner')) copied++;
      expect(mountsAt(target), `iteration ${i}: a volume was mounted over the host directory`).toEqual([]);
      expect(readdirSync(target), `iteration ${i}`).toEqual([]);
    }
    expect(copied).toBeGreaterThan(0); // the nested volume was bound (inside the view) at least sometimes
  }, 300_000);

  it('a stopped container view is mounted nosuid and nodev, its volumes too', async () => {
    // A large file keeps the view mounted while its archive waits on a reader that does not read.
    const big = await d.docker(['run', '--rm', '-v', 'sec-vw-outer:/s', 'busybox', 'dd', 'if=/dev/zero', 'of=/s/big', 'bs=1M', 'count=64']);
    expect(big.code, big.stderr).toBe(0);
    const res = await request(`http://localhost/containers/sec-vw-victim/archive?path=${encodeURIComponent('/v/big')}`, { dispatcher: d.agent });
    try {
      expect(res.statusCode).toBe(200);
      const views = join(d.execRoot, 'views');
      const lines = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => (l.split(' ')[4] ?? '').startsWith(`${views}/`));
      expect(lines.length).toBeGreaterThanOrEqual(2); // the root and the volume
      for (const l of lines) expect((l.split(' ')[5] ?? '').split(','), l).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
    } finally {
      res.body.destroy();
    }
  });
});
