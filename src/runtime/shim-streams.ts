// A shim's process as berthd sees it over the shim's socket: its output and stdin as streams (bounded: a slow
// reader pauses the shim), and its exit status (the exit file, else the socket's exit message, else a
// synthesised one when the shim died without either).

import { promises as fsp } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { lostExit, type AttachHandle, type AttachWant, type OutputChunk } from './executor-api.js';
import { ShimConnection, parseExitStatus, type ExitStatus } from './shim-client.js';
import { isAlive } from './shim-process.js';

export async function attachHandle(
  conn: ShimConnection,
  want: AttachWant,
  stdinOnce: boolean,
): Promise<AttachHandle> {
  // Bounded: when the consumer falls behind, reading from the shim pauses (the shim then stops
  // reading the container's output), so berthd never buffers more than a few chunks per session.
  const output = new Readable({
    objectMode: true,
    highWaterMark: 16,
    read: () => conn.resume(),
  });
  conn.on('output', (stream: 'stdout' | 'stderr', data: Buffer) => {
    if (!output.push({ stream, data } satisfies OutputChunk)) conn.pause();
  });
  const exited = new Promise<ExitStatus | undefined>((resolve) => {
    conn.once('exit', (st: ExitStatus) => resolve(st));
    conn.once('close', () => resolve(conn.exitStatus));
  });
  conn.once('close', () => output.push(null));
  if (want.stdout || want.stderr) {
    // Asked now, just before the attach frame is sent: the shim may write the output to the client itself.
    const direct = want.direct?.();
    if (direct) await conn.attachDirect(want.stdout, want.stderr, direct);
    else await conn.attach(want.stdout, want.stderr);
  }
  const handle: AttachHandle = { output, exited, close: () => conn.close() };
  if (want.stdin) {
    handle.stdin = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (conn.writeStdin(chunk)) cb();
        else conn.onDrain(() => cb());
      },
      final(cb) {
        if (!stdinOnce || conn.isClosed) return cb();
        conn.closeStdin().then(
          () => cb(),
          () => cb(),
        );
      },
    });
  }
  return handle;
}

export async function readExit(file: string): Promise<ExitStatus | undefined> {
  try {
    return parseExitStatus(await fsp.readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function waitExitFile(file: string, socketPath: string, shimPid: number, shimStart: number): Promise<ExitStatus> {
  for (;;) {
    const st = await readExit(file);
    if (st) return st;
    let conn: ShimConnection | undefined;
    try {
      conn = await ShimConnection.connect(socketPath);
    } catch {
      conn = undefined;
    }
    if (conn) {
      const c = conn;
      const fromSocket = await new Promise<ExitStatus | undefined>((resolve) => {
        c.once('exit', (s: ExitStatus) => resolve(s));
        c.once('close', () => resolve(c.exitStatus));
      });
      c.close();
      if (fromSocket) return fromSocket;
      continue;
    }
    // socket gone: the shim is writing/has written the exit file, or died without one
    if (!isAlive(shimPid, shimStart)) {
      const last = await readExit(file);
      if (last) return last;
      return lostExit('berth-shim exited without recording an exit status');
    }
    await delay(10);
  }
}
