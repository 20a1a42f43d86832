import { createServer, type Server } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { BerthError } from '../errors.js';

/**
 * A mutex shared by every Berth daemon on the host: an abstract unix socket name (`\0berth/<name>`) that only
 * one process can bind at a time. The kernel arbitrates it and releases it when its holder exits, however it
 * exits, so a killed daemon never leaves it held (no lock file to go stale). Abstract names live per network
 * namespace, which is exactly the scope of what it guards (the host's routes and devices).
 */
/** Held while a daemon picks subnets and bridge names and puts them on the host (routes appear), so two daemons
 * never choose the same free subnet or name at once. */
export const HOST_NETWORK_LOCK = 'network';

export async function withHostLock<T>(name: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const server = await acquire(`\0berth/${name}`, timeoutMs);
  try {
    return await fn();
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function acquire(path: string, timeoutMs: number): Promise<Server> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    const server = createServer();
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen({ path }, () => resolve(undefined));
    });
    if (!err) {
      server.unref();
      return server;
    }
    if (err.code !== 'EADDRINUSE') throw new BerthError(`host lock ${path.slice(1)}: ${err.message}`, { cause: err });
    if (Date.now() >= deadline) throw new BerthError(`host lock ${path.slice(1)} still held by another daemon after ${timeoutMs} ms`);
    // Polled: the holder is another process, and the kernel tells nobody when the name frees up.
    await delay(wait);
  }
}
