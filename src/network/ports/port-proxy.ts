import { createServer, connect, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket, type RemoteInfo } from 'node:dgram';
import type { Logger } from '../../util/logger.js';

/**
 * Berth's userland proxy: one listener per published port (TCP server or UDP socket) on the host,
 * forwarding to the container's address. It works without iptables and on loopback.
 */

export interface ProxyTarget {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export interface PortProxy {
  readonly target: ProxyTarget;
  /** Points new connections at another container address (after a disconnect of the primary network). */
  retarget(containerIp: string): void;
  close(): Promise<void>;
}

const UDP_IDLE_MS = 90_000;

function listenHost(hostIp: string): string {
  return hostIp === '' ? '0.0.0.0' : hostIp;
}

/** Starts a proxy; rejects with the listen error (EADDRINUSE...) when the port cannot be bound. */
export function startProxy(log: Logger, target: ProxyTarget): Promise<PortProxy> {
  return target.proto === 'tcp' ? startTcp(log, { ...target }) : startUdp(log, { ...target });
}

function startTcp(log: Logger, t: ProxyTarget): Promise<PortProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    sockets.add(client);
    const upstream = connect({ host: t.containerIp, port: t.containerPort, allowHalfOpen: true });
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', () => {
      sockets.delete(client);
      if (!upstream.writableEnded) upstream.end();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      if (!client.writableEnded) client.end();
    });
    client.on('error', drop);
    upstream.on('error', (e) => {
      log.debug({ err: e.message, target: `${t.containerIp}:${t.containerPort}` }, 'proxy upstream error');
      drop();
    });
    upstream.once('connect', () => {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listenHost(t.hostIp), port: t.hostPort, exclusive: true }, () => {
      server.off('error', reject);
      server.on('error', (e) => log.warn({ err: e.message }, 'proxy listener error'));
      resolve({
        target: t,
        retarget(ip) {
          t.containerIp = ip;
        },
        close() {
          return new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          });
        },
      });
    });
  });
}

function startUdp(log: Logger, t: ProxyTarget): Promise<PortProxy> {
  const sock: UdpSocket = createSocket({ type: 'udp4', reuseAddr: false });
  const flows = new Map<string, { up: UdpSocket; timer: NodeJS.Timeout }>();
  const endFlow = (key: string): void => {
    const f = flows.get(key);
    if (!f) return;
    clearTimeout(f.timer);
    f.up.close();
    flows.delete(key);
  };
  sock.on('message', (msg: Buffer, from: RemoteInfo) => {
    const key = `${from.address}:${from.port}`;
    let flow = flows.get(key);
    if (!flow) {
      const up = createSocket('udp4');
      up.on('message', (reply) => {
        sock.send(reply, from.port, from.address);
        const f = flows.get(key);
        if (f) f.timer.refresh();
      });
      up.on('error', (e) => {
        log.debug({ err: e.message }, 'udp proxy upstream error');
        endFlow(key);
      });
      flow = { up, timer: setTimeout(() => endFlow(key), UDP_IDLE_MS) };
      flow.timer.unref();
      flows.set(key, flow);
    } else {
      flow.timer.refresh();
    }
    flow.up.send(msg, t.containerPort, t.containerIp);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address: listenHost(t.hostIp), port: t.hostPort, exclusive: true }, () => {
      sock.off('error', reject);
      sock.on('error', (e) => log.warn({ err: e.message }, 'udp proxy error'));
      resolve({
        target: t,
        retarget(ip) {
          t.containerIp = ip;
        },
        close() {
          for (const key of [...flows.keys()]) endFlow(key);
          return new Promise<void>((done) => sock.close(() => done()));
        },
      });
    });
  });
}
