import { existsSync, lstatSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/load-busybox.sh', import.meta.url));

describe('first use without internet: scripts/load-busybox.sh', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d.stop();
  });

  it('makes a busybox image from busybox-static that docker run can run', async () => {
    const load = await runCommand('bash', [SCRIPT], { env: d.env, timeoutMs: 120_000 });
    expect(load.code, load.stderr).toBe(0);
    expect(load.stdout).toContain('Loaded image: busybox:latest');
    const hello = await d.docker(['run', '--rm', 'busybox', 'echo', 'hello']);
    expect(hello.code, hello.stderr).toBe(0);
    expect(hello.stdout).toBe('hello\n');
    const nobody = await d.docker(['run', '--rm', '--user', 'nobody', 'busybox', 'sh', '-c', 'id; ls -ld /tmp']);
    expect(nobody.stdout).toMatch(/^uid=65534\(nobody\) gid=65534\(nobody\)/);
    expect(nobody.stdout).toMatch(/drwxrwxrwt/);
    const inspect = await d.docker(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}} {{json .Config.Cmd}}', 'busybox']);
    expect(inspect.stdout.trim()).toMatch(/^linux\/\w+ \["sh"\]$/);
  });

  it('is reproducible (same image ID on a second run) and takes --tag and --output', async () => {
    const id1 = (await d.docker(['image', 'inspect', '--format', '{{.Id}}', 'busybox'])).stdout.trim();
    const again = await runCommand('bash', [SCRIPT, '--tag', 'offline/busybox'], { env: d.env, timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    expect((await d.docker(['image', 'inspect', '--format', '{{.Id}}', 'offline/busybox:latest'])).stdout.trim()).toBe(id1);
    const out = join(d.dir, 'bb.tar');
    const saved = await runCommand('bash', [SCRIPT, '--output', out], { env: d.env, timeoutMs: 120_000 });
    expect(saved.code, saved.stderr).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect((await runCommand('bash', [SCRIPT, '--bogus'])).code).toBe(2);
  });
});

describe('--socket-link for tools that hard-code a socket path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ops-link-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('makes the link while running, removes it on stop, and never replaces a file that is not a symlink', async () => {
    const link = join(dir, 'var-run', 'docker.sock');
    const d = await startDaemon({ extraArgs: ['--socket-link', link] });
    try {
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(d.socket);
      const v = await d.docker(['version', '--format', '{{.Server.APIVersion}}'], { env: { DOCKER_HOST: `unix://${link}` } });
      expect(v.code, v.stderr).toBe(0);
    } finally {
      await d.stop();
    }
    expect(existsSync(link)).toBe(false);

    writeFileSync(link, 'not a socket');
    const other = await startDaemon({ extraArgs: ['--socket-link', link] });
    try {
      expect(lstatSync(link).isFile()).toBe(true);
      expect(other.logs()).toMatch(/socket link not made: the path exists and is not a symlink/);
    } finally {
      await other.stop();
    }
  });
});
