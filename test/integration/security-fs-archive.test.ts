// Issue #19, archive readers: berthd (host root, outside the container's device cgroup) reads container files for
// docker cp and export. A container with CAP_MKNOD (a default capability) swaps a regular file for a block
// device node in a loop; the archive must never carry the device's content. The "disk" is a loop device over a
// file holding a marker, so a leak is recognisable.

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { loadRacerImage, removeAllContainers, startRacer } from './security-fs-harness.js';

const PAIRS = 50;

describe('security: archive readers', () => {
  let d: TestDaemon;
  let dir: string;
  let loop = '';
  const marker = `BERTH-DISK-MARKER-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'berth-sec-ar-'));
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(1 << 20, `${marker}\n`));
    const lo = await runCommand('losetup', ['-f', '--show', disk]);
    if (lo.code !== 0) throw new Error(`losetup failed: ${lo.stderr}`);
    loop = lo.stdout.trim();
    const rdev = statSync(loop).rdev;
    const major = Math.floor(rdev / 256) & 0xfff;
    const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    await loadRacerImage(d, dir, 'sec-racer:1');
    // PAIRS regular files of 4096 'A's, each with a block device node of the loop device beside it, swapped
    // (RENAME_EXCHANGE) round robin forever.
    const setup = [
      'mkdir /race',
      `for i in $(seq 0 ${PAIRS - 1}); do head -c 4096 /dev/zero | tr '\\0' A > /race/f$i && mknod /race/d$i b ${major} ${minor} || exit 1; done`,
      `exec /racer pairs /race ${PAIRS}`,
    ].join('; ');
    await startRacer(d, 'sec-ar-racer', ['sec-racer:1', 'sh', '-c', setup]);
  });

  afterAll(async () => {
    if (d) {
      await removeAllContainers(d);
      await d.stop();
    }
    if (loop) await runCommand('losetup', ['-d', loop]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('docker cp from a running container never streams a device swapped in for a file', async () => {
    let files = 0;
    for (let i = 0; i < 40; i++) {
      const r = await d.docker(['cp', 'sec-ar-racer:/race', '-'], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.includes(marker), `iteration ${i}: device content in the archive`).toBe(false);
      files += r.stdout.split('AAAA').length > 1 ? 1 : 0;
    }
    expect(files).toBeGreaterThan(0); // the walk did read regular files
  }, 300_000);

  it('docker commit --pause=false of a running container never stores a device swapped in for a file', async () => {
    for (let i = 0; i < 5; i++) {
      const c = await d.docker(['commit', '--pause=false', 'sec-ar-racer', `sec-ar-commit:${i}`], { timeoutMs: 120_000 });
      expect(c.code, c.stderr).toBe(0);
      const out = join(dir, `commit-${i}.tar`);
      const s = await d.docker(['save', '-o', out, `sec-ar-commit:${i}`], { timeoutMs: 120_000 });
      expect(s.code, s.stderr).toBe(0);
      const grep = await runCommand('grep', ['-c', marker, out]);
      expect(grep.stdout.trim(), `iteration ${i}: device content in the committed layer`).toBe('0');
      rmSync(out);
      await d.docker(['rmi', `sec-ar-commit:${i}`]);
    }
  }, 300_000);

  it('docker export of a running container never streams a device swapped in for a file', async () => {
    for (let i = 0; i < 10; i++) {
      const out = join(dir, `export-${i}.tar`);
      const r = await d.docker(['export', '-o', out, 'sec-ar-racer'], { timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(0);
      const grep = await runCommand('grep', ['-c', marker, out]);
      expect(grep.stdout.trim(), `iteration ${i}: device content in the export`).toBe('0');
      rmSync(out);
    }
  }, 300_000);
});
