import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { RawWebSocket, clientFrame, frameHeader } from '../helpers/raw-websocket.js';

/** Resident memory of a process in bytes. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

// Attacks on GET /containers/{id}/attach/ws from a local API client: frames a conforming client never sends.
describe('security: the attach websocket refuses hostile frames', () => {
  let d: TestDaemon;
  const path = '/containers/wsattack/attach/ws?stream=1&stdin=1&stdout=1&stderr=1';
  beforeAll(async () => {
    d = await startDaemon();
    expect((await d.docker(['load', '-i', await busyboxImageTar()])).code).toBe(0);
    expect((await d.docker(['run', '-d', '-i', '--name', 'wsattack', 'busybox', 'cat'])).code).toBe(0);
  });
  afterAll(async () => {
    await d.docker(['rm', '-f', 'wsattack']);
    await d.stop();
  });

  it('echoes a masked frame (the connection itself works)', async () => {
    const ws = await RawWebSocket.open(d.socket, path);
    try {
      ws.write(clientFrame(Buffer.from('masked-ok\n')));
      await ws.until(() => ws.text.includes('masked-ok\n'), 10_000, 'echo');
    } finally {
      ws.destroy();
    }
  });

  it('closes with 1002 on an unmasked client frame and forwards nothing', async () => {
    const ws = await RawWebSocket.open(d.socket, path);
    try {
      ws.write(clientFrame(Buffer.from('unmasked-data\n'), { masked: false }));
      await ws.until(() => ws.closeCode !== undefined && ws.ended, 10_000, 'close frame and end');
      expect(ws.closeCode).toBe(1002);
      expect(ws.text).not.toContain('unmasked-data');
    } finally {
      ws.destroy();
    }
  });

  it('closes with 1009 on a 2^63 length field', async () => {
    const ws = await RawWebSocket.open(d.socket, path);
    try {
      ws.write(frameHeader(0x2, 1n << 63n, randomBytes(4)));
      ws.write(randomBytes(4096));
      await ws.until(() => ws.closeCode !== undefined && ws.ended, 10_000, 'close frame and end');
      expect(ws.closeCode).toBe(1009);
    } finally {
      ws.destroy();
    }
  });

  it('closes on a frame over the payload cap before its body is buffered', async () => {
    const pid = d.process?.pid;
    expect(pid).toBeDefined();
    const before = rss(pid ?? 0);
    const ws = await RawWebSocket.open(d.socket, path);
    let sent = 0;
    try {
      ws.write(frameHeader(0x2, 256n * 1024n * 1024n, randomBytes(4)));
      // Push up to 96 MiB of the body while the server listens; the old decoder kept all of it.
      const chunk = randomBytes(1024 * 1024);
      while (sent < 96 * 1024 * 1024 && !ws.ended) {
        if (!ws.write(chunk)) await new Promise<void>((r) => {
          const done = (): void => {
            ws.socket.off('drain', done);
            ws.socket.off('close', done);
            r();
          };
          ws.socket.on('drain', done);
          ws.socket.on('close', done);
        });
        sent += chunk.length;
      }
      await ws.until(() => ws.closeCode !== undefined && ws.ended, 10_000, 'close frame and end');
      expect(ws.closeCode).toBe(1009);
      expect(rss(pid ?? 0) - before).toBeLessThan(48 * 1024 * 1024);
    } finally {
      ws.destroy();
    }
  });

  it('echoes the close code the client sent', async () => {
    const ws = await RawWebSocket.open(d.socket, path);
    try {
      const code = Buffer.alloc(2);
      code.writeUInt16BE(4001);
      ws.write(clientFrame(code, { opcode: 0x8 }));
      await ws.until(() => ws.closeCode !== undefined, 10_000, 'close frame');
      expect(ws.closeCode).toBe(4001);
    } finally {
      ws.destroy();
    }
  });
});
