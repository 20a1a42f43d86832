import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { PassThrough, type Duplex, type Readable, type Writable } from 'node:stream';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { ConflictError, NotFoundError, errorMessage } from '../errors.js';
import type { ContainerService } from '../containers/container-service.js';
import type { ExecService } from '../containers/exec-service.js';
import type { OutputChunk } from '../runtime/executor.js';
import type { Logger } from '../util/logger.js';
import { bool, msg, num, str, strList, type Msg } from './messages.js';
import { SpdySession, type SpdyStream } from './spdy.js';

/** What a URL handed out by Exec/Attach/PortForward stands for (one use, one minute). */
interface Pending {
  kind: 'exec' | 'attach' | 'portforward';
  req: Msg;
  expires: number;
}

/** Where a port-forward connects: the pod's address (127.0.0.1 for host-network pods). */
export type PodAddress = (sandboxId: string) => string;

const TOKEN_TTL_MS = 60_000;
const STREAM_WAIT_MS = 30_000;
const REMOTECOMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const PORTFORWARD_PROTOCOL = 'portforward.k8s.io';
const SPDY_OVER_WS_PORTFORWARD = 'SPDY/3.1+portforward.k8s.io';

/** metav1.Status as the v4 remotecommand protocol reports the end of a command on the error stream. */
function statusJson(exitCode: number | undefined, error?: string): Buffer {
  if (error !== undefined) return Buffer.from(JSON.stringify({ metadata: {}, status: 'Failure', message: error, reason: 'InternalError', code: 500 }));
  if (!exitCode) return Buffer.from(JSON.stringify({ metadata: {}, status: 'Success' }));
  return Buffer.from(
    JSON.stringify({
      metadata: {},
      status: 'Failure',
      message: `command terminated with non-zero exit code: exit status ${exitCode}`,
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
    }),
  );
}

/** The transport-independent end of a remotecommand session: where output goes, where input comes from. */
interface Channels {
  stdout?: (b: Buffer) => void;
  stderr?: (b: Buffer) => void;
  stdin?: Readable;
  resize?: (cb: (h: number, w: number) => void) => void;
  /** The terminal's size the client sends as the stream opens (undefined if none comes within a moment). */
  initialSize?: () => Promise<[number, number] | undefined>;
  status(exitCode: number | undefined, error?: string): void;
  close(): void;
}

/** A readable fed by pushes (stdin from frames). */
function inputPipe(): { stream: Readable; push(b: Buffer): void; end(): void } {
  const p = new PassThrough();
  return { stream: p, push: (b) => p.write(b), end: () => p.end() };
}

/**
 * The CRI streaming server (what the kubelet proxies `kubectl exec/attach/port-forward` to): Exec, Attach and
 * PortForward answer a one-time URL on this HTTP server; the client then upgrades it to SPDY/3.1
 * (remotecommand v4/v5.channel.k8s.io, portforward.k8s.io) or to a WebSocket (v5/v4.channel.k8s.io binary
 * channels; SPDY/3.1+portforward.k8s.io tunnelled for port-forward).
 */
export class StreamingServer {
  private readonly pending = new Map<string, Pending>();
  private readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private base = '';
  /** Every connection, upgraded ones included: an http.Server's close() waits for them all to end. */
  private readonly sockets = new Set<Duplex>();

  constructor(
    private readonly containers: ContainerService,
    private readonly execs: ExecService,
    private readonly podAddress: PodAddress,
    private readonly log: Logger,
  ) {
    this.server = createServer((req, res) => {
      // a plain request (no upgrade) cannot stream
      res.writeHead(req.url && this.peek(req.url) ? 400 : 404, { 'content-type': 'text/plain' });
      res.end('streaming requests must upgrade to SPDY/3.1 or WebSocket\n');
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('connection', (socket: Duplex) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  async listen(host = '127.0.0.1', port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const addr = this.server.address();
    if (addr && typeof addr === 'object') this.base = `http://${host}:${addr.port}`;
    this.log.info({ url: this.base }, 'CRI streaming server listening');
  }

  async close(): Promise<void> {
    this.wss.close();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Sessions still streaming end with the daemon (as dockerd's streams do): a port-forward or attach left open
    // kept close() waiting, and berthd's stop with it, until it was killed (its netns mounts left behind).
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** A one-time URL for a request (Exec, Attach, PortForward). */
  url(kind: Pending['kind'], req: Msg): string {
    const now = Date.now();
    for (const [t, p] of this.pending) if (p.expires < now) this.pending.delete(t);
    const token = randomBytes(12).toString('base64url');
    this.pending.set(token, { kind, req, expires: now + TOKEN_TTL_MS });
    return `${this.base}/${kind}/${token}`;
  }

  private peek(url: string): Pending | undefined {
    const m = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)/.exec(url);
    const p = m ? this.pending.get(m[2] as string) : undefined;
    return p && p.kind === m?.[1] && p.expires >= Date.now() ? p : undefined;
  }

  private take(url: string): Pending | undefined {
    const p = this.peek(url);
    if (p) this.pending.delete(/^\/[a-z]+\/([A-Za-z0-9_-]+)/.exec(url)?.[1] ?? '');
    return p;
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const p = this.take(req.url ?? '');
    if (!p) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (upgrade === 'websocket') {
      this.onWebSocket(req, socket, head, p);
      return;
    }
    if (!upgrade.startsWith('spdy/3.1')) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const offered = String(req.headers['x-stream-protocol-version'] ?? '')
      .split(',')
      .map((s) => s.trim());
    const protocol = p.kind === 'portforward' ? (offered.includes(PORTFORWARD_PROTOCOL) ? PORTFORWARD_PROTOCOL : undefined) : REMOTECOMMAND_PROTOCOLS.find((v) => offered.includes(v)) ?? (offered.includes('v3.channel.k8s.io') ? 'v3.channel.k8s.io' : undefined);
    if (!protocol) {
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nunsupported stream protocols: ${offered.join(', ')}\n`);
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
    const session = new SpdySession(socket);
    if (head.length > 0) socket.unshift(head);
    if (p.kind === 'portforward') this.portForwardSpdy(session, p.req);
    else this.remoteCommandSpdy(session, p);
  }

  // -------------------------------------------------------------------------------------------------------
  // remotecommand over SPDY

  private remoteCommandSpdy(session: SpdySession, p: Pending): void {
    const r = p.req;
    const tty = bool(r.tty);
    const want = { stdin: bool(r.stdin), stdout: p.kind === 'attach' ? bool(r.stdout) : bool(r.stdout), stderr: bool(r.stderr) && !tty };
    const streams = new Map<string, SpdyStream>();
    const expected = 1 + (want.stdin ? 1 : 0) + (want.stdout ? 1 : 0) + (want.stderr ? 1 : 0) + (tty ? 1 : 0);
    const timer = setTimeout(() => {
      this.log.warn({ got: [...streams.keys()] }, 'streaming client did not open its streams in time');
      session.close();
    }, STREAM_WAIT_MS);
    let started = false;
    session.on('stream', (s: SpdyStream) => {
      const type = s.headers.streamtype ?? '';
      streams.set(type, s);
      if (started || streams.size < expected || !streams.has('error')) {
        // v3+ clients may open resize only with a TTY; wait until everything expected is there
        if (!(streams.size >= expected && streams.has('error'))) return;
      }
      if (started) return;
      started = true;
      clearTimeout(timer);
      const stdin = streams.get('stdin');
      const input = stdin ? inputPipe() : undefined;
      if (stdin && input) {
        stdin.on('data', (b: Buffer) => input.push(b));
        stdin.on('end', () => input.end());
      }
      const resize = streams.get('resize');
      // the client sends the terminal's size as soon as the stream opens, before the exec has started: parsed from
      // the start, the last size kept until the exec's handler is there
      const sizes = resize ? resizeQueue() : undefined;
      if (resize && sizes) {
        let pendingText = '';
        resize.on('data', (b: Buffer) => {
          pendingText += b.toString('utf8');
          let i: number;
          while ((i = pendingText.indexOf('}')) >= 0) {
            const one = pendingText.slice(0, i + 1);
            pendingText = pendingText.slice(i + 1);
            sizes.push(one);
          }
        });
      }
      const channels: Channels = {
        ...(streams.get('stdout') ? { stdout: (b: Buffer) => streams.get('stdout')?.write(b) } : {}),
        ...(streams.get('stderr') ? { stderr: (b: Buffer) => streams.get('stderr')?.write(b) } : {}),
        ...(input ? { stdin: input.stream } : {}),
        ...(sizes ? { resize: sizes.listen, initialSize: sizes.first } : {}),
        status: (code, error) => {
          const e = streams.get('error');
          e?.write(statusJson(code, error));
          e?.end();
        },
        close: () => {
          for (const s of streams.values()) s.end();
          setImmediate(() => session.close());
        },
      };
      void this.run(p, channels);
    });
  }

  // -------------------------------------------------------------------------------------------------------
  // remotecommand and port-forward over WebSocket

  private onWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer, p: Pending): void {
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim());
    const protocol = p.kind === 'portforward' ? (offered.includes(SPDY_OVER_WS_PORTFORWARD) ? SPDY_OVER_WS_PORTFORWARD : undefined) : REMOTECOMMAND_PROTOCOLS.find((v) => offered.includes(v));
    if (!protocol) {
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nunsupported websocket protocols: ${offered.join(', ')}\n`);
      return;
    }
    // "SPDY/3.1+portforward.k8s.io" is not an RFC 6455 token ('/'), which ws refuses to parse: the
    // subprotocol is negotiated here and only answered through the response headers
    delete req.headers['sec-websocket-protocol'];
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    wss.on('headers', (headers: string[]) => headers.push(`Sec-WebSocket-Protocol: ${protocol}`));
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      if (p.kind === 'portforward') {
        // SPDY framing carried in binary messages
        const duplex = createWebSocketStream(ws);
        duplex.on('error', () => undefined);
        this.portForwardSpdy(new SpdySession(duplex), p.req);
        return;
      }
      this.remoteCommandWs(ws, protocol, p);
    });
  }

  private remoteCommandWs(ws: WebSocket, protocol: string, p: Pending): void {
    const r = p.req;
    const tty = bool(r.tty);
    const v5 = protocol === 'v5.channel.k8s.io';
    const input = bool(r.stdin) ? inputPipe() : undefined;
    const sizes = tty ? resizeQueue() : undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const b = isBinary ? data : Buffer.from(data);
      if (b.length === 0) return;
      const ch = b[0];
      const payload = b.subarray(1);
      if (ch === 0 && input) input.push(payload);
      else if (ch === 4 && sizes) sizes.push(payload.toString('utf8'));
      else if (v5 && ch === 255 && payload[0] === 0 && input) input.end();
    });
    ws.on('close', () => input?.end());
    const send = (ch: number, b: Buffer): void => {
      if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([ch]), b]));
    };
    const channels: Channels = {
      ...(bool(r.stdout) ? { stdout: (b: Buffer) => send(1, b) } : {}),
      ...(bool(r.stderr) && !tty ? { stderr: (b: Buffer) => send(2, b) } : {}),
      ...(input ? { stdin: input.stream } : {}),
      ...(sizes ? { resize: sizes.listen, initialSize: sizes.first } : {}),
      status: (code, error) => send(3, statusJson(code, error)),
      close: () => ws.close(1000),
    };
    void this.run(p, channels);
  }

  // -------------------------------------------------------------------------------------------------------
  // running exec / attach

  private async run(p: Pending, ch: Channels): Promise<void> {
    try {
      if (p.kind === 'exec') await this.runExec(p.req, ch);
      else await this.runAttach(p.req, ch);
    } catch (e) {
      this.log.debug({ err: errorMessage(e), kind: p.kind }, 'streaming session failed');
      ch.status(undefined, errorMessage(e));
    }
    ch.close();
  }

  private async pump(output: Readable, ch: Channels): Promise<void> {
    for await (const chunk of output as AsyncIterable<OutputChunk>) {
      if (chunk.stream === 'stderr' && ch.stderr) ch.stderr(chunk.data);
      else ch.stdout?.(chunk.data);
    }
  }

  private async runExec(r: Msg, ch: Channels): Promise<void> {
    const c = this.containers.get(str(r.container_id));
    const tty = bool(r.tty);
    // the process starts with the client's terminal size (a resize after the start could come after it asked)
    const size = tty ? await ch.initialSize?.() : undefined;
    const execId = this.execs.create(c.id, {
      Cmd: strList(r.cmd),
      AttachStdin: ch.stdin !== undefined,
      AttachStdout: true,
      AttachStderr: !tty,
      Tty: tty,
      ...(size ? { ConsoleSize: size } : {}),
    });
    const { handle } = await this.execs.start(execId);
    ch.resize?.((h, w) => void handle.resize(h, w).catch(() => undefined));
    if (ch.stdin && handle.stdin) {
      const stdin = handle.stdin;
      ch.stdin.on('data', (b: Buffer) => stdin.write(b));
      ch.stdin.on('end', () => stdin.end());
    }
    await this.pump(handle.output, ch);
    const st = await handle.exit;
    ch.status(st.exitCode);
  }

  private async runAttach(r: Msg, ch: Channels): Promise<void> {
    const c = this.containers.get(str(r.container_id));
    if (!c.state.Running) throw new ConflictError(`container ${c.id} is not running`);
    const { handle } = await this.containers.attach(c.id, { stdin: ch.stdin !== undefined, stdout: ch.stdout !== undefined, stderr: ch.stderr !== undefined || c.config.Tty !== true });
    const h = await handle;
    if (!h) throw new NotFoundError(`container ${c.id} is not running`);
    ch.resize?.((height, width) => void this.containers.resize(c.id, height, width).catch(() => undefined));
    if (ch.stdin && h.stdin) {
      const stdin: Writable = h.stdin;
      ch.stdin.on('data', (b: Buffer) => stdin.write(b));
      ch.stdin.on('end', () => stdin.end());
    }
    await this.pump(h.output, ch);
    const st = await h.exited;
    ch.status(st?.exitCode);
  }

  // -------------------------------------------------------------------------------------------------------
  // port-forward (portforward.k8s.io over SPDY)

  private portForwardSpdy(session: SpdySession, r: Msg): void {
    const sandboxId = str(r.pod_sandbox_id);
    const allowed = new Set((Array.isArray(r.port) ? r.port : []).map((x) => num(x)));
    const pairs = new Map<string, { data?: SpdyStream; error?: SpdyStream }>();
    session.on('stream', (s: SpdyStream) => {
      const rid = s.headers.requestid ?? '';
      const pair = pairs.get(rid) ?? {};
      if (s.headers.streamtype === 'error') pair.error = s;
      else if (s.headers.streamtype === 'data') pair.data = s;
      pairs.set(rid, pair);
      if (!pair.data || !pair.error) return;
      pairs.delete(rid);
      const { data, error } = pair;
      const port = Number(s.headers.port ?? data.headers.port ?? '0');
      if (!(port > 0 && port < 65536) || (allowed.size > 0 && !allowed.has(port))) {
        error.write(Buffer.from(`invalid port ${port}`));
        error.end();
        data.end();
        return;
      }
      let host: string;
      try {
        host = this.podAddress(sandboxId);
      } catch (e) {
        error.write(Buffer.from(errorMessage(e)));
        error.end();
        data.end();
        return;
      }
      const sock = connect({ host, port });
      sock.on('data', (b: Buffer) => data.write(b));
      sock.on('end', () => data.end());
      sock.on('error', (e) => {
        error.write(Buffer.from(`error forwarding port ${port} to pod ${sandboxId}: ${e.message}`));
        error.end();
        data.end();
      });
      sock.on('close', () => error.end());
      data.on('data', (b: Buffer) => sock.write(b));
      data.on('end', () => sock.end());
      data.on('reset', () => sock.destroy());
    });
  }
}

/**
 * A terminal-size channel: JSON sizes ({"Width","Height"}) pushed as they come, handed to the listener once there
 * is one; sizes sent before that (the initial one comes right as the stream opens) are kept, the last one replayed.
 */
const INITIAL_SIZE_WAIT_MS = 1000;

function resizeQueue(): {
  push: (json: string) => void;
  listen: (cb: (h: number, w: number) => void) => void;
  first: () => Promise<[number, number] | undefined>;
} {
  let last: [number, number] | undefined;
  let listener: ((h: number, w: number) => void) | undefined;
  let waiter: ((size: [number, number] | undefined) => void) | undefined;
  return {
    push: (json) => {
      try {
        const j = JSON.parse(json.trim()) as { Width?: number; Height?: number };
        const size: [number, number] = [Number(j.Height ?? 0), Number(j.Width ?? 0)];
        if (listener) listener(...size);
        else last = size;
        waiter?.(size);
      } catch {
        // a malformed size is ignored, as the kubelet does
      }
    },
    first: () =>
      last
        ? Promise.resolve(last)
        : new Promise((resolve) => {
            // a client with no size to send (not a terminal) sends nothing: the exec starts without one
            const timer = setTimeout(() => done(undefined), INITIAL_SIZE_WAIT_MS);
            const done = (size: [number, number] | undefined): void => {
              clearTimeout(timer);
              waiter = undefined;
              resolve(size);
            };
            waiter = done;
          }),
    listen: (cb) => {
      listener = cb;
      if (last) cb(...last);
      last = undefined;
    },
  };
}
