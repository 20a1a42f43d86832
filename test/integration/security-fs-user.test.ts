// Issue #19, user lookup: `-u name` is resolved against the container's /etc/passwd and /etc/group, which the
// image and the running container control. berthd must read them inside the container's root: never a host file
// through a symlink, never an endless device.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxEntries } from '../helpers/busybox-image.js';
import { dockerSaveArchive } from '../helpers/image-builder.js';
import { loadRacerImage, removeAllContainers, startRacer } from './security-fs-harness.js';

const USER = 'sec-someuser';
const NOT_FOUND = `unable to find user ${USER}: no matching entries in passwd file`;

describe('security: user lookup', () => {
  let d: TestDaemon;
  let dir: string;
  let hostEtc: string;

  beforeAll(async () => {
    d = await startDaemon();
    dir = mkdtempSync(join(tmpdir(), 'berth-sec-user-'));
    // A host directory that looks like an /etc with the user in it: reading it would resolve USER to 4242.
    hostEtc = mkdtempSync(join(tmpdir(), 'berth-host-etc-'));
    chmodSync(hostEtc, 0o755);
    writeFileSync(join(hostEtc, 'passwd'), `root:x:0:0:root:/root:/bin/sh\n${USER}:x:4242:4242::/:/bin/sh\n`);
    writeFileSync(join(hostEtc, 'group'), `root:x:0:\n${USER}:x:4242:\n`);
    // sec-user-race: passwd.h -> the host file and passwd.z -> /dev/zero, for a racer to swap with /etc/passwd.
    await loadRacerImage(d, dir, 'sec-user-race:1', [
      { path: 'etc/passwd.h', type: 'symlink', linkname: join(hostEtc, 'passwd') },
      { path: 'etc/passwd.z', type: 'symlink', linkname: '/dev/zero' },
    ]);
    // sec-user-etc-link: /etc itself is a symlink to the host directory.
    const noEtc = busyboxEntries().filter((e) => e.path !== 'etc' && !e.path.startsWith('etc/'));
    const tar = join(dir, 'etc-link.tar');
    writeFileSync(
      tar,
      await dockerSaveArchive([{ repoTags: ['sec-user-etc-link:1'], layers: [[...noEtc, { path: 'etc', type: 'symlink', linkname: hostEtc }]] }]),
    );
    const r = await d.docker(['load', '-i', tar]);
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(async () => {
    if (d) {
      await removeAllContainers(d);
      await d.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(hostEtc, { recursive: true, force: true });
  });

  it('an image whose /etc is a symlink to a host directory never resolves users from the host', async () => {
    const r = await d.docker(['run', '--rm', '-u', USER, 'sec-user-etc-link:1', 'id', '-u'], { timeoutMs: 60_000 });
    expect(r.stdout).not.toContain('4242');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(NOT_FOUND);
  });

  it('docker exec -u while the container swaps /etc/passwd for a symlink to a host file never reads the host file', async () => {
    await startRacer(d, 'sec-user-racer-h', ['sec-user-race:1', '/racer', 'exchange', '/etc/passwd', '/etc/passwd.h']);
    // Before the fix this read the host file about once in 30 tries.
    for (let i = 0; i < 150; i++) {
      const r = await d.docker(['exec', '-u', USER, 'sec-user-racer-h', '/racer', 'euid'], { timeoutMs: 60_000 });
      expect(r.stdout.trim(), `iteration ${i}`).not.toBe('4242');
      expect(r.stdout + r.stderr).toContain(NOT_FOUND);
    }
  }, 300_000);

  it('docker exec -u while the container swaps /etc/passwd for a symlink to /dev/zero answers, never reads forever', async () => {
    await startRacer(d, 'sec-user-racer-z', ['sec-user-race:1', '/racer', 'exchange', '/etc/passwd', '/etc/passwd.z']);
    for (let i = 0; i < 60; i++) {
      const r = await d.docker(['exec', '-u', USER, 'sec-user-racer-z', '/racer', 'euid'], { timeoutMs: 30_000 });
      expect(r.stdout + r.stderr, `iteration ${i}`).toContain(NOT_FOUND);
    }
    expect((await d.request('GET', '/_ping')).status).toBe(200);
  }, 300_000);
});
