import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { waitFor } from '../helpers/wait.js';

const COMPOSE_FILE = fileURLToPath(new URL('../../docker-compose.test.yml', import.meta.url));
const HAVE_COMPOSE = existsSync('/usr/bin/docker-compose');

/** The stack in docker-compose.test.yml, brought up on Berth with docker-compose v1 (Debian's). */
describe.runIf(HAVE_COMPOSE)('docker-compose on Berth', () => {
  let d: TestDaemon;
  const compose = (...args: string[]) =>
    runCommand('docker-compose', ['-f', COMPOSE_FILE, '-p', 'berthtest', ...args], { env: { ...d.env, COMPOSE_INTERACTIVE_NO_CLI: '1' }, timeoutMs: 120_000 });

  beforeAll(async () => {
    d = await startDaemon();
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(load.code, load.stderr).toBe(0);
  });
  afterAll(async () => {
    await compose('down', '-v', '--remove-orphans');
    await d.stop();
  });

  it('brings the stack up, serves web by service name and alias, and takes it down leaving nothing', async () => {
    const up = await compose('up', '-d');
    expect(up.code, up.stderr).toBe(0);

    const ps = await compose('ps');
    expect(ps.code, ps.stderr).toBe(0);
    expect(ps.stdout).toMatch(/berthtest_web_1\s.*Up/);
    expect(ps.stdout).toMatch(/berthtest_client_1\s.*Up/);

    for (const name of ['web', 'webalias', 'berthtest_web_1']) {
      await waitFor(async () => {
        const r = await d.docker(['exec', 'berthtest_client_1', 'sh', '-c', `timeout 5 wget -qO- http://${name}:8080/`]);
        return r.stdout === 'hello-from-web\n';
      }, 20_000);
    }

    const logs = await compose('logs', '--no-color', 'web');
    expect(logs.code, logs.stderr).toBe(0);

    const down = await compose('down', '-v');
    expect(down.code, down.stderr).toBe(0);
    expect((await d.docker(['ps', '-aq', '--filter', 'label=com.docker.compose.project=berthtest'])).stdout).toBe('');
    expect((await d.docker(['volume', 'ls', '-q'])).stdout).not.toContain('berthtest_webdata');
    expect((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout).not.toContain('berthtest_backend');
  });
});
