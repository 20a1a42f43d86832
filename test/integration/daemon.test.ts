import { existsSync, statSync } from 'node:fs';
import os from 'node:os';
import { connect } from 'node:net';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { validateResponse } from '../helpers/api-spec.js';

describe('berthd foundation through the docker CLI', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d.stop();
  });

  it('serves the socket with mode 0660', () => {
    expect(statSync(d.socket).mode & 0o777).toBe(0o660);
  });

  it('answers HEAD /_ping with the negotiation headers', async () => {
    const r = await d.request('HEAD', '/_ping');
    expect(r.status).toBe(200);
    expect(r.headers['api-version']).toBe('1.50');
    expect(r.headers.ostype).toBe('linux');
    expect(r.headers['docker-experimental']).toBe('false');
    expect(r.headers['builder-version']).toBe('1');
    expect(r.headers['cache-control']).toBe('no-cache, no-store, must-revalidate');
    expect(r.headers.pragma).toBe('no-cache');
    const g = await d.request('GET', '/v1.41/_ping');
    expect(g.text()).toBe('OK');
    expect(g.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(g.headers.swarm).toBe('inactive');
    // The fast path hands anything unusual to the routed /_ping: its version check and errors stay dockerd's.
    const tooNew = await d.request('GET', '/v1.99/_ping');
    expect(tooNew.status).toBe(400);
    expect(tooNew.json()).toEqual({ message: 'client version 1.99 is too new. Maximum supported API version is 1.50' });
    expect((await d.request('GET', '/_ping?x=1')).text()).toBe('OK');
    expect((await d.request('POST', '/_ping')).status).toBe(404);
  });

  it('docker version shows a full Server section', async () => {
    const r = await d.docker(['version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Server: Berth/);
    expect(r.stdout).toMatch(/API version:\s+1\.50 \(minimum version 1\.24\)/);
    const kernel = await d.docker(['version', '--format', '{{.Server.KernelVersion}}']);
    expect(kernel.stdout.trim()).toBe(os.release());
  });

  it('docker info prints real figures', async () => {
    const r = await d.docker(['info', '--format', '{{json .}}']);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(info.NCPU).toBe(os.cpus().length);
    expect(info.MemTotal).toBe(os.totalmem());
    expect(info.KernelVersion).toBe(os.release());
    expect(info.DockerRootDir).toBe(d.dataRoot);
    expect(info.OSType).toBe('linux');
    expect(info.CgroupDriver).toBe('cgroupfs');
    const text = await d.docker(['info']);
    expect(text.code).toBe(0);
    expect(text.stderr).not.toMatch(/error/i);
    const raw = await d.request('GET', '/info');
    expect(validateResponse('GET', '/info', 200, raw.json())).toEqual([]);
  });

  it('docker events with --since/--until returns cleanly', async () => {
    const r = await d.docker(['events', '--since', '1m', '--until', '0s']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('streams events live and ends at --until', async () => {
    const until = Math.floor(Date.now() / 1000) + 1;
    const r = await d.request('GET', `/events?until=${until}`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
  });

  it("refuses versions above the maximum with dockerd's 400", async () => {
    const r = await d.request('GET', '/v1.99/version');
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.json()).toEqual({ message: 'client version 1.99 is too new. Maximum supported API version is 1.50' });
    const low = await d.request('GET', '/v1.12/version');
    expect(low.status).toBe(400);
    expect(low.json()).toEqual({
      message: 'client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version',
    });
    // The hijacked routes check the version the same way, before anything is attached.
    const hijacked = await new Promise<string>((resolve, reject) => {
      const sock = connect(d.socket);
      let text = '';
      sock.on('data', (c: Buffer) => (text += c.toString()));
      sock.on('end', () => resolve(text));
      sock.on('error', reject);
      sock.write('POST /v1.99/containers/x/attach?stream=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    });
    expect(hijacked).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(hijacked).toContain('\r\nApi-Version: 1.50\r\n');
    expect(hijacked).toContain('{"message":"client version 1.99 is too new. Maximum supported API version is 1.50"}');
  });

  it('serves every route on both mounts: /… and /v1.NN/… (dockerd\'s /v{version:[0-9.]+}), with the same schemas', async () => {
    for (const prefix of ['', '/v1.24', '/v1.44', '/v1.50']) {
      expect((await d.request('GET', `${prefix}/_ping`)).text()).toBe('OK');
      const bad = await d.request('POST', `${prefix}/containers/create`, { body: { Image: 'busybox', Env: [1] } });
      expect(bad.status).toBe(400);
      expect(bad.json()).toEqual({ message: 'json: cannot unmarshal number into Go struct field ContainerCreate.Env of type string' });
      const missing = await d.request('GET', `${prefix}/containers/berth-no-such/json`);
      expect(missing.json()).toEqual({ message: 'No such container: berth-no-such' });
    }
    // Not a version: no route, as with dockerd's [0-9.]+ pattern; nor is an unknown path under any version (dockerd
    // checks the version of routed requests only).
    for (const url of ['/vx/_ping', '/v1.50/no/such/route', '/v1.50', '/v1.99/no/such/route']) {
      const r = await d.request('GET', url);
      expect(r.status, url).toBe(404);
      expect(r.json()).toEqual({ message: 'page not found' });
    }
    // The version reaches the handlers: before 1.42 volume ls lists only named volumes unless asked (dockerd).
    expect((await d.request('GET', '/v1.41/volumes')).status).toBe(200);
  });

  it('answers malformed JSON with 400, unknown routes with a JSON 404, and stays healthy', async () => {
    const bad = await d.request('POST', '/containers/create', { rawBody: '{bad json', headers: { 'content-type': 'application/json' } });
    expect(bad.status).toBe(400);
    expect(bad.json<{ message: string }>().message).toMatch(/invalid JSON/);
    const missing = await d.request('GET', '/no/such/route');
    expect(missing.status).toBe(404);
    expect(missing.headers['content-type']).toBe('application/json');
    expect(missing.json()).toEqual({ message: 'page not found' });
    const wrongMethod = await d.request('DELETE', '/version');
    expect(wrongMethod.status).toBe(404);
    const cli = await d.docker(['version', '--format', '{{.Server.APIVersion}}']);
    expect(cli.stdout.trim()).toBe('1.50');
  });
});

describe('berthd lifecycle', () => {
  it('survives SIGKILL: the stale socket and lock are handled and the store is intact', async () => {
    const d = await startDaemon();
    try {
      const id1 = (await d.request('GET', '/info')).json<{ ID: string }>().ID;
      await d.signal('SIGKILL');
      expect(existsSync(d.socket)).toBe(true); // left behind by the crash
      await d.launch();
      const id2 = (await d.request('GET', '/info')).json<{ ID: string }>().ID;
      expect(id2).toBe(id1);
      const r = await d.docker(['info']);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await d.stop();
    }
  });

  it('refuses a second daemon on the same data root', async () => {
    const d = await startDaemon();
    try {
      const second = await runCommand(process.execPath, [
        MAIN,
        '--host', `unix://${d.dir}/second.sock`,
        '--data-root', d.dataRoot,
        '--exec-root', `${d.dir}/run2`,
        '--config-file', `${d.dir}/daemon.json`,
      ]);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toMatch(/another berthd \(pid \d+\) is already running on data root/);
      expect((await d.request('GET', '/_ping')).status).toBe(200);
    } finally {
      await d.stop();
    }
  });

  it('shuts down gracefully on SIGTERM, finishing an in-flight stream and removing its socket', async () => {
    const d = await startDaemon();
    try {
      // the stream is in flight once its headers are here (the daemon flushes them at once)
      const events = await undiciRequest('http://localhost/events', { dispatcher: d.agent });
      expect(events.statusCode).toBe(200);
      const body = events.body.text();
      const code = await d.signal('SIGTERM');
      expect(code).toBe(0);
      expect(existsSync(d.socket)).toBe(false);
      // ended by the daemon as a finished response (a cut connection would reject this)
      expect(await body).toBe('');
    } finally {
      await d.stop();
    }
  });
});
