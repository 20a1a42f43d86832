// Issue #19, volume copy-up: the image's content at a VOLUME path is copied into the new volume without ever
// following a symlink onto the host, and a container sharing the volume cannot redirect the copy's writes.

import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import type { LayerEntry } from '../helpers/image-builder.js';
import { loadRacerImage, removeAllContainers, startRacer } from './security-fs-harness.js';

describe('security: volume copy-up', () => {
  let d: TestDaemon;
  let dir: string;
  let secretDir: string;
  const secret = `HOST-SECRET-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'berth-sec-cu-'));
    secretDir = mkdtempSync(join(tmpdir(), 'berth-secret-'));
    chmodSync(secretDir, 0o755);
    writeFileSync(join(secretDir, 'secret.txt'), `${secret}\n`);
    // Distinctive owner and mode, so a chown/chmod that went through a swapped-in symlink shows on the host dir.
    const seeded: LayerEntry[] = [{ path: 'data', type: 'directory' }, { path: 'data/d', type: 'directory', mode: 0o705, uid: 4321, gid: 4321 }];
    for (let i = 0; i < 300; i++) {
      seeded.push({ path: `data/d/f${String(i).padStart(3, '0')}`, type: 'file', content: `seed ${i}\n`, uid: 4321, gid: 4321 });
    }
    await loadRacerImage(d, dir, 'sec-seeded:1', seeded, { Volumes: { '/data': {} } });
  });

  /** A `docker export` of a fresh busybox container (the base of a hostile image). */
  const exportBusybox = async (name: string): Promise<string> => {
    const created = await d.docker(['create', 'busybox']);
    expect(created.code, created.stderr).toBe(0);
    const out = join(dir, `${name}.tar`);
    const exp = await d.docker(['export', '-o', out, created.stdout.trim()]);
    expect(exp.code, exp.stderr).toBe(0);
    await d.docker(['rm', created.stdout.trim()]);
    return out;
  };

  /** The host directory of the volume a container has at `dest`. */
  const volumeDir = async (id: string, dest: string): Promise<string> => {
    const r = await d.docker(['inspect', '-f', '{{json .Mounts}}', id]);
    const m = (JSON.parse(r.stdout) as { Destination: string; Source: string }[]).find((x) => x.Destination === dest);
    if (!m) throw new Error(`no mount at ${dest}: ${r.stdout}`);
    return m.Source;
  };

  afterAll(async () => {
    if (d) {
      await removeAllContainers(d);
      await d.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(secretDir, { recursive: true, force: true });
  });

  it('an image whose VOLUME path is a symlink to /etc never copies the host /etc into the volume', async () => {
    // The reproduction of the issue, through the CLI: export busybox, append `data -> /etc` with tar -r, import
    // with VOLUME /data.
    const base = await exportBusybox('etc');
    const links = join(dir, 'links-etc');
    mkdirSync(links);
    symlinkSync('/etc', join(links, 'data'));
    const tar = await runCommand('tar', ['-rf', base, '-C', links, 'data']);
    expect(tar.code, tar.stderr).toBe(0);
    const imp = await d.docker(['import', '-c', 'VOLUME /data', base, 'sec-etc-link:1']);
    expect(imp.code, imp.stderr).toBe(0);

    const ls = await d.docker(['run', '--rm', 'sec-etc-link:1', 'ls', '/data'], { timeoutMs: 60_000 });
    // Whatever the container sees at /data, it is never the host's /etc (which has these, busybox has not).
    for (const hostOnly of ['shadow', 'os-release', 'fstab']) expect(ls.stdout.split('\n')).not.toContain(hostOnly);
    const hostShadow = readFileSync('/etc/shadow', 'utf8').split('\n')[0] ?? '';
    const head = await d.docker(['run', '--rm', 'sec-etc-link:1', 'head', '/data/shadow'], { timeoutMs: 60_000 });
    expect(head.stdout).not.toContain(hostShadow.slice(0, 20));
    // The volume itself, seen from the host: the image's /etc (busybox's passwd), nothing of the host's.
    const c = await d.docker(['create', 'sec-etc-link:1', 'true']);
    expect(c.code, c.stderr).toBe(0);
    const vol = await volumeDir(c.stdout.trim(), '/data');
    expect(readdirSync(vol)).not.toContain('shadow');
    expect(readFileSync(join(vol, 'passwd'), 'utf8')).toContain('www-data:x:33:33');
    await d.docker(['rm', '-v', c.stdout.trim()]);
  });

  it('an image whose VOLUME path is a symlink to a host directory copies nothing from it', async () => {
    const base = await exportBusybox('host');
    const links = join(dir, 'links-host');
    mkdirSync(links);
    symlinkSync(secretDir, join(links, 'data'));
    symlinkSync(`/../..${secretDir}`, join(links, 'data2'));
    const tar = await runCommand('tar', ['-rf', base, '-C', links, 'data', 'data2']);
    expect(tar.code, tar.stderr).toBe(0);
    const imp = await d.docker(['import', '-c', 'VOLUME /data', '-c', 'VOLUME /data2', base, 'sec-host-link:1']);
    expect(imp.code, imp.stderr).toBe(0);
    const c = await d.docker(['create', 'sec-host-link:1', 'true']);
    expect(c.code, c.stderr).toBe(0);
    for (const dest of ['/data', '/data2']) expect(readdirSync(await volumeDir(c.stdout.trim(), dest)), dest).toEqual([]);
    const cat = await d.docker(['run', '--rm', 'sec-host-link:1', 'cat', '/data/secret.txt', '/data2/secret.txt'], { timeoutMs: 60_000 });
    expect(cat.stdout).not.toContain(secret);
    await d.docker(['rm', '-v', c.stdout.trim()]);
    expect(readdirSync(secretDir)).toEqual(['secret.txt']);
  });

  it('a container sharing the volume cannot redirect copy-up writes with a symlink swap', async () => {
    // The racer waits for copy-up to create /data/d in the shared (empty) volume, then swaps it with a symlink to a
    // host directory, RENAME_EXCHANGE in a loop, while berthd copies the image's 300 files into it.
    const target = mkdtempSync(join(tmpdir(), 'berth-target-'));
    chmodSync(target, 0o755);
    const before = statSync(target);
    try {
      for (let i = 0; i < 20; i++) {
        const vol = `sec-cu-race-${i}`;
        expect((await d.docker(['volume', 'create', vol])).code).toBe(0);
        await startRacer(d, `sec-cu-racer-${i}`, ['-v', `${vol}:/s`, 'sec-seeded:1', '/racer', 'plant', '/s/d', '/s/x', target], false);
        // The copy may succeed (into the real directory, wherever it was moved) or fail: it never leaves the volume.
        await d.docker(['run', '--rm', '-v', `${vol}:/data`, 'sec-seeded:1', 'true'], { timeoutMs: 60_000 });
        await d.docker(['rm', '-f', `sec-cu-racer-${i}`]);
        await d.docker(['volume', 'rm', vol]);
        expect(readdirSync(target), `iteration ${i}`).toEqual([]);
        const after = statSync(target);
        expect([after.mode, after.uid, after.gid]).toEqual([before.mode, before.uid, before.gid]);
      }
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  }, 300_000);
});
