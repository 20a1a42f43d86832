import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type CliResult, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { waitFor } from '../helpers/wait.js';

const COMPOSE_FILE = fileURLToPath(new URL('../../docker-compose.test.yml', import.meta.url));
const BUILD_COMPOSE = fileURLToPath(new URL('../../scripts/build-compose.sh', import.meta.url));
const HAVE_V1 = existsSync('/usr/bin/docker-compose');
/** Compose v2 is built from the Go module proxy by scripts/build-compose.sh (.ci/run runs it; cached afterwards). */
const HAVE_GO = (() => {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/**
 * The stack in docker-compose.test.yml through compose v1 (Debian's docker-compose 1.29) and the compose v2
 * plugin (`docker compose`): up (with healthchecks), ps, logs, exec, run --rm, port, stop/start, down -v.
 */
for (const flavour of ['v1', 'v2'] as const) {
  describe.runIf(flavour === 'v1' ? HAVE_V1 : HAVE_GO)(`docker compose ${flavour} on Berth`, () => {
    let d: TestDaemon;
    const project = `berth${flavour}`;
    // v1 names containers <project>_<service>_1, v2 <project>-<service>-1
    const name = (service: string): string => (flavour === 'v1' ? `${project}_${service}_1` : `${project}-${service}-1`);
    const compose = (...args: string[]): Promise<CliResult> =>
      flavour === 'v1'
        ? // run/exec go through the docker CLI (compose v1's own dockerpty path attaches after the start on Python 3
          // and can miss a quick one-off's output, with any daemon)
          runCommand('docker-compose', ['-f', COMPOSE_FILE, '-p', project, ...args], { env: d.env, timeoutMs: 120_000 })
        : d.docker(['compose', '-f', COMPOSE_FILE, '-p', project, ...args], { timeoutMs: 120_000 });

    beforeAll(async () => {
      d = await startDaemon();
      const load = await d.docker(['load', '-i', await busyboxImageTar()]);
      expect(load.code, load.stderr).toBe(0);
      if (flavour === 'v2') {
        const plugin = await runCommand('bash', [BUILD_COMPOSE, join(d.dir, 'docker-config')], { timeoutMs: 1_800_000 });
        expect(plugin.code, plugin.stderr).toBe(0);
      }
    }, 1_900_000);
    afterAll(async () => {
      if (!d) return;
      await compose('down', '-v', '--remove-orphans');
      await d.stop();
    });

    it('brings the stack up healthy, serves it, runs exec/run/port/stop/start, and takes it down leaving nothing', async () => {
      if (flavour === 'v2') {
        const up = await compose('up', '-d', '--wait');
        expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
      } else {
        const up = await compose('up', '-d');
        expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
      }
      await waitFor(async () => (await d.docker(['inspect', '-f', '{{.State.Health.Status}}', name('web')])).stdout.trim() === 'healthy', 30_000);

      const ps = await compose('ps');
      expect(ps.code, ps.stderr).toBe(0);
      expect(ps.stdout).toMatch(new RegExp(`${name('web')}\\s.*Up`));
      expect(ps.stdout).toMatch(new RegExp(`${name('client')}\\s.*Up`));

      for (const host of ['web', 'webalias', name('web')]) {
        let last: CliResult | undefined;
        await waitFor(async () => {
          last = await d.docker(['exec', name('client'), 'sh', '-c', `timeout 5 wget -qO- http://${host}:8080/`]);
          return last.stdout === 'hello-from-web\n';
        }, 30_000).catch((e: unknown) => {
          throw new Error(`${host}: ${JSON.stringify(last)}: ${String(e)}`);
        });
      }

      const logs = await compose('logs', '--no-color', 'client');
      expect(logs.code, logs.stderr).toBe(0);

      const exec = await compose('exec', '-T', 'web', 'cat', '/www/index.html');
      expect(exec.stdout).toBe('hello-from-web\n');

      const run = await compose('run', '--rm', '-T', 'client', 'sh', '-c', 'timeout 20 wget -qO- http://web:8080/');
      expect(run.stdout, `exit ${run.code}: ${run.stderr}`).toBe('hello-from-web\n');
      // run --rm leaves no one-off container
      expect((await d.docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).stdout.trim().split('\n')).toHaveLength(2);

      const port = await compose('port', 'web', '8080');
      expect(port.stdout.trim()).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(await httpGet(`http://${port.stdout.trim()}/`)).toBe('hello-from-web\n');

      expect((await compose('stop')).code).toBe(0);
      expect((await d.docker(['inspect', '-f', '{{.State.Status}}', name('web'), name('client')])).stdout).toBe('exited\nexited\n');
      expect((await compose('start')).code).toBe(0);
      expect((await d.docker(['inspect', '-f', '{{.State.Status}}', name('web'), name('client')])).stdout).toBe('running\nrunning\n');

      const down = await compose('down', '-v');
      expect(down.code, down.stderr).toBe(0);
      expect((await d.docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).stdout).toBe('');
      expect((await d.docker(['volume', 'ls', '-q'])).stdout).not.toContain(`${project}_webdata`);
      expect((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout).not.toContain(`${project}_backend`);
    });
  });
}
