import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { REGISTRY_BIN, startRegistry, TEST_PASSWORD, TEST_USER, type TestRegistry } from '../helpers/registry.js';

/** Builds whose inputs come from elsewhere: a private registry (X-Registry-Config), a git repository, a URL. */

const classic = { DOCKER_BUILDKIT: '0' };
let d: TestDaemon;
let work: string;

beforeAll(async () => {
  d = await startDaemon();
  work = mkdtempSync(join(tmpdir(), 'berth-build-remote-'));
  const r = await d.docker(['load', '-i', await busyboxImageTar()]);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(async () => {
  await d?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function ok(args: string[], input?: string): Promise<string> {
  // TMPDIR: the CLI clones a git context into $TMPDIR/docker-build-git*, and after a #ref:subdir build removes only
  // the subdirectory, leaving the clone behind: it goes with the test's directory instead of piling up in /tmp
  const cliTmp = join(work, 'cli-tmp');
  mkdirSync(cliTmp, { recursive: true });
  const r = await d.docker(args, { env: { ...classic, TMPDIR: cliTmp }, timeoutMs: 120_000, ...(input !== undefined ? { input } : {}) });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stdout}\n${r.stderr}\n${d.logs().slice(-3000)}`);
  return r.stdout;
}

/** A static file server on 127.0.0.1 (git's dumb HTTP protocol, tarballs). */
async function serve(root: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const p = normalize(join(root, decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')));
    if (!p.startsWith(root) || !existsSync(p) || !statSync(p).isFile()) {
      res.statusCode = 404;
      res.end();
      return;
    }
    createReadStream(p).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe.runIf(existsSync(REGISTRY_BIN))('FROM a private registry', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'htpasswd' });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('pulls the base image with the credentials the CLI sends in X-Registry-Config', async () => {
    const base = `${reg.host}/private/base:1`;
    await ok(['tag', 'busybox', base]);
    // credentials written as `docker login` stores them without a helper (a config holding auths makes the CLI
    // keep to the file, whatever credential helpers the machine has)
    const auth = (host: string): string =>
      JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64') } } });
    mkdirSync(String(d.env.DOCKER_CONFIG), { recursive: true });
    writeFileSync(join(String(d.env.DOCKER_CONFIG), 'config.json'), auth(reg.host));
    await ok(['push', base]);
    await ok(['rmi', base]);
    const dir = join(work, 'private');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${base}\nRUN echo built-on-private > /m\n`);
    const out = await ok(['build', '-t', 'from-private:1', dir]);
    expect(out).toContain(`Step 1/2 : FROM ${base}`);
    expect(out).toMatch(/Successfully tagged from-private:1/);
    expect((await d.docker(['run', '--rm', 'from-private:1', 'cat', '/m'])).stdout).toBe('built-on-private\n');

    // without the login the pull is refused, in the stream
    await ok(['rmi', base]);
    writeFileSync(join(String(d.env.DOCKER_CONFIG), 'config.json'), auth('other.invalid'));
    const r = await d.docker(['build', '--pull', dir], { env: classic, timeoutMs: 120_000 });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain(`Step 1/2 : FROM ${base}`);
  });
});

describe('remote contexts', () => {
  it('builds from a git repository over HTTP (with #ref:subdir) and from a tarball URL', async () => {
    const repo = join(work, 'src-repo');
    mkdirSync(join(repo, 'app'), { recursive: true });
    writeFileSync(join(repo, 'app', 'Dockerfile'), 'FROM busybox\nCOPY hello.txt /hello.txt\n');
    writeFileSync(join(repo, 'app', 'hello.txt'), 'from git\n');
    const git = (cwd: string, ...args: string[]): string =>
      execFileSync('git', ['-c', 'user.email=t@example.com', '-c', 'user.name=t', ...args], { cwd, encoding: 'utf8' });
    git(repo, 'init', '-q', '-b', 'main');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'first');
    git(repo, 'tag', 'v1');
    const served = join(work, 'served');
    mkdirSync(served, { recursive: true });
    git(work, 'clone', '-q', '--bare', repo, join(served, 'repo.git'));
    git(join(served, 'repo.git'), 'update-server-info');
    execFileSync('tar', ['-czf', join(served, 'ctx.tar.gz'), '-C', join(repo, 'app'), '.']);
    const { server, url } = await serve(served);
    try {
      const out = await ok(['build', '-t', 'from-git:1', `${url}/repo.git#v1:app`]);
      expect(out).toMatch(/Successfully tagged from-git:1/);
      expect((await d.docker(['run', '--rm', 'from-git:1', 'cat', '/hello.txt'])).stdout).toBe('from git\n');
      const tgz = await ok(['build', '-t', 'from-url:1', `${url}/ctx.tar.gz`]);
      expect(tgz).toMatch(/Successfully tagged from-url:1/);
      expect((await d.docker(['run', '--rm', 'from-url:1', 'cat', '/hello.txt'])).stdout).toBe('from git\n');
    } finally {
      server.close();
    }
  });
});
