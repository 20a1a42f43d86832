import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';

/** Builds through the SDKs and compose v1 (the classic builder API). */

const PY_SCRIPT = fileURLToPath(new URL('../fixtures/clients/docker_py_build.py', import.meta.url));
const PY_CHECKS = ['build_path', 'build_with_error', 'success_build_output', 'fileobj_custom_context', 'dockerignore'];
/** Every distinct docker-py: Debian's python3-docker first, then PATH's python3 when it imports another one. */
const PYTHONS: { python: string; version: string }[] = [];
for (const python of ['/usr/bin/python3', 'python3']) {
  const r = spawnSync(python, ['-c', 'import docker; print(docker.__version__); print(docker.__file__)'], { encoding: 'utf8' });
  if (r.status !== 0) continue;
  const [version = '?', file = python] = r.stdout.trim().split('\n');
  if (!PYTHONS.some((p) => (p as { file?: string }).file === file)) PYTHONS.push({ python, version, file } as { python: string; version: string });
}
const HAVE_COMPOSE = existsSync('/usr/bin/docker-compose');
const BUILD_COMPOSE = fileURLToPath(new URL('../../scripts/build-compose.sh', import.meta.url));
/** Compose v2 is built from the Go module proxy by scripts/build-compose.sh (.ci/run runs it; cached afterwards). */
const HAVE_GO = spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0;

let d: TestDaemon;
let work: string;
let docker: Docker;

beforeAll(async () => {
  d = await startDaemon();
  work = mkdtempSync(join(tmpdir(), 'berth-build-clients-'));
  const r = await d.docker(['load', '-i', await busyboxImageTar()]);
  expect(r.code, r.stderr).toBe(0);
  docker = new Docker({ socketPath: d.socket });
});
afterAll(async () => {
  await d?.stop();
  rmSync(work, { recursive: true, force: true });
});

function files(dir: string, content: Record<string, string>): string {
  rmSync(dir, { recursive: true, force: true });
  for (const [p, c] of Object.entries(content)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), c);
  }
  return dir;
}

/** Runs a dockerode build to its end: the progress objects, or the stream's error. */
function follow(stream: NodeJS.ReadableStream): Promise<{ output: Record<string, any>[]; error?: string }> {
  return new Promise((resolve) => {
    docker.modem.followProgress(stream, (err: Error | null, output: Record<string, any>[]) => {
      resolve({ output: output ?? [], ...(err ? { error: err.message } : {}) });
    });
  });
}

async function runOut(image: string, cmd: string[]): Promise<string> {
  const r = await d.docker(['run', '--rm', image, ...cmd]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

describe.each(PYTHONS)('docker-py $version images.build ($python)', ({ python }) => {
  it.each(PY_CHECKS)('%s', (check) => {
    const r = spawnSync(python, [PY_SCRIPT, check], { env: d.env, encoding: 'utf8', timeout: 180_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let res: { ok: boolean; error: string } | undefined;
    try {
      res = JSON.parse(line) as { ok: boolean; error: string };
    } catch {
      throw new Error(`no result from docker_py_build.py ${check}: ${r.stdout}\n${r.stderr}`);
    }
    expect(res.ok, res.error).toBe(true);
  });
});

describe('dockerode buildImage', () => {
  it('builds from a list of files of a context directory, applying .dockerignore', async () => {
    const dir = files(join(work, 'dockerode-files'), {
      Dockerfile: 'FROM busybox\nCOPY . /ctx/\nCMD ["sh", "-c", "ls -a /ctx | sort"]\n',
      '.dockerignore': 'secret.txt\n',
      'a.txt': 'a',
      'secret.txt': 's',
      'sub/b.txt': 'b',
    });
    const stream = await docker.buildImage({ context: dir, src: ['Dockerfile', '.dockerignore', 'a.txt', 'secret.txt', 'sub'] }, { t: 'node-build:files' });
    const res = await follow(stream);
    expect(res.error).toBeUndefined();
    expect(res.output.some((m) => typeof m.stream === 'string' && m.stream.startsWith('Successfully tagged node-build:files'))).toBe(true);
    expect(await runOut('node-build:files', [])).toBe('.\n..\n.dockerignore\nDockerfile\na.txt\nsub\n');
  });

  it('builds from a tar stream, uses the cache, and reports a failing step as a stream error', async () => {
    const pack = tar.pack();
    pack.entry({ name: 'Dockerfile' }, 'FROM busybox\nARG WHO\nRUN echo "hello $WHO" > /greeting\n');
    pack.finalize();
    const first = await follow(await docker.buildImage(pack, { t: 'node-build:tar', buildargs: { WHO: 'node' } }));
    expect(first.error).toBeUndefined();
    expect(first.output.find((m) => m.aux)?.aux.ID).toMatch(/^sha256:/);
    expect(await runOut('node-build:tar', ['cat', '/greeting'])).toBe('hello node\n');

    const again = tar.pack();
    again.entry({ name: 'Dockerfile' }, 'FROM busybox\nARG WHO\nRUN echo "hello $WHO" > /greeting\n');
    again.finalize();
    const second = await follow(await docker.buildImage(again, { t: 'node-build:tar', buildargs: { WHO: 'node' } }));
    expect(second.output.filter((m) => m.stream === ' ---> Using cache\n')).toHaveLength(2);

    const bad = tar.pack();
    bad.entry({ name: 'Dockerfile' }, 'FROM busybox\nRUN exit 4\n');
    bad.finalize();
    const failed = await follow(await docker.buildImage(bad, { t: 'node-build:bad' }));
    const err = failed.output.find((m) => m.errorDetail);
    expect(err?.errorDetail).toEqual({ code: 4, message: "The command '/bin/sh -c exit 4' returned a non-zero code: 4" });
  });
});

describe.runIf(HAVE_COMPOSE)('docker-compose v1 build:', () => {
  it('builds a service with args and a target, then runs it', async () => {
    const dir = files(join(work, 'compose'), {
      'docker-compose.yml': [
        "version: '3.7'",
        'services:',
        '  app:',
        '    build:',
        '      context: ./app',
        '      target: runtime',
        '      args:',
        '        MESSAGE: from-compose',
        '    image: berth-compose-build:1',
        '    command: ["cat", "/message"]',
        '',
      ].join('\n'),
      'app/Dockerfile': 'FROM busybox AS builder\nARG MESSAGE=unset\nRUN echo "$MESSAGE" > /message\nFROM busybox AS runtime\nCOPY --from=builder /message /message\nFROM busybox AS unused\n',
    });
    const env = { ...d.env, COMPOSE_INTERACTIVE_NO_CLI: '1', DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' };
    const compose = (...args: string[]) => runCommand('docker-compose', ['-f', join(dir, 'docker-compose.yml'), '-p', 'berthbuild', ...args], { env, timeoutMs: 180_000 });
    try {
      const b = await compose('build');
      expect(b.code, `${b.stdout}\n${b.stderr}`).toBe(0);
      expect(b.stdout + b.stderr).toContain('Successfully tagged berth-compose-build:1');
      expect(await runOut('berth-compose-build:1', ['cat', '/message'])).toBe('from-compose\n');
      // only the target's stages ran: the unused stage after it is not built
      expect(b.stdout + b.stderr).not.toContain('AS unused');
    } finally {
      await compose('down', '-v', '--remove-orphans');
    }
  });
});

/**
 * Compose v2 (`docker compose build`, the plugin scripts/build-compose.sh builds), with no DOCKER_BUILDKIT or
 * COMPOSE_BAKE in its environment: Berth's _ping says Builder-Version 1, so compose v5 sends a classic POST /build
 * with the service's buildargs and target itself.
 */
describe.runIf(HAVE_GO)('docker compose v2 build:', () => {
  it('builds a service with args and a target, then runs it', async () => {
    const plugin = await runCommand('bash', [BUILD_COMPOSE, join(d.dir, 'docker-config')], { timeoutMs: 1_800_000 });
    expect(plugin.code, plugin.stderr).toBe(0);
    const dir = files(join(work, 'compose2'), {
      'compose.yaml': [
        'services:',
        '  app:',
        '    build:',
        '      context: ./app',
        '      target: runtime',
        '      args:',
        '        MESSAGE: from-compose-v2',
        '    image: berth-compose2-build:1',
        '    command: ["cat", "/message"]',
        '',
      ].join('\n'),
      'app/Dockerfile': 'FROM busybox AS builder\nARG MESSAGE=unset\nRUN echo "$MESSAGE" > /message\nFROM busybox AS runtime\nCOPY --from=builder /message /message\nLABEL stage=runtime\nFROM busybox AS unused\nLABEL stage=unused\n',
    });
    const env = { DOCKER_BUILDKIT: undefined, COMPOSE_BAKE: undefined };
    const compose = (...args: string[]) => d.docker(['compose', '-f', join(dir, 'compose.yaml'), '-p', 'berthbuild2', ...args], { env, timeoutMs: 180_000 });
    try {
      const b = await compose('build');
      expect(b.code, `${b.stdout}\n${b.stderr}`).toBe(0);
      expect(await runOut('berth-compose2-build:1', ['cat', '/message'])).toBe('from-compose-v2\n');
      // the target stage is the image: its label, not the later unused stage's
      const label = await d.docker(['image', 'inspect', '-f', '{{index .Config.Labels "stage"}}', 'berth-compose2-build:1']);
      expect(label.stdout.trim()).toBe('runtime');
      const up = await compose('run', '--rm', '-T', 'app');
      expect(up.stdout).toBe('from-compose-v2\n');
    } finally {
      await compose('down', '-v', '--remove-orphans');
      await d.docker(['rmi', '-f', 'berth-compose2-build:1']);
    }
  }, 1_900_000);
});

describe('testcontainers GenericContainer.fromDockerfile', () => {
  it('builds the image from a context directory and starts a container from it', async () => {
    const dir = files(join(work, 'tc'), {
      Dockerfile: 'FROM busybox\nARG GREETING\nRUN echo "$GREETING" > /greeting\nCMD ["sh", "-c", "cat /greeting; sleep 30"]\n',
    });
    // testcontainers reads its environment once, on first use: set it before the import.
    process.env.DOCKER_HOST = `unix://${d.socket}`;
    process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
    process.env.TESTCONTAINERS_HOST_OVERRIDE = 'localhost';
    process.env.DOCKER_CONFIG = d.env.DOCKER_CONFIG;
    const tc = await import('testcontainers');
    const image = await tc.GenericContainer.fromDockerfile(dir).withBuildArgs({ GREETING: 'hello-tc' }).build('berth-tc-build:1', { deleteOnExit: false });
    const container = await image.withWaitStrategy(tc.Wait.forLogMessage('hello-tc')).start();
    try {
      const r = await container.exec(['cat', '/greeting']);
      expect(r.output).toBe('hello-tc\n');
    } finally {
      await container.stop({ timeout: 0 });
    }
  });
});
