import { createConnection, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';

/**
 * Hijacked attach sessions whose output the shim writes to the client's socket itself (berthd relays nothing):
 * several sessions of one run, a TTY, stdin and the client's half-close, a client that stops reading, and a
 * daemon that goes away under an attached client.
 */

interface Session {
  sock: Socket;
  /** The HTTP answer's head (status line and headers). */
  head: Promise<string>;
  /** Everything after the head, once the daemon has ended the stream. */
  body: Promise<Buffer>;
}

function hijack(socketPath: string, path: string, request?: unknown): Session {
  const sock = createConnection({ path: socketPath, allowHalfOpen: true });
  let buf = Buffer.alloc(0);
  let headDone: (h: string) => void = () => undefined;
  const head = new Promise<string>((r) => (headDone = r));
  let headLen = -1;
  const body = new Promise<Buffer>((resolve, reject) => {
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (headLen < 0) {
        const at = buf.indexOf('\r\n\r\n');
        if (at >= 0) {
          headLen = at + 4;
          headDone(buf.subarray(0, at).toString('latin1'));
        }
      }
    });
    sock.on('end', () => resolve(buf.subarray(Math.max(0, headLen))));
    sock.on('error', reject);
  });
  const json = request === undefined ? '' : JSON.stringify(request);
  const type = request === undefined ? '' : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n`;
  sock.write(`POST ${path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n${type}\r\n${json}`);
  return { sock, head, body };
}

/** Splits a stdcopy stream into its stdout and stderr. */
function demux(b: Buffer): { stdout: string; stderr: string } {
  const out = { stdout: '', stderr: '' };
  for (let off = 0; off + 8 <= b.length; ) {
    const len = b.readUInt32BE(off + 4);
    const payload = b.subarray(off + 8, off + 8 + len).toString('utf8');
    if (b[off] === 2) out.stderr += payload;
    else out.stdout += payload;
    off += 8 + len;
  }
  return out;
}

describe('attach: output written by the shim to the client directly', () => {
  let d: TestDaemon;
  const created: string[] = [];

  const create = async (body: Record<string, unknown>): Promise<string> => {
    const r = await d.request('POST', '/containers/create', { body: { Image: 'busybox', ...body } });
    expect(r.status, r.text()).toBe(201);
    const id = r.json<{ Id: string }>().Id;
    created.push(id);
    return id;
  };
  const start = async (id: string): Promise<void> => {
    const r = await d.request('POST', `/containers/${id}/start`);
    expect(r.status, r.text()).toBe(204);
  };
  const wait = async (id: string): Promise<number> => (await d.request('POST', `/containers/${id}/wait`)).json<{ StatusCode: number }>().StatusCode;

  beforeAll(async () => {
    d = await startDaemon();
    expect((await d.docker(['load', '-i', await busyboxImageTar()])).code).toBe(0);
  });
  afterAll(async () => {
    if (created.length) await d.docker(['rm', '-f', ...created]);
    await d.stop();
  });

  it('gives every session of a run the whole output, demuxed as before, next to a relayed one; docker logs has it too', async () => {
    const id = await create({ Cmd: ['sh', '-c', 'echo out; echo err >&2; echo more; exit 3'] });
    const q = 'stream=1&stdout=1&stderr=1';
    // Attached before the start, so each session sees the run from its first byte.
    const sessions = [hijack(d.socket, `/containers/${id}/attach?${q}`), hijack(d.socket, `/containers/${id}/attach?${q}`)];
    // logs=1 keeps a session on the relay (berthd writes the replay first).
    const relayed = hijack(d.socket, `/containers/${id}/attach?${q}&logs=1`);
    const stdoutOnly = hijack(d.socket, `/containers/${id}/attach?stream=1&stdout=1`);
    for (const s of [...sessions, relayed, stdoutOnly]) {
      expect(await s.head).toMatch(/^HTTP\/1\.1 101 UPGRADED\r\n/);
      expect(await s.head).toContain('Content-Type: application/vnd.docker.multiplexed-stream');
    }
    await start(id);
    for (const s of [...sessions, relayed]) expect(demux(await s.body)).toEqual({ stdout: 'out\nmore\n', stderr: 'err\n' });
    expect(demux(await stdoutOnly.body)).toEqual({ stdout: 'out\nmore\n', stderr: '' });
    expect(await wait(id)).toBe(3);
    const logs = await d.docker(['logs', id]);
    expect(logs).toMatchObject({ stdout: 'out\nmore\n', stderr: 'err\n' });
  });

  it('gives a TTY session the raw output', async () => {
    const id = await create({ Tty: true, Cmd: ['sh', '-c', 'echo tty; exit 5'] });
    const s = hijack(d.socket, `/containers/${id}/attach?stream=1&stdout=1&stderr=1`);
    expect(await s.head).toContain('Content-Type: application/vnd.docker.raw-stream');
    await start(id);
    expect((await s.body).toString()).toBe('tty\r\n');
    expect(await wait(id)).toBe(5);
  });

  it('takes stdin from the session and still sends the output that follows the client closing its side', async () => {
    const id = await create({ OpenStdin: true, StdinOnce: true, AttachStdin: true, Cmd: ['sh', '-c', 'cat; echo after'] });
    const s = hijack(d.socket, `/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1`);
    await s.head;
    await start(id);
    s.sock.end('hello\n');
    expect(demux(await s.body)).toEqual({ stdout: 'hello\nafter\n', stderr: '' });
    expect(await wait(id)).toBe(0);
  });

  it('lets the container run to its end when a session stops reading, and then ends that session', async () => {
    const id = await create({ Cmd: ['sh', '-c', 'head -c 8000000 /dev/zero; exit 4'] });
    const s = hijack(d.socket, `/containers/${id}/attach?stream=1&stdout=1&stderr=1`);
    await s.head;
    s.sock.pause();
    await start(id);
    expect(await wait(id)).toBe(4);
    s.sock.resume();
    // The session was let go: what it got is a whole-frame prefix of the output (or all of it), then the end.
    const got = await s.body;
    expect(got.length).toBeLessThanOrEqual(8_000_000 + 8 * 1000);
  });

  it('streams an exec through a hijacked start: stdin, both streams, and the exit code recorded before the end', async () => {
    const id = await create({ Cmd: ['sleep', '600'] });
    await start(id);
    const ex = await d.request('POST', `/containers/${id}/exec`, {
      body: { AttachStdin: true, AttachStdout: true, AttachStderr: true, Cmd: ['sh', '-c', 'cat; echo err >&2; exit 6'] },
    });
    expect(ex.status, ex.text()).toBe(201);
    const execId = ex.json<{ Id: string }>().Id;
    const s = hijack(d.socket, `/exec/${execId}/start`, { Detach: false, Tty: false });
    expect(await s.head).toMatch(/^HTTP\/1\.1 101 UPGRADED\r\n/);
    s.sock.end('in\n');
    expect(demux(await s.body)).toEqual({ stdout: 'in\n', stderr: 'err\n' });
    const info = (await d.request('GET', `/exec/${execId}/json`)).json<{ Running: boolean; ExitCode: number }>();
    expect(info).toMatchObject({ Running: false, ExitCode: 6 });
  });

  it('ends an attached session when the daemon goes away', async () => {
    const id = await create({ OpenStdin: true, Cmd: ['sh', '-c', 'read x; echo "got $x"; exec sleep 600'] });
    await start(id);
    const s = hijack(d.socket, `/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1`);
    await s.head;
    // The answer to this line shows that the session is attached.
    s.sock.write('go\n');
    await new Promise<void>((resolve) => {
      let got = '';
      const onData = (c: Buffer): void => {
        got += c.toString('latin1');
        if (!got.includes('got go')) return;
        s.sock.off('data', onData);
        resolve();
      };
      s.sock.on('data', onData);
    });
    // The shim holds the session's socket too: it lets go of it with its connection to the daemon.
    await d.signal('SIGKILL');
    expect(demux(await s.body).stdout).toBe('got go\n');
    await d.launch();
  });
});
