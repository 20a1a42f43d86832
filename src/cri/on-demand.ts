import { chmodSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { BerthError, errorMessage } from '../errors.js';
import type { Logger } from '../util/logger.js';

/** What serving the CRI for real gives back (startCri). */
export interface CriServer {
  close(): Promise<void>;
}

/** The on-demand socket: also started without a connection when something needs the CRI's state (NRI). */
export interface OnDemandCriServer extends CriServer {
  warm(): Promise<void>;
}

/**
 * The CRI socket, served on demand: gRPC and the CRI services are ~7 MiB of resident memory that a daemon nobody
 * drives through the CRI never needs. Until the first connection a plain listener holds the socket path; that
 * connection loads and starts the real server on a private path, which is then renamed over the public one (new
 * connections reach gRPC directly from then on), and the connections that came in meanwhile are relayed to it.
 * Both listeners bind temporary names that are renamed into place, so closing either never unlinks the path the
 * other serves. This file imports nothing of gRPC.
 */
export async function serveCriOnDemand(endpoint: string, start: (privateEndpoint: string) => Promise<CriServer>, log: Logger): Promise<OnDemandCriServer> {
  if (!endpoint.startsWith('unix://')) throw new BerthError(`CRI endpoint must be unix://<path>, got "${endpoint}"`);
  const path = endpoint.slice('unix://'.length);
  mkdirSync(dirname(path), { recursive: true, mode: 0o711 });
  const stubPath = `${path}.stub`;
  const realPath = `${path}.grpc`;
  rmSync(stubPath, { force: true });

  let real: Promise<CriServer> | undefined;
  let closed = false;
  const relay = (client: Socket): void => {
    const upstream = createConnection(path);
    client.pipe(upstream).on('error', () => client.destroy());
    upstream.pipe(client).on('error', () => upstream.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  const load = (): Promise<CriServer> => {
    real ??= (async () => {
      const t0 = performance.now();
      const server = await start(`unix://${realPath}`);
      renameSync(realPath, path);
      log.info({ socket: path, ms: Math.round(performance.now() - t0) }, 'CRI server started on first use');
      // Connections already queued on the stub are still accepted and relayed; then it goes.
      setImmediate(() => stub.close());
      return server;
    })();
    return real;
  };
  const stub: Server = createServer({ pauseOnConnect: true }, (client) => {
    if (closed) {
      client.destroy();
      return;
    }
    load().then(
      () => relay(client),
      (e: unknown) => {
        log.error({ err: errorMessage(e) }, 'starting the CRI server failed');
        real = undefined;
        client.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    stub.once('error', reject);
    stub.listen(stubPath, () => {
      stub.off('error', reject);
      resolve();
    });
  });
  chmodSync(stubPath, 0o660);
  renameSync(stubPath, path);
  log.info({ socket: path }, 'CRI socket listening (the server starts on first use)');

  return {
    async warm() {
      if (closed) return;
      try {
        await load();
      } catch (e) {
        real = undefined;
        throw e;
      }
    },
    async close() {
      closed = true;
      if (stub.listening) await new Promise<void>((resolve) => stub.close(() => resolve()));
      const server = await real?.catch(() => undefined);
      await server?.close();
      rmSync(path, { force: true });
    },
  };
}
