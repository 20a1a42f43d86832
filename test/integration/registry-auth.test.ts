import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { startRegistry, TEST_PASSWORD, TEST_USER, type TestRegistry } from '../helpers/registry.js';
import { fileLayer, rawPushImage } from './registry-fixtures.js';

async function ok(d: TestDaemon, args: string[], input?: string): Promise<string> {
  const r = await d.docker(args, { timeoutMs: 120_000, ...(input !== undefined ? { input } : {}) });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}\n${d.logs().slice(-3000)}`);
  return r.stdout;
}

function cliConfig(d: TestDaemon): { auths?: Record<string, { auth?: string; identitytoken?: string }> } {
  return JSON.parse(readFileSync(join(d.dir, 'docker-config', 'config.json'), 'utf8')) as ReturnType<typeof cliConfig>;
}

describe('htpasswd (Basic) registry', () => {
  let reg: TestRegistry;
  let d: TestDaemon;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'htpasswd' });
    d = await startDaemon();
    await ok(d, ['load', '-i', await busyboxImageTar()]);
    await ok(d, ['tag', 'busybox', `${reg.host}/private/bb:1`]);
  });
  afterAll(async () => {
    await d?.stop();
    await reg?.stop();
  });

  it('push without credentials fails in-stream with the registry\'s answer', async () => {
    const r = await d.docker(['push', `${reg.host}/private/bb:1`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('unauthorized: authentication required');
  });

  it('docker login refuses a wrong password and accepts the right one; push and pull then work', async () => {
    const bad = await d.docker(['login', '-u', TEST_USER, '--password-stdin', reg.host], { input: 'wrong\n' });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(`login attempt to http://${reg.host}/v2/ failed with status: 401 Unauthorized`);
    const good = await ok(d, ['login', '-u', TEST_USER, '--password-stdin', reg.host], `${TEST_PASSWORD}\n`);
    expect(good).toContain('Login Succeeded');
    expect(cliConfig(d).auths?.[reg.host]?.auth).toBe(Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64'));
    const pushed = await ok(d, ['push', `${reg.host}/private/bb:1`]);
    expect(pushed).toMatch(/1: digest: sha256:[a-f0-9]{64} size: \d+/);
    await ok(d, ['rmi', `${reg.host}/private/bb:1`]);
    await ok(d, ['pull', `${reg.host}/private/bb:1`]);
    expect((await ok(d, ['run', '--rm', `${reg.host}/private/bb:1`, 'echo', 'basic ok'])).trim()).toBe('basic ok');
  });

  it('after docker logout the registry refuses the pull', async () => {
    await ok(d, ['logout', reg.host]);
    await ok(d, ['rmi', `${reg.host}/private/bb:1`]);
    const r = await d.docker(['pull', `${reg.host}/private/bb:1`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('unauthorized');
  });

  it('POST /auth answers dockerd\'s body', async () => {
    const r = await d.request('POST', '/auth', { body: { username: TEST_USER, password: TEST_PASSWORD, serveraddress: reg.host } });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.json()).toEqual({ IdentityToken: '', Status: 'Login Succeeded' });
    const bad = await d.request('POST', '/auth', { body: { username: TEST_USER, password: 'nope', serveraddress: `http://${reg.host}` } });
    expect(bad.status).toBe(401);
  });
});

describe('token (Bearer) registry with a Hub-like token server', () => {
  let reg: TestRegistry;
  let d: TestDaemon;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token' });
    // docker.io names go to the mirror, as dockerd does with registry-mirrors.
    d = await startDaemon({ config: { 'registry-mirrors': [reg.url] } });
    await ok(d, ['load', '-i', await busyboxImageTar()]);
  });
  afterAll(async () => {
    await d?.stop();
    await reg?.stop();
  });

  it('pulls an official image by its docker.io name through the mirror with an anonymous token', async () => {
    const ts = reg.tokenServer!;
    ts.anonymousPull.add('library/hello');
    const auth = await reg.authHeader('repository:library/hello:push,pull');
    const raw = await rawPushImage(reg, 'library/hello', 'latest', [{ entries: fileLayer('hello', 'hello from the mirror\n'), compression: 'gzip' }], { auth });
    ts.requests.length = 0;
    const out = await ok(d, ['pull', 'hello']);
    expect(out).toContain('latest: Pulling from library/hello');
    expect(out).toContain('Status: Downloaded newer image for hello:latest');
    expect(out.trim().split('\n').at(-1)).toBe('docker.io/library/hello:latest');
    const img = JSON.parse(await ok(d, ['image', 'inspect', 'hello']))[0];
    expect(img.Id).toBe(raw.configDigest);
    expect(img.RepoTags).toEqual(['hello:latest']);
    expect(img.RepoDigests).toEqual([`hello@${raw.manifestDigest}`]);
    // The challenge's realm/service/scope were followed: one anonymous token for repository:library/hello:pull.
    expect(ts.requests.length).toBeGreaterThanOrEqual(1);
    const first = ts.requests[0]!;
    expect(first.method).toBe('GET');
    expect(first.account).toBeUndefined();
    expect(first.query.get('service')).toBe(ts.service);
    expect(first.query.getAll('scope')).toEqual(['repository:library/hello:pull']);
    // Tokens are cached per scope: pulling again asks for none.
    const n = ts.requests.length;
    await ok(d, ['pull', 'hello']);
    expect(ts.requests.length).toBe(n);
  });

  it('a private repository needs a login; docker login stores the identity token; push/pull use the refresh-token grant', async () => {
    const name = `${reg.host}/team/app:7`;
    await ok(d, ['tag', 'busybox', name]);
    const denied = await d.docker(['push', name]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/unauthorized|denied/);

    const ts = reg.tokenServer!;
    const bad = await d.docker(['login', '-u', TEST_USER, '--password-stdin', reg.host], { input: 'wrong\n' });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('unauthorized: incorrect username or password');
    ts.requests.length = 0;
    const good = await ok(d, ['login', '-u', TEST_USER, '--password-stdin', reg.host], `${TEST_PASSWORD}\n`);
    expect(good).toContain('Login Succeeded');
    expect(ts.requests[0]?.query.get('offline_token')).toBe('true');
    expect(ts.requests[0]?.query.get('client_id')).toBe('docker');
    const stored = cliConfig(d).auths?.[reg.host];
    expect(stored?.identitytoken).toMatch(/^[a-f0-9]{32}$/);

    ts.requests.length = 0;
    const pushed = await ok(d, ['push', name]);
    expect(pushed).toMatch(/7: digest: sha256:[a-f0-9]{64} size: \d+/);
    const grant = ts.requests.find((r) => r.method === 'POST');
    expect(grant?.form?.get('grant_type')).toBe('refresh_token');
    expect(grant?.form?.get('scope')).toContain('repository:team/app:pull,push');
    expect(grant?.account).toBe(TEST_USER);

    await ok(d, ['rmi', name]);
    await ok(d, ['pull', name]);
    expect((await ok(d, ['run', '--rm', name, 'echo', 'token ok'])).trim()).toBe('token ok');

    await ok(d, ['logout', reg.host]);
    await ok(d, ['rmi', name]);
    const after = await d.docker(['pull', name]);
    expect(after.code).not.toBe(0);
  });

  it('POST /auth with a username and password returns the IdentityToken', async () => {
    const r = await d.request('POST', '/auth', { body: { username: TEST_USER, password: TEST_PASSWORD, serveraddress: reg.host } });
    expect(r.status).toBe(200);
    const body = r.json<{ IdentityToken: string; Status: string }>();
    expect(body.Status).toBe('Login Succeeded');
    expect(body.IdentityToken).toMatch(/^[a-f0-9]{32}$/);
  });
});
