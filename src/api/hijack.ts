import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { WebSocket, WebSocketServer } from 'ws';
import { checkApiVersion, effectiveVersion, stripVersionPrefix } from './api-version.js';
import { rawErrorResponse, renderError, STANDARD_HEADER_LINES } from './responses.js';
import { InvalidParameterError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import type { Query } from './query.js';
import type { ApiTimeouts } from './timeouts.js';
import { packageRequire } from '../package-root.js';

/**
 * Hijacked endpoints (attach, exec start): the client sends `Upgrade: tcp`, Node hands the raw socket
 * to the 'upgrade' listener, and we answer `101 UPGRADED` then speak raw bytes, keeping the socket
 * half-open after the client's FIN.
 */
export interface HijackRequest {
  params: string[];
  query: Query;
  apiVersion: string;
  headers: IncomingMessage['headers'];
  /** The JSON body (exec start sends one; it arrives in the upgrade head and the socket). */
  body: unknown;
}

export interface HijackConnection {
  socket: Duplex;
  /** Writes the 101 with the given media type; output may follow at once. */
  upgrade(contentType: string): void;
  /**
   * Completes a websocket handshake (RFC 6455, through the `ws` library: masked client frames only,
   * payloads capped at WEBSOCKET_MAX_PAYLOAD, close codes echoed). Call `checkWebSocketRequest` first.
   */
  acceptWebSocket(): WebSocket;
}

/** Go's x/net/websocket default (DefaultMaxPayloadBytes), which dockerd's attach/ws uses. */
export const WEBSOCKET_MAX_PAYLOAD = 32 * 1024 * 1024;

/** Refuses, as a 400 before anything is attached, a request the websocket handshake would reject. */
export function checkWebSocketRequest(req: HijackRequest): void {
  const key = req.headers['sec-websocket-key'];
  const version = req.headers['sec-websocket-version'];
  if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw new InvalidParameterError('attach/ws needs a websocket upgrade');
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) throw new InvalidParameterError('websocket: missing or invalid Sec-WebSocket-Key header');
  if (version !== '13' && version !== '8') throw new InvalidParameterError('websocket: unsupported Sec-WebSocket-Version (13 or 8)');
}

export type HijackHandler = (req: HijackRequest, conn: HijackConnection) => Promise<void>;

interface HijackRoute {
  method: string;
  pattern: RegExp;
  handler: HijackHandler;
}

export class HijackRouter {
  private readonly routes: HijackRoute[] = [];
  /** Made on the first WebSocket request: most daemons never see one, and ws stays unloaded until then. */
  private wssInstance: WebSocketServer | undefined;

  private get wss(): WebSocketServer {
    if (!this.wssInstance) {
      const ws = packageRequire('ws') as typeof import('ws');
      this.wssInstance = new ws.WebSocketServer({
        noServer: true,
        clientTracking: false,
        perMessageDeflate: false,
        maxPayload: WEBSOCKET_MAX_PAYLOAD,
        // stdin is bytes, as dockerd treats it: text frames are not held to UTF-8.
        skipUTF8Validation: true,
      });
    }
    return this.wssInstance;
  }

  constructor(
    private readonly log: Logger,
    private readonly timeouts: ApiTimeouts,
  ) {}

  /** `pattern` is matched against the unversioned path; its groups become params. */
  add(method: string, pattern: RegExp, handler: HijackHandler): void {
    this.routes.push({ method, pattern, handler });
  }

  install(app: FastifyInstance): void {
    app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.dispatch(req, socket, head);
    });
  }

  private async dispatch(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    let upgraded = false;
    socket.on('error', (e) => this.log.debug({ err: e }, 'hijacked socket error'));
    const fail = (err: unknown): void => {
      const rendered = renderError(err, this.log, { url: req.url });
      socket.end(upgraded ? undefined : rawErrorResponse(rendered));
    };
    try {
      const { url, version } = stripVersionPrefix(req.url ?? '/');
      checkApiVersion(version);
      const u = new URL(url, 'http://localhost');
      const route = this.routes.find((r) => r.method === req.method && r.pattern.test(u.pathname));
      if (!route) {
        const e = new Error('page not found');
        Object.assign(e, { statusCode: 404 });
        throw e;
      }
      const m = route.pattern.exec(u.pathname);
      const query: Query = {};
      for (const [k, v] of u.searchParams) query[k] = v;
      const body = await readBody(req, socket, head, this.timeouts.requestMs);
      await route.handler(
        { params: (m?.slice(1) ?? []).map((p) => decodeURIComponent(p)), query, apiVersion: effectiveVersion(version), headers: req.headers, body },
        {
          socket,
          acceptWebSocket: () => {
            upgraded = true;
            let accepted: WebSocket | undefined;
            // Without verifyClient the handshake completes synchronously, or is answered with a 4xx by ws.
            this.wss.handleUpgrade(req, socket, Buffer.alloc(0), (ws) => {
              accepted = ws;
            });
            if (!accepted) throw new InvalidParameterError('websocket handshake refused');
            return accepted;
          },
          upgrade(contentType) {
            upgraded = true;
            socket.write(
              `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n${STANDARD_HEADER_LINES}\r\n`,
            );
          },
        },
      );
    } catch (e) {
      fail(e);
    }
  }
}

/** The JSON body of a hijacked request (exec start: a few fields) is never larger than this. */
const MAX_HIJACK_BODY = 1024 * 1024;

/** Reads a Content-Length JSON body that may be split between the upgrade head and the socket. */
async function readBody(req: IncomingMessage, socket: Duplex, head: Buffer, timeoutMs: number): Promise<unknown> {
  const length = Number(req.headers['content-length'] ?? 0);
  if (!length) {
    if (head.length > 0) socket.unshift(head);
    return undefined;
  }
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_HIJACK_BODY) {
    throw new InvalidParameterError(`request body too large: ${req.headers['content-length']} bytes (at most ${MAX_HIJACK_BODY})`);
  }
  let buf = head;
  if (buf.length < length) {
    // A body that does not arrive in time ends the connection, as for ordinary requests.
    buf = await new Promise<Buffer>((resolve) => {
      const chunks = [head];
      let got = head.length;
      const done = (): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', done);
        socket.off('close', done);
        socket.pause();
        resolve(Buffer.concat(chunks));
      };
      const onData = (c: Buffer): void => {
        chunks.push(c);
        got += c.length;
        if (got >= length) done();
      };
      const timer = setTimeout(() => {
        socket.destroy();
        done();
      }, timeoutMs);
      socket.on('data', onData);
      socket.once('end', done);
      socket.once('close', done);
      socket.resume();
    });
  }
  if (buf.length < length) throw new InvalidParameterError('request body incomplete');
  if (buf.length > length) socket.unshift(buf.subarray(length));
  // Hand the socket on as Node's upgrade does (flowing state unset), not paused: a paused stream stays paused when
  // the handler adds its 'data' listener, and stdin that follows a separately sent body (TLS) would never be read.
  (socket as unknown as { readableFlowing: boolean | null }).readableFlowing = null;
  const text = buf.subarray(0, length).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InvalidParameterError(`invalid JSON: ${(e as Error).message}`);
  }
}
