import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';

/**
 * docker-py (Debian's python3-docker, 5.0.3 on bookworm) against a real berthd: test/fixtures/clients/docker_py_smoke.py
 * runs one check per daily task and reports each as a JSON line; every check is one test here.
 */

const SCRIPT = fileURLToPath(new URL('../fixtures/clients/docker_py_smoke.py', import.meta.url));
const CHECKS = [
  ['system', 'ping, version (auto-negotiated 1.50) and info; a client pinned to 1.41 works'],
  ['run_foreground', 'containers.run returns stdout, stderr on request, raises ContainerError with the exit status, remove=True leaves nothing'],
  ['exec_run', 'exec_run: exit code, output, demux, env/workdir/user, stream, tty, 126 for a missing binary'],
  ['logs', 'logs: stdout/stderr split, tail, timestamps, stream, since'],
  ['follow_logs', 'logs(stream=True, follow=True) ends when the container exits'],
  ['top_stats', 'top (with ps_args) and stats (one-shot and streamed)'],
  ['lifecycle', 'create/start/get/list filters/rename/pause/unpause/restart/kill/wait/stop/remove'],
  ['archive', 'put_archive and get_archive with the path stat'],
  ['images', 'images list/get/filters/tag/history/remove/save'],
  ['volumes', 'volumes create/list/get, used by containers.run, remove'],
  ['networks', 'networks create/get/list, connect with alias, reach the alias, disconnect, remove'],
  ['prune_and_df', 'containers.prune with a label filter and df'],
  ['events', 'events with since/until and filters decode create/start/die/destroy'],
  ['ports', 'ports={"8080/tcp": ("127.0.0.1", None)} publishes an ephemeral loopback port that serves'],
  ['attach_socket', 'attach_socket with stdin (hijacked) and attach(logs=True)'],
  ['commit_export_diff', 'diff, commit with changes, run the committed image, export'],
  ['images_load', 'images.save then images.load'],
  ['sizes', 'containers(size=True) and df() report the writable layer (SizeRw) and SizeRootFs'],
] as const;

/**
 * Every distinct docker-py install: Debian's /usr/bin/python3 (python3-docker) first, then PATH's python3 when it
 * imports a different docker-py (e.g. a pip-installed 7.x).
 */
function findPythons(): Array<{ python: string; version: string }> {
  const found: Array<{ python: string; version: string; file: string }> = [];
  for (const python of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(python, ['-c', 'import docker; print(docker.__version__); print(docker.__file__)'], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    const [version = '?', file = python] = r.stdout.trim().split('\n');
    if (!found.some((f) => f.file === file)) found.push({ python, version, file });
  }
  return found;
}

const pythons = findPythons();

interface CheckResult {
  check: string;
  ok: boolean;
  error: string;
}

if (pythons.length === 0) it.skip('docker-py client tests: no python3 imports docker (apt-get install -y python3-docker)', () => undefined);

describe.each(pythons)('docker-py $version ($python) against berthd', ({ python }) => {
  let d: TestDaemon;
  const results = new Map<string, CheckResult>();
  let stderr = '';

  beforeAll(async () => {
    d = await startDaemon();
    const r = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(r.code, r.stderr).toBe(0);
    const run = await runCommand(python, [SCRIPT], { env: d.env, timeoutMs: 240_000 });
    stderr = run.stderr;
    for (const line of run.stdout.split('\n')) {
      if (line.trim() === '') continue;
      const res = JSON.parse(line) as CheckResult;
      results.set(res.check, res);
    }
  }, 300_000);
  afterAll(async () => {
    if (d) {
      const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.docker(['rm', '-f', '-v', ...ids]);
      await d.stop();
    }
  });

  for (const [name, title] of CHECKS) {
    it(title, () => {
      const res = results.get(name);
      expect(res, `check ${name} did not report; script stderr:\n${stderr}`).toBeDefined();
      expect(res?.error ?? '').toBe('');
      expect(res?.ok).toBe(true);
    });
  }
});
