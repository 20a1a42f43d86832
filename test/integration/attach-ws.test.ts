import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { FrameDecoder, websocketAccept } from '../../src/api/websocket.js';

/** A masked client frame, as a websocket client sends it. */
function clientFrame(payload: Buffer, opcode = 0x2): Buffer {
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] ?? 0)));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
}

describe('GET /containers/{id}/attach/ws', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
    expect((await d.docker(['load', '-i', await busyboxImageTar()])).code).toBe(0);
  });
  afterAll(async () => {
    await d.docker(['rm', '-f', 'wscat']);
    await d.stop();
  });

  it('streams stdin and output over a websocket', async () => {
    expect((await d.docker(['run', '-d', '-i', '--name', 'wscat', 'busybox', 'cat'])).code).toBe(0);
    const key = randomBytes(16).toString('base64');
    const sock = connect(d.socket);
    const received: Buffer[] = [];
    const decoder = new FrameDecoder();
    let head = '';
    let upgraded = false;
    const got = new Promise<string>((resolve, reject) => {
      sock.on('error', reject);
      sock.on('data', (chunk: Buffer) => {
        let rest = chunk;
        if (!upgraded) {
          head += chunk.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          upgraded = true;
          expect(head).toMatch(/^HTTP\/1\.1 101/);
          expect(head).toContain(`Sec-WebSocket-Accept: ${websocketAccept(key)}`);
          rest = Buffer.from(head.slice(end + 4), 'latin1');
          sock.write(clientFrame(Buffer.from('hello-ws\n')));
        }
        for (const f of decoder.push(rest)) received.push(f.payload);
        if (Buffer.concat(received).toString().includes('hello-ws\n')) resolve(Buffer.concat(received).toString());
      });
    });
    sock.write(
      `GET /containers/wscat/attach/ws?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect(await got).toBe('hello-ws\n');
    sock.destroy();
  });
});
