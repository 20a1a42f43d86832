import type { IncomingMessage } from 'node:http';
import type { Server, Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../util/logger.js';
import { checkApiVersion, stripVersionPrefix } from './api-version.js';
import { installErrorHandling, STANDARD_HEADERS } from './responses.js';
import { installBodyParsers } from './body-parsers.js';
import { registerRoutes } from './routes/index.js';
import { HijackRouter } from './hijack.js';
import { registerHijackRoutes } from './attach-stream.js';
import { installRequestSchemas, requestCompilers } from './schema-validation.js';
import { RequestSchemas } from './request-schemas.js';
import { type ApiTimeouts, DEFAULT_API_TIMEOUTS, guardRequestBody, httpServerTimeoutOptions } from './timeouts.js';
import type { Services } from './services.js';
import { openListeners, type ListenOptions } from './listeners.js';
import { installPingFastPath } from './ping-fast-path.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API version the client asked for in the path, if any. */
    apiVersion: string | undefined;
  }
  interface FastifyInstance {
    /** Aborted when the daemon shuts down: long-lived streams (events, logs -f) end on it. */
    shutdownSignal: AbortSignal;
  }
  interface FastifyContextConfig {
    /** The handler reads request.raw itself (tar uploads); no parser touches the body. */
    rawBody?: boolean;
  }
}

/** A request whose path began with `/vX.Y`: the version, split off before routing. */
interface VersionedMessage extends IncomingMessage {
  apiVersion?: string;
}

export interface ApiServer {
  app: FastifyInstance;
  listen(hosts: readonly string[], options?: ListenOptions): Promise<void>;
  close(graceMs: number): Promise<void>;
}

export async function createApiServer(services: Services, log: Logger, timeouts: ApiTimeouts = DEFAULT_API_TIMEOUTS): Promise<ApiServer> {
  const schemas = new RequestSchemas();
  const app: FastifyInstance = Fastify({
    schemaController: { compilersFactory: requestCompilers(schemas) },
    loggerInstance: log.child({ sub: 'api' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    bodyLimit: 64 * 1024 * 1024,
    // Uploads (load, build, cp) and streams (logs -f, events) may run for hours: Node's whole-request timeout
    // and idle timeout stay off; headers are timed by Node, bodies by guardRequestBody (slowloris).
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 30_000,
    forceCloseConnections: false,
    // docker-modem repeats every option in the query string (Labels, Env, HostConfig as JSON): Node's 16 KiB
    // header limit answers 431 where dockerd (Go's 1 MiB default) accepts the request.
    http: { maxHeaderSize: 1024 * 1024, ...httpServerTimeoutOptions(timeouts) },
    // dockerd's versioned mount: `/v1.NN/…` is routed as `/…`, its version kept for the onRequest hook. Mounting
    // the routes twice (with a version parameter) doubled the router and the routes' contexts (~0.6 MB of heap).
    rewriteUrl: (req: VersionedMessage) => {
      const { url, version } = stripVersionPrefix(req.url ?? '/');
      if (version !== undefined) req.apiVersion = version;
      return url;
    },
  });

  const shutdown = new AbortController();
  app.decorate('shutdownSignal', shutdown.signal);
  const hijack = new HijackRouter(log.child({ sub: 'api' }), timeouts);
  hijack.install(app);
  registerHijackRoutes(hijack, services, log.child({ sub: 'api' }));
  app.decorateRequest('apiVersion', undefined);
  // Requests in flight per connection, so shutdown can close idle keep-alive connections at once.
  const active = new Map<Socket, number>();
  // The hooks run on every request (a /_ping on a kept-alive connection is little else): callback-style, not
  // async, so none costs a promise, and nothing is allocated that the common request does not need.
  app.addHook('onRequest', (request, reply, done) => {
    // The versioned mount's prefix (rewriteUrl); unversioned requests speak the maximum version. dockerd checks
    // the version of routed requests only: an unknown path is a 404 whatever its prefix.
    const version = request.is404 ? undefined : (request.raw as VersionedMessage).apiVersion;
    request.apiVersion = version;
    const socket = request.raw.socket;
    active.set(socket, (active.get(socket) ?? 0) + 1);
    reply.raw.once('close', () => active.set(socket, (active.get(socket) ?? 1) - 1));
    void reply.headers(STANDARD_HEADERS);
    guardRequestBody(request.raw, request.routeOptions.config.rawBody === true, timeouts, log);
    try {
      checkApiVersion(version);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  });
  // Docker clients compare Content-Type to "application/json" exactly, and dockerd ends JSON with a newline.
  app.addHook('onSend', (_request, reply, payload, done) => {
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith('application/json')) {
      reply.header('content-type', 'application/json');
      if (typeof payload === 'string') {
        done(null, `${payload}\n`);
        return;
      }
    }
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    if (log.isLevelEnabled('debug')) {
      log.debug({ reqId: request.id, method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    }
    done();
  });

  installErrorHandling(app, log);
  installBodyParsers(app);
  installRequestSchemas(app, schemas);
  await registerRoutes(app, services);
  await app.ready();
  installPingFastPath(app.server, STANDARD_HEADERS, () => log.isLevelEnabled('debug'));
  // Connections reach the Fastify server from our own unix listeners, so Node's http server never emits
  // 'listening' itself, and that is what starts its timer for headersTimeout: start it here.
  app.server.emit('listening');

  const listeners: Server[] = [];
  const sockets = new Set<Socket>();
  const releases: (() => void)[] = [];

  /** Hands an accepted connection (plain or TLS) to the HTTP server, tracking it for shutdown. */
  function accept(socket: Socket): void {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      active.delete(socket);
    });
    app.server.emit('connection', socket);
  }

  return {
    app,
    async listen(hosts, options = {}) {
      const opened = await openListeners(hosts, options, accept, log.child({ sub: 'api' }));
      listeners.push(...opened.servers);
      releases.push(() => opened.release());
    },
    async close(graceMs) {
      // net.Server.close() resolves only once every connection has ended: start it, then end the connections.
      const closed = listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve())));
      shutdown.abort();
      const deadline = Date.now() + graceMs;
      for (;;) {
        for (const s of sockets) if (!active.get(s)) s.destroy();
        if (sockets.size === 0 || Date.now() >= deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const s of sockets) s.destroy();
      await Promise.all(closed);
      for (const release of releases) release();
      await app.close();
    },
  };
}
