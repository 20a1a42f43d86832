import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';

describe('GET /containers/{id}/attach/ws', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
    expect((await d.docker(['load', '-i', await busyboxImageTar()])).code).toBe(0);
  });
  afterAll(async () => {
    await d.docker(['rm', '-f', 'wscat', 'wsecho']);
    await d.stop();
  });

  it('streams stdin and output over a websocket', async () => {
    expect((await d.docker(['run', '-d', '-i', '--name', 'wscat', 'busybox', 'cat'])).code).toBe(0);
    const ws = new WebSocket(`ws+unix://${d.socket}:/containers/wscat/attach/ws?stream=1&stdin=1&stdout=1`);
    const received: Buffer[] = [];
    const got = new Promise<string>((resolve, reject) => {
      ws.on('error', reject);
      ws.on('open', () => ws.send(Buffer.from('hello-ws\n')));
      ws.on('message', (data: Buffer, isBinary) => {
        expect(isBinary).toBe(true);
        received.push(data);
        const text = Buffer.concat(received).toString();
        if (text.includes('hello-ws\n')) resolve(text);
      });
    });
    expect(await got).toBe('hello-ws\n');
    // A text frame is stdin too.
    const more = new Promise<void>((resolve) => ws.on('message', () => Buffer.concat(received).toString().includes('text-frame') && resolve()));
    ws.send('text-frame\n');
    await more;
    ws.terminate();
  });

  it('closes the websocket when the container exits', async () => {
    expect((await d.docker(['create', '-i', '--name', 'wsecho', 'busybox', 'sh', '-c', 'read x; echo got-$x'])).code).toBe(0);
    const ws = new WebSocket(`ws+unix://${d.socket}:/containers/wsecho/attach/ws?stream=1&stdin=1&stdout=1&stderr=1`);
    const received: Buffer[] = [];
    ws.on('message', (data: Buffer) => received.push(data));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    expect((await d.docker(['start', 'wsecho'])).code).toBe(0);
    ws.send(Buffer.from('abc\n'));
    await closed;
    expect(Buffer.concat(received).toString()).toBe('got-abc\n');
  });

  it('answers an upgrade that is not a websocket handshake with 400', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = connect(d.socket);
      let text = '';
      sock.on('data', (c: Buffer) => (text += c.toString()));
      sock.on('end', () => resolve(text));
      sock.on('error', reject);
      sock.write('GET /containers/wscat/attach/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(answer).toContain('{"message":"attach/ws needs a websocket upgrade"}');
  });
});
