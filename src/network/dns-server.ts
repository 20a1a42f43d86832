import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../util/logger.js';
import {
  buildFormErr,
  buildResponse,
  parseQuery,
  RCODE_NOERROR,
  RCODE_SERVFAIL,
  TYPE_A,
  CLASS_IN,
  type DnsQuery,
} from './dns-codec.js';

/**
 * Embedded DNS for user-defined networks: one UDP socket and one TCP listener per network on the
 * network's gateway address. Only the network's own containers are served (dockerd's resolver lives in
 * each container's namespace, so nobody else can ask it): queries from any other source (the host, a
 * LAN neighbour routing to the gateway, a container of another network) get no answer at all, so the
 * host is no open resolver and a network's names stay its own. Names of containers sharing a network
 * with the asker are answered here; everything else is forwarded to upstream resolvers (the host's,
 * injectable for tests), unless the asker has no way out (only internal networks): SERVFAIL, as dockerd.
 * TCP connections are capped per network and closed when idle.
 */

export interface Upstream {
  host: string;
  port: number;
}

export interface DnsResolver {
  /** Whether `askerIp` is a container of network `networkId` (everyone else is ignored). */
  serves(networkId: string, askerIp: string): boolean;
  /**
   * Addresses for `name` as seen by a container at `askerIp` querying the server of network `networkId`;
   * undefined when the name is not one of Berth's (then it is forwarded), [] for "ours but no IPv4".
   */
  lookup(networkId: string, askerIp: string, name: string): string[] | undefined;
  /** Whether names unknown to Berth may be forwarded for this asker (not when all its networks are internal). */
  mayForward(networkId: string, askerIp: string): boolean;
}

export interface DnsLimits {
  /** A TCP connection silent for this long is closed (miekg/dns, dockerd's server: 8 s idle). */
  tcpIdleMs: number;
  /** Open TCP connections per network; more are closed at once. */
  tcpMaxConnections: number;
}

const TTL = 600;
const FORWARD_TIMEOUT_MS = 2000;
const DEFAULT_LIMITS: DnsLimits = { tcpIdleMs: 8000, tcpMaxConnections: 100 };

interface Listener {
  udp: UdpSocket;
  tcp: Server;
  tcpSockets: Set<Socket>;
}

export class EmbeddedDns {
  private readonly listeners = new Map<string, Listener>();

  constructor(
    private readonly log: Logger,
    private readonly resolver: DnsResolver,
    private readonly upstreams: () => Upstream[],
    private readonly port = 53,
    private readonly limits: DnsLimits = DEFAULT_LIMITS,
  ) {}

  /** Starts serving network `networkId` on `address`:port (UDP and TCP). */
  async listen(networkId: string, address: string): Promise<void> {
    if (this.listeners.has(networkId)) return;
    const udp = createSocket({ type: 'udp4' });
    udp.on('message', (msg, rinfo) => {
      if (!this.resolver.serves(networkId, rinfo.address)) return;
      void this.answer(networkId, rinfo.address, msg).then((reply) => {
        if (reply) udp.send(reply, rinfo.port, rinfo.address);
      });
    });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address, port: this.port, exclusive: true }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', (e) => this.log.warn({ err: e.message, networkId }, 'dns udp socket error'));
    const tcpSockets = new Set<Socket>();
    const tcp = createServer((sock) => {
      const asker = sock.remoteAddress?.replace(/^::ffff:/, '') ?? '';
      sock.on('error', () => sock.destroy());
      if (!this.resolver.serves(networkId, asker) || tcpSockets.size >= this.limits.tcpMaxConnections) {
        sock.destroy();
        return;
      }
      tcpSockets.add(sock);
      sock.on('close', () => tcpSockets.delete(sock));
      // A silent client holds its slot for tcpIdleMs at most; the cap bounds how many it can hold.
      sock.setTimeout(this.limits.tcpIdleMs, () => sock.destroy());
      let buf = Buffer.alloc(0);
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) break;
          const msg = buf.subarray(2, 2 + len);
          buf = buf.subarray(2 + len);
          void this.answer(networkId, asker, msg).then((reply) => {
            if (!reply || sock.destroyed) return;
            const lenBuf = Buffer.alloc(2);
            lenBuf.writeUInt16BE(reply.length, 0);
            sock.write(Buffer.concat([lenBuf, reply]));
          });
        }
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: address, port: this.port, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      throw e;
    }
    this.listeners.set(networkId, { udp, tcp, tcpSockets });
    this.log.info({ networkId, address, port: this.port }, 'embedded DNS listening');
  }

  async close(networkId: string): Promise<void> {
    const l = this.listeners.get(networkId);
    if (!l) return;
    this.listeners.delete(networkId);
    for (const s of l.tcpSockets) s.destroy();
    await Promise.all([
      new Promise<void>((r) => l.udp.close(() => r())),
      new Promise<void>((r) => l.tcp.close(() => r())),
    ]);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.listeners.keys()].map((id) => this.close(id)));
  }

  /** The reply for one message, or undefined when none should be sent. */
  async answer(networkId: string, askerIp: string, msg: Buffer): Promise<Buffer | undefined> {
    let q: DnsQuery;
    try {
      q = parseQuery(msg);
    } catch {
      return buildFormErr(msg);
    }
    const question = q.questions[0];
    if (q.opcode !== 0 || !question || question.class !== CLASS_IN) {
      return buildResponse(q, 4 /* NOTIMP */);
    }
    const ips = this.resolver.lookup(networkId, askerIp, question.name);
    if (ips !== undefined) {
      if (question.type === TYPE_A) {
        return buildResponse(q, RCODE_NOERROR, ips.map((address) => ({ address, ttl: TTL })));
      }
      // A name of ours asked for another type (AAAA, MX...): NODATA.
      return buildResponse(q, RCODE_NOERROR);
    }
    if (!this.resolver.mayForward(networkId, askerIp)) return buildResponse(q, RCODE_SERVFAIL);
    const reply = await this.forward(msg);
    return reply ?? buildResponse(q, RCODE_SERVFAIL);
  }

  /** Sends the query unchanged to each upstream in turn until one answers. */
  private async forward(msg: Buffer): Promise<Buffer | undefined> {
    for (const up of this.upstreams()) {
      const reply = await new Promise<Buffer | undefined>((resolve) => {
        const sock = createSocket(up.host.includes(':') ? 'udp6' : 'udp4');
        const done = (b: Buffer | undefined): void => {
          clearTimeout(timer);
          sock.close();
          resolve(b);
        };
        const timer = setTimeout(() => done(undefined), FORWARD_TIMEOUT_MS);
        sock.on('error', () => done(undefined));
        sock.on('message', (b) => {
          if (b.length >= 2 && b.readUInt16BE(0) === msg.readUInt16BE(0)) done(b);
        });
        sock.send(msg, up.port, up.host);
      });
      if (reply) return reply;
      this.log.debug({ upstream: up }, 'dns upstream did not answer');
    }
    return undefined;
  }
}
