import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listenUnixSocket } from '../../../src/api/unix-listen.js';

describe('listenUnixSocket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bt-sock-'));
  const saved = process.umask();
  afterEach(() => process.umask(saved));

  it('creates the socket with no permissions at all, then gives it the final mode', async () => {
    // The most permissive umask a daemon could inherit: a plain listen() would create the socket 0777.
    process.umask(0);
    const path = join(dir, 'a.sock');
    const server = createServer();
    const modes: number[] = [];
    // 'listening' fires after bind(2) and before the owner and mode are set.
    server.once('listening', () => modes.push(statSync(path).mode & 0o777));
    await listenUnixSocket(server, path, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }, 0o660);
    modes.push(statSync(path).mode & 0o777);
    expect(modes).toEqual([0o000, 0o660]);
    expect(process.umask()).toBe(0);
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('restores the umask and rejects when the path cannot be bound', async () => {
    process.umask(0o022);
    const server = createServer();
    await expect(listenUnixSocket(server, join(dir, 'missing', 'b.sock'), { uid: 0, gid: 0 }, 0o660)).rejects.toThrow();
    expect(process.umask()).toBe(0o022);
  });

  it('cleans up', () => {
    rmSync(dir, { recursive: true, force: true });
  });
});
