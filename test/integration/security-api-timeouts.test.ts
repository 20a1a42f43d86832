import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';

/** Connects, sends `data`, then stalls; resolves with what the server answered once it closed the connection. */
function stall(socketPath: string, data: string | Buffer, limitMs: number): Promise<{ closed: boolean; answer: string }> {
  return new Promise((resolve) => {
    const sock: Socket = connect(socketPath);
    let answer = '';
    const limit = setTimeout(() => {
      sock.destroy();
      resolve({ closed: false, answer });
    }, limitMs);
    sock.on('data', (b: Buffer) => (answer += b.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(limit);
      resolve({ closed: true, answer });
    });
    if (data.length > 0) sock.write(data);
  });
}

// The daemon times requests out after 1 s (headers), 2 s (JSON body) and 2 s of upload silence; every
// long-lived exchange below stays idle for 4 s, twice the longest of them.
describe('security: slow clients are disconnected, long-lived streams are not', () => {
  let d: TestDaemon;
  const IDLE = 4;
  beforeAll(async () => {
    d = await startDaemon({ config: { 'api-timeouts': { headers: 1, request: 2, 'body-idle': 2 } } });
    expect((await d.docker(['load', '-i', await busyboxImageTar()])).code).toBe(0);
  });
  afterAll(async () => {
    await d.docker(['rm', '-f', 'tologs', 'toevents', 'towait', 'toexec', 'toattach']);
    await d.stop();
  });

  it('closes a connection whose headers stop half way (slowloris)', async () => {
    const r = await stall(d.socket, 'GET /containers/json HTTP/1.1\r\nHost: x\r\nX-Slow: ', 20_000);
    expect(r.closed).toBe(true);
    expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes a connection that never sends anything', async () => {
    const r = await stall(d.socket, '', 20_000);
    expect(r.closed).toBe(true);
  });

  it('closes a connection whose JSON body stops half way', async () => {
    const r = await stall(
      d.socket,
      'POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"Image":',
      20_000,
    );
    expect(r.closed).toBe(true);
    expect(r.answer).toBe('');
  });

  it('closes an upload that goes silent', async () => {
    // The start of a real image archive: the loader is reading it when the client stops.
    const tar = readFileSync(await busyboxImageTar());
    const head = `POST /images/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: ${tar.length}\r\n\r\n`;
    const r = await stall(d.socket, Buffer.concat([Buffer.from(head), tar.subarray(0, 64 * 1024)]), 20_000);
    expect(r.closed).toBe(true);
    expect(r.answer).not.toContain('Loaded image');
  });

  it('keeps a slow but steady upload going past the idle timeout', async () => {
    const tar = readFileSync(await busyboxImageTar('slowbox:1'));
    const parts = 10;
    const size = Math.ceil(tar.length / parts);
    const res = await new Promise<string>((resolve, reject) => {
      const sock = connect(d.socket);
      let answer = '';
      sock.on('data', (b: Buffer) => (answer += b.toString()));
      sock.on('end', () => resolve(answer));
      sock.on('error', reject);
      sock.write(`POST /images/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: ${tar.length}\r\nConnection: close\r\n\r\n`);
      let i = 0;
      // A part every 0.4 s: 3.6 s in all, past the 2 s idle timeout, and never near it, even when a loaded
      // machine holds up this process or the daemon for a while (1 s gaps left only 1 s of slack).
      const next = (): void => {
        sock.write(tar.subarray(i * size, (i + 1) * size));
        i++;
        if (i < parts) setTimeout(next, 400);
      };
      next();
    });
    expect(res).toMatch(/^HTTP\/1\.1 200/);
    expect(res).toContain('Loaded image: slowbox:1');
  });

  it('keeps docker logs -f, wait, exec and attach open while idle', async () => {
    const script = `echo first; sleep ${IDLE}; echo second`;
    expect((await d.docker(['run', '-d', '--name', 'tologs', 'busybox', 'sh', '-c', script])).code).toBe(0);
    expect((await d.docker(['run', '-d', '--name', 'towait', 'busybox', 'sleep', String(IDLE)])).code).toBe(0);
    expect((await d.docker(['run', '-d', '--name', 'toexec', 'busybox', 'sleep', '60'])).code).toBe(0);
    const [logs, wait, exec, attach] = await Promise.all([
      d.docker(['logs', '-f', 'tologs']),
      d.docker(['wait', 'towait']),
      d.docker(['exec', 'toexec', 'sh', '-c', script]),
      // docker run without -d attaches through the hijacked endpoint.
      d.docker(['run', '--name', 'toattach', '-i', 'busybox', 'sh', '-c', script], { input: '' }),
    ]);
    expect(logs).toMatchObject({ code: 0, stdout: 'first\nsecond\n' });
    expect(wait).toMatchObject({ code: 0, stdout: '0\n' });
    expect(exec).toMatchObject({ code: 0, stdout: 'first\nsecond\n' });
    expect(attach).toMatchObject({ code: 0, stdout: 'first\nsecond\n' });
  });

  it('keeps docker events open while idle', async () => {
    const since = String(Math.floor(Date.now() / 1000) - 1);
    const events = spawn('docker', ['events', '--since', since, '--filter', 'container=toevents', '--filter', 'event=die', '--format', '{{.Action}}'], {
      env: d.env,
    });
    let out = '';
    events.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const died = new Promise<void>((resolve) => events.stdout.on('data', () => out.includes('die') && resolve()));
    try {
      expect((await d.docker(['run', '-d', '--name', 'toevents', 'busybox', 'sleep', String(IDLE)])).code).toBe(0);
      await died;
      expect(out.trim()).toBe('die');
      expect(events.exitCode).toBeNull();
    } finally {
      events.kill();
    }
  });
});
