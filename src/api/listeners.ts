import { existsSync, lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { dirname } from 'node:path';
import { BerthError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { parseHost, type HostAddress } from '../util/host-address.js';
import { listenUnixSocket } from './unix-listen.js';
import { packageRequire } from '../package-root.js';

/** A socket systemd passed (LISTEN_FDS), with its FileDescriptorName. */
export interface SystemdFd {
  fd: number;
  name: string;
}

export interface ListenOptions {
  /** TCP listeners (and TCP sockets from systemd) speak TLS with these; client certificates required if verifyClients. */
  tls?: { key: Buffer; cert: Buffer; ca?: Buffer; verifyClients: boolean };
  /** Plain or unauthenticated TCP was asked for explicitly (--tls=false / --tlsverify=false). */
  insecureTcp?: boolean;
  /** The sockets systemd handed over, for fd:// hosts. */
  systemdFds?: readonly SystemdFd[];
  /** Also expose the first unix socket at this path as a symlink. */
  socketLink?: string;
}

export interface OpenedListeners {
  servers: Server[];
  /** Removes what listening left on disk (the socket link). */
  release(): void;
}

/**
 * Reads and clears systemd's socket activation variables ($LISTEN_PID must be ours), so that no child
 * process believes the sockets are meant for it.
 */
export function takeSystemdFds(env: NodeJS.ProcessEnv = process.env): SystemdFd[] {
  const pid = env.LISTEN_PID;
  const count = Number(env.LISTEN_FDS ?? 0);
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid !== String(process.pid) || !(count > 0)) return [];
  return Array.from({ length: count }, (_, i) => ({ fd: 3 + i, name: names[i] || 'unknown' }));
}

/**
 * Checks the -H addresses against what is available before anything is started: fd:// needs sockets from
 * systemd, TCP needs TLS client authentication unless plain TCP was forced.
 */
export function checkHosts(hosts: readonly string[], options: ListenOptions): void {
  for (const spec of hosts) {
    const addr = parseHost(spec, options.tls !== undefined);
    if (addr.kind === 'fd') selectFds(addr.select, options.systemdFds ?? []);
    if (addr.kind === 'tcp' && options.tls?.verifyClients !== true && !options.insecureTcp) {
      throw new BerthError(`refusing to serve the API on ${spec} without TLS client authentication: use --tlsverify, or --tls=false to accept the risk`);
    }
  }
}

/** Opens every -H address; on a failure the ones already opened are closed again. */
export async function openListeners(
  hosts: readonly string[],
  options: ListenOptions,
  accept: (socket: Socket) => void,
  log: Logger,
): Promise<OpenedListeners> {
  const servers: Server[] = [];
  const unixPaths: string[] = [];
  let tlsServer: TlsServer | undefined;
  // One TLS front (not listening itself) for the TCP sockets systemd passes.
  const tlsFront = (): TlsServer => {
    if (!options.tls) throw new BerthError('TLS is not configured');
    tlsServer ??= makeTlsServer(options.tls, accept, log);
    return tlsServer;
  };
  const refuseInsecure = (where: string): void => {
    const authenticated = options.tls?.verifyClients === true;
    if (authenticated) return;
    if (!options.insecureTcp) {
      throw new BerthError(
        `refusing to serve the API on ${where} without TLS client authentication: use --tlsverify with --tlscacert, --tlscert and --tlskey, or pass --tls=false to accept the risk`,
      );
    }
    log.warn({ host: where }, 'SERVING THE API ON TCP WITHOUT TLS CLIENT AUTHENTICATION: anyone who can reach this port has root access to this machine');
    log.warn({ host: where }, 'Binding to an IP address, even on localhost, can also give access to scripts run in a browser. Use --tlsverify.');
  };

  try {
    for (const spec of hosts) {
      const addr: HostAddress = parseHost(spec, options.tls !== undefined);
      if (addr.kind === 'unix') {
        servers.push(await listenUnix(addr.path, accept));
        unixPaths.push(addr.path);
        log.info({ path: addr.path }, 'API listening');
      } else if (addr.kind === 'tcp') {
        const where = `tcp://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`;
        refuseInsecure(where);
        const server = options.tls ? makeTlsServer(options.tls, accept, log) : plainTcpServer(accept);
        await listenOn(server, { host: addr.host, port: addr.port });
        servers.push(server);
        log.info({ host: where, tls: options.tls !== undefined, verifyClients: options.tls?.verifyClients ?? false }, 'API listening');
      } else {
        const fds = selectFds(addr.select, options.systemdFds ?? []);
        for (const { fd, name } of fds) {
          const server = createServer({ allowHalfOpen: true, pauseOnConnect: false });
          await listenOn(server, { fd });
          const where = server.address();
          if (typeof where === 'string' || where === null) {
            server.on('connection', accept);
            if (typeof where === 'string') unixPaths.push(where);
            log.info({ fd, name, path: where }, 'API listening on a socket from systemd');
          } else {
            refuseInsecure(`fd://${fd} (${where.address}:${where.port})`);
            const front = options.tls ? tlsFront() : undefined;
            server.on('connection', (s: Socket) => (front ? front.emit('connection', s) : accept(s)));
            log.info({ fd, name, host: `${where.address}:${where.port}`, tls: options.tls !== undefined }, 'API listening on a socket from systemd');
          }
          servers.push(server);
        }
      }
    }
  } catch (e) {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    throw e;
  }

  let linked: { link: string; target: string } | undefined;
  const first = unixPaths[0];
  if (options.socketLink && first !== undefined) linked = makeSocketLink(options.socketLink, first, log);
  return {
    servers,
    release() {
      if (!linked) return;
      try {
        if (readlinkSync(linked.link) === linked.target) unlinkSync(linked.link);
      } catch {
        // Gone or replaced meanwhile: not ours to remove.
      }
    },
  };
}

function selectFds(select: number | string, fds: readonly SystemdFd[]): readonly SystemdFd[] {
  if (fds.length === 0) {
    throw new BerthError('no sockets found via socket activation: fd:// needs berthd to be started by systemd (berth.socket)');
  }
  if (select === 'all') return fds;
  const found = fds.filter((f) => (typeof select === 'number' ? f.fd === select : f.name === select));
  if (found.length === 0) {
    throw new BerthError(`no socket ${typeof select === 'number' ? `with fd ${select}` : `named ${select}`} among the ${fds.length} passed by systemd`);
  }
  return found;
}

function listenOn(server: Server, where: { fd: number } | { host: string; port: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function plainTcpServer(accept: (socket: Socket) => void): Server {
  return createServer({ allowHalfOpen: true }, accept);
}

/**
 * A TLS front: a client whose certificate is missing or not signed by the CA fails the handshake and never
 * reaches HTTP. Hijacked streams (attach, exec) then run over the TLSSocket, half-open like plain sockets.
 */
function makeTlsServer(tls: NonNullable<ListenOptions['tls']>, accept: (socket: Socket) => void, log: Logger): TlsServer {
  // node:tls is loaded here, by the daemons that serve TLS: imported from ESM it would build its root certificate
  // list at every start (~0.5 MB of heap).
  const { createServer: createTlsServer } = packageRequire('node:tls') as typeof import('node:tls');
  const server = createTlsServer({
    key: tls.key,
    cert: tls.cert,
    ...(tls.ca ? { ca: tls.ca } : {}),
    requestCert: tls.verifyClients,
    rejectUnauthorized: tls.verifyClients,
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
    allowHalfOpen: true,
  });
  server.on('secureConnection', (socket: TLSSocket) => accept(socket));
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
    log.info({ remote: socket.remoteAddress, reason: err.message }, 'TLS handshake refused');
  });
  return server;
}

async function listenUnix(path: string, accept: (socket: Socket) => void): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  await removeStaleSocket(path);
  const server = createServer({ allowHalfOpen: true }, accept);
  const gid = await dockerGroupId();
  await listenUnixSocket(server, path, { uid: 0, gid: gid ?? 0 }, 0o660);
  return server;
}

/** A symlink for tools that hard-code a socket path; never replaces anything but a symlink. */
function makeSocketLink(link: string, target: string, log: Logger): { link: string; target: string } | undefined {
  try {
    const st = lstatSync(link, { throwIfNoEntry: false });
    if (st && !st.isSymbolicLink()) {
      log.warn({ link, target }, 'socket link not made: the path exists and is not a symlink (another daemon\'s socket?)');
      return undefined;
    }
    if (st) unlinkSync(link);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(target, link);
    log.info({ link, target }, 'socket link made');
    return { link, target };
  } catch (e) {
    log.warn({ err: e, link, target }, 'socket link not made');
    return undefined;
  }
}

/** A socket file left by a crash is removed; one that still answers belongs to a live daemon. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new BerthError(`${path} is in use by another daemon`);
  unlinkSync(path);
}

async function dockerGroupId(): Promise<number | undefined> {
  try {
    const text = await readFile('/etc/group', 'utf8');
    for (const line of text.split('\n')) {
      const [name, , gid] = line.split(':');
      if (name === 'docker' && gid !== undefined) return Number(gid);
    }
  } catch {
    // No /etc/group: the socket stays root's.
  }
  return undefined;
}
