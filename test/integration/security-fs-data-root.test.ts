// Issue #19, data root permissions (the CVE-2021-41091 class): an unprivileged host user can neither reach a
// container's layer (and run a setuid binary its root planted there) nor read the metadata database, which holds
// every container's environment. Checked as nobody with setpriv, on a fresh data root and on one an older berthd
// left with open modes.

import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { loadRacerImage, removeAllContainers } from './security-fs-harness.js';

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

/**
 * Runs a command as nobody. Through /bin/sh: setpriv itself keeps its capabilities until its own execve, so the
 * path lookup of a command it executes directly is not an unprivileged one.
 */
function asNobody(args: string[]): ReturnType<typeof runCommand> {
  return runCommand('setpriv', [...NOBODY, '/bin/sh', '-c', 'exec "$0" "$@"', ...args]);
}

function mode(p: string): number {
  return statSync(p).mode & 0o7777;
}

describe('security: data root permissions', () => {
  let d: TestDaemon;
  let parent: string;
  let dataRoot: string;
  let id: string;
  const secret = `hunter2-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    // A parent any user can traverse, as /var/lib is.
    parent = mkdtempSync(join(tmpdir(), 'berth-sec-dr-'));
    chmodSync(parent, 0o755);
    dataRoot = join(parent, 'data');
    d = await startDaemon({ dataRoot });
    await loadRacerImage(d, parent, 'sec-racer:1');
    // Container root plants a setuid-root copy of a binary in its writable layer.
    const r = await d.docker(['run', '--name', 'sec-dr-planter', '-e', `DB_PASSWORD=${secret}`, 'sec-racer:1', 'sh', '-c', 'cp /racer /tmp/suid && chmod 4755 /tmp/suid']);
    expect(r.code, r.stderr).toBe(0);
    id = (await d.docker(['inspect', '-f', '{{.Id}}', 'sec-dr-planter'])).stdout.trim();
  });

  afterAll(async () => {
    if (d) {
      await removeAllContainers(d);
      await d.stop();
    }
    rmSync(parent, { recursive: true, force: true });
  });

  const checkPrivate = async (): Promise<void> => {
    const upper = join(dataRoot, 'containers', id, 'upper');
    const suid = join(upper, 'tmp', 'suid');
    expect(mode(suid)).toBe(0o4755); // planted as described
    const run = await asNobody([suid, 'euid']);
    expect(run.code, `nobody ran ${suid}: ${run.stdout}`).not.toBe(0);
    expect(run.stdout.trim()).not.toBe('0');
    expect((await asNobody(['ls', upper])).code).not.toBe(0);
    expect((await asNobody(['ls', join(dataRoot, 'containers')])).code).not.toBe(0);
    for (const f of ['berth.db', 'berth.db-wal', 'berth.db-shm']) {
      const p = join(dataRoot, f);
      if (!existsSync(p)) continue;
      expect(mode(p), f).toBe(0o600);
      const read = await asNobody(['grep', '-c', secret, p]);
      expect(read.code, `nobody read ${f}: ${read.stdout}`).toBe(2); // grep: cannot open
    }
    expect(mode(join(dataRoot, 'containers'))).toBe(0o710);
    expect(mode(join(dataRoot, 'containers', id))).toBe(0o710);
    expect(mode(join(dataRoot, 'layers')) & 0o007).toBe(0);
  };

  it('an unprivileged user cannot reach a container layer or read the database', async () => {
    await checkPrivate();
  });

  it('a data root left with open modes is made private again at start', async () => {
    await d.signal('SIGTERM');
    chmodSync(join(dataRoot, 'containers'), 0o755);
    chmodSync(join(dataRoot, 'containers', id), 0o755);
    for (const f of ['berth.db', 'berth.db-wal', 'berth.db-shm']) if (existsSync(join(dataRoot, f))) chmodSync(join(dataRoot, f), 0o644);
    await d.launch();
    await checkPrivate();
  });
});
