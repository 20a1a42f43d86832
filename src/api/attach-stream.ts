import { Socket } from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';
import { type Query, qBool, qString } from './query.js';
import { frame, StreamType } from './stdcopy.js';
import { versionAtLeast } from './api-version.js';
import { InvalidParameterError, errorMessage } from '../errors.js';
import type { AttachHandle, DirectOutput, OutputChunk } from '../runtime/executor.js';
import type { ContainerService } from '../containers/container-service.js';
import type { ExecService } from '../containers/exec-service.js';
import type { Logger } from '../util/logger.js';
import { checkWebSocketRequest, type HijackConnection, type HijackRouter } from './hijack.js';
import { packageRequire } from '../package-root.js';

/**
 * Attach and exec streams: process output to the client (stdcopy frames or raw), client input to the process
 * (with the detach keys), for every transport: a hijacked socket (`Upgrade: tcp`), a websocket, or a plain
 * streamed response. The routes (routes/containers.ts) and the hijack router only open the transport.
 */

export interface AttachDeps {
  containers: ContainerService;
  execs: ExecService;
}

/** The media type of an attach/logs stream: raw for TTY, multiplexed (stdcopy frames) otherwise. */
export function streamMediaType(tty: boolean, apiVersion: string): string {
  return !tty && versionAtLeast(apiVersion, '1.42') ? 'application/vnd.docker.multiplexed-stream' : 'application/vnd.docker.raw-stream';
}

/** Where attach output goes: a hijacked socket or a plain chunked response. */
export interface Sink {
  write(b: Buffer): boolean;
  end(): void;
  once(ev: 'drain' | 'close', cb: () => void): unknown;
  destroyed: boolean;
  /** Present on sockets and responses: writes between cork() and uncork() leave in one writev. */
  cork?(): void;
  uncork?(): void;
  writableNeedDrain?: boolean;
}

async function writeTo(sink: Sink, b: Buffer): Promise<void> {
  if (sink.destroyed) return;
  if (!sink.write(b)) await waitDrain(sink);
}

/** Resolves on 'drain', or when the sink closes (a closed sink never drains). */
function waitDrain(sink: Sink): Promise<void> {
  if (sink.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const em = sink as unknown as NodeJS.EventEmitter;
    const done = (): void => {
      em.off('drain', done);
      em.off('close', done);
      resolve();
    };
    em.on('drain', done);
    em.on('close', done);
  });
}

/** The 8-byte stdcopy header for a payload (written next to the payload, not copied into one buffer). */
function frameHeader(stream: 'stdout' | 'stderr', length: number): Buffer {
  const h = Buffer.allocUnsafe(8);
  h.writeUInt32BE(stream === 'stderr' ? StreamType.Stderr << 24 : StreamType.Stdout << 24, 0);
  h.writeUInt32BE(length, 4);
  return h;
}

/**
 * Gathers many small writes (log entries) into one socket write: flushed at 64 KiB, and whenever the
 * event loop gets to run its check phase (the producer is waiting for I/O), so a follower still sees
 * each entry as soon as it is read. add() returns a promise only while the sink is full.
 *
 * With `merge`, consecutive entries of one stream share one stdcopy frame (up to the slab's size) instead of a
 * frame each: a client writes each frame's payload out with one write, so 100k log lines cost the docker CLI
 * ~10 writes instead of 100k (`docker logs` of 100k lines: most of its time). The bytes a client demultiplexes
 * are the same; only where frames begin differs, which is why followers (testcontainers matches each frame of
 * `logs -f` against a line pattern) keep dockerd's frame per entry.
 */
export class BatchWriter {
  private static readonly SIZE = 64 * 1024;
  private slab = Buffer.allocUnsafe(BatchWriter.SIZE);
  private used = 0;
  private scheduled = false;
  private closed = false;
  /** Where the open frame's header is in the slab (merge mode), -1 when none is open. */
  private frameAt = -1;
  private frameStream: 'stdout' | 'stderr' | undefined;

  constructor(
    private readonly sink: Sink,
    private readonly merge = false,
  ) {}

  /** Appends one entry: the stdcopy header unless `stream` is undefined (TTY), an optional prefix, the payload. */
  add(stream: 'stdout' | 'stderr' | undefined, data: Buffer, prefix?: Buffer): Promise<void> | undefined {
    const plen = prefix?.length ?? 0;
    const need = (stream ? 8 : 0) + plen + data.length;
    if (this.used + need > BatchWriter.SIZE) this.flush();
    if (need > BatchWriter.SIZE) {
      // a big entry goes out as it is
      if (stream) this.sink.write(frameHeader(stream, plen + data.length));
      if (prefix) this.sink.write(prefix);
      this.sink.write(data);
    } else {
      if (stream) {
        if (this.frameAt >= 0 && stream === this.frameStream) {
          // the open frame (in this slab: a flush closes it) grows by this entry
          this.slab.writeUInt32BE(this.slab.readUInt32BE(this.frameAt + 4) + plen + data.length, this.frameAt + 4);
        } else {
          this.slab.writeUInt32BE(stream === 'stderr' ? StreamType.Stderr << 24 : StreamType.Stdout << 24, this.used);
          this.slab.writeUInt32BE(plen + data.length, this.used + 4);
          if (this.merge) {
            this.frameAt = this.used;
            this.frameStream = stream;
          }
          this.used += 8;
        }
      }
      if (prefix) this.used += prefix.copy(this.slab, this.used);
      this.used += data.copy(this.slab, this.used);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    }
    return this.sink.writableNeedDrain && !this.sink.destroyed ? waitDrain(this.sink) : undefined;
  }

  flush(): void {
    if (this.used === 0 || this.closed || this.sink.destroyed) return;
    this.sink.write(this.slab.subarray(0, this.used));
    this.slab = Buffer.allocUnsafe(BatchWriter.SIZE);
    this.used = 0;
    this.frameAt = -1;
  }

  /** Writes what is left; nothing is written afterwards (the caller ends the sink). */
  close(): void {
    this.flush();
    this.closed = true;
  }
}

/** Resolves when `r` has something to read or has ended, or when `stop` is aborted. */
function readable(r: Readable, stop?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      r.off('readable', done);
      r.off('end', done);
      r.off('close', done);
      r.off('error', done);
      stop?.removeEventListener('abort', done);
      resolve();
    };
    r.on('readable', done);
    r.on('end', done);
    r.on('close', done);
    r.on('error', done);
    stop?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Copies process output to the client, in stdcopy frames when `framed`; resolves when the output ends (or `stop`
 * is aborted: a detached client gets nothing more). Every chunk already waiting is written in one corked batch
 * (one writev), and reading stops while the client's socket is full, which in turn pauses the shim.
 */
export async function pumpOutput(output: Readable, sink: Sink, framed: boolean, stop?: AbortSignal): Promise<void> {
  for (;;) {
    if (sink.destroyed || stop?.aborted) break;
    let chunk = output.read() as OutputChunk | null;
    if (chunk === null) {
      if (output.readableEnded || output.destroyed) break;
      await readable(output, stop);
      continue;
    }
    let ok = true;
    sink.cork?.();
    try {
      while (chunk !== null) {
        if (framed) sink.write(frameHeader(chunk.stream, chunk.data.length));
        ok = sink.write(chunk.data);
        if (!ok || stop?.aborted) break;
        chunk = output.read() as OutputChunk | null;
      }
    } finally {
      sink.uncork?.();
    }
    if (!ok) await waitDrain(sink);
  }
}

/** Ctrl-P Ctrl-Q by default; `detachKeys=ctrl-a,x` style otherwise (dockerd's term.ToBytes). */
export function parseDetachKeys(spec: string | undefined): Buffer {
  if (spec === undefined || spec === '') return Buffer.from([0x10, 0x11]);
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const p = part.trim().toLowerCase();
    if (p.length === 1) out.push(p.charCodeAt(0));
    else if (/^ctrl-[a-z@[\\\]^_]$/.test(p)) {
      const ch = p.charCodeAt(5);
      out.push(ch >= 97 && ch <= 122 ? ch - 96 : ch === 64 ? 0 : ch - 64);
    } else throw new InvalidParameterError(`Invalid detach keys (${spec}) provided`);
  }
  return Buffer.from(out);
}

/**
 * Client stdin → the container. TTY input is scanned for the detach sequence (dockerd does this for
 * TTY only); on it, `onDetach` runs and nothing more is forwarded. EOF from the client closes stdin.
 */
function pumpInput(input: Duplex | Readable, stdin: Writable, tty: boolean, keys: Buffer, onDetach: () => void): void {
  let matched = 0;
  let held: number[] = [];
  let detached = false;
  input.on('data', (buf: Buffer) => {
    if (detached) return;
    if (!tty) {
      if (!stdin.write(buf)) input.pause();
      return;
    }
    const out: number[] = [];
    for (const byte of buf) {
      if (byte === keys[matched]) {
        held.push(byte);
        matched++;
        if (matched === keys.length) {
          if (out.length > 0) stdin.write(Buffer.from(out));
          // The process keeps its stdin (dockerd closes it only for non-TTY attaches) and runs on.
          detached = true;
          onDetach();
          return;
        }
        continue;
      }
      out.push(...held, byte);
      held = [];
      matched = 0;
    }
    if (out.length > 0 && !stdin.write(Buffer.from(out))) input.pause();
  });
  stdin.on('drain', () => input.resume());
  input.on('end', () => {
    if (!detached) stdin.end();
  });
  input.on('error', () => {
    if (!detached) stdin.end();
  });
}

/**
 * The descriptor of a hijacked plain socket (unix or TCP, not TLS) once all written to it has reached the kernel:
 * a shim may then write to it beside Node. undefined otherwise.
 */
export function handOverFd(socket: Duplex): number | undefined {
  // TLSSocket is a Socket whose `encrypted` is true (checked so, node:tls is not loaded by daemons without TLS).
  if (!(socket instanceof Socket) || (socket as { encrypted?: boolean }).encrypted === true || socket.destroyed || socket.writableEnded || socket.writableLength > 0) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** What an attach transport gives serveAttach. */
export interface AttachTransport {
  sink: Sink;
  input?: Duplex | Readable;
  close: () => void;
  /** Raw output (websocket frames carry no stdcopy frames). */
  raw?: boolean;
  /** The socket's descriptor for a shim to write output to directly, when that is possible now (handOverFd). */
  handOver?: () => number | undefined;
}

/** attach for both transports: a hijacked socket, or a plain streamed response. */
export async function serveAttach(
  { containers }: AttachDeps,
  id: string,
  q: Query,
  apiVersion: string,
  open: (mediaType: string) => AttachTransport,
): Promise<void> {
  const keys = parseDetachKeys(qString(q, 'detachKeys'));
  const stream = qBool(q, 'stream');
  const logs = qBool(q, 'logs');
  let opened: AttachTransport | undefined;
  let tty = false;
  // The shim writes the live output to the client's socket itself (no relay through berthd) when the transport
  // can hand its socket over at the moment the shim attaches; never after a log replay, which berthd writes.
  const direct = (): DirectOutput | undefined => {
    const fd = !logs ? opened?.handOver?.() : undefined;
    return fd === undefined ? undefined : { fd, framed: !tty };
  };
  const want = { stdin: qBool(q, 'stdin'), stdout: qBool(q, 'stdout'), stderr: qBool(q, 'stderr'), direct };
  const { c, handle } = await containers.attach(id, want);
  opened = open(streamMediaType(c.config.Tty, apiVersion));
  const { sink, input, close } = opened;
  // Raw transports (websocket) never carry stdcopy frames.
  tty = c.config.Tty || opened.raw === true;
  if (logs) {
    // Replayed logs are ready at once; some clients (docker-py) read the 101 through a buffered reader
    // and lose bytes that arrive in the same read, so let the headers go out on their own first.
    await new Promise((r) => setTimeout(r, 10));
    const ac = new AbortController();
    const { batches } = containers.logs(c.id, { stdout: want.stdout, stderr: want.stderr, follow: false, signal: ac.signal });
    for await (const batch of batches) {
      for (const e of batch) await writeTo(sink, tty ? e.data : frame(e.stream === 'stderr' ? StreamType.Stderr : StreamType.Stdout, e.data));
    }
  }
  if (!stream) {
    close();
    return;
  }
  let h: AttachHandle | undefined;
  let detached = false;
  const clientGone = (): void => h?.close();
  sink.once('close', clientGone);
  h = await handle;
  if (!h) {
    close();
    return;
  }
  if (sink.destroyed) {
    h.close();
    return;
  }
  if (input && h.stdin) {
    pumpInput(input, h.stdin, tty, keys, () => {
      detached = true;
      h?.close();
      close();
    });
  }
  await pumpOutput(h.output, sink, !tty);
  if (!detached) close();
}

/**
 * Runs an exec and streams it; the exit code is recorded before the stream is closed. As dockerd does, the start
 * request's own `Tty` (not the exec's) decides whether output is framed: docker-py's exec_start(tty=False) on a
 * TTY exec reads stdcopy frames. Input of a TTY exec is scanned for the detach keys (the exec's DetachKeys, else
 * Ctrl-P Ctrl-Q); on them the client is let go and the process runs on.
 */
export async function serveExec(
  { execs }: AttachDeps,
  id: string,
  startTty: boolean,
  open: () => AttachTransport,
): Promise<void> {
  const rec = execs.get(id);
  const tty = rec.body.Tty === true;
  const framed = !startTty;
  const keys = parseDetachKeys(rec.body.DetachKeys);
  const opened = open();
  const { sink, input, close } = opened;
  // As for attach: the shim writes the output to the client's socket itself when the transport can hand it over.
  const direct = (): DirectOutput | undefined => {
    const fd = opened.handOver?.();
    return fd === undefined ? undefined : { fd, framed };
  };
  let started;
  try {
    started = await execs.start(id, direct);
  } catch (err) {
    const msg = Buffer.from(`${errorMessage(err)}\r\n`);
    await writeTo(sink, framed ? frame(StreamType.Stdout, msg) : msg);
    close();
    return;
  }
  const { handle } = started;
  const detach = new AbortController();
  if (input && handle.stdin) {
    pumpInput(input, handle.stdin, tty, keys, () => {
      detach.abort();
      close();
    });
  } else input?.resume();
  await pumpOutput(handle.output, sink, framed, detach.signal);
  if (detach.signal.aborted) {
    // Nobody reads any more: drain so the process never blocks on a full pipe.
    handle.output.resume();
    return;
  }
  await handle.exit.catch(() => undefined);
  close();
}

/** The hijacked forms (`Upgrade: tcp`, websocket) of attach and exec start; their plain forms are Fastify routes. */
export function registerHijackRoutes(hijack: HijackRouter, deps: AttachDeps, log: Logger): void {
  hijack.add('POST', /^\/containers\/([^/]+)\/attach$/, async (req, conn: HijackConnection) => {
    await serveAttach(deps, req.params[0] ?? '', req.query, req.apiVersion, (mediaType) => {
      conn.upgrade(mediaType);
      return { sink: conn.socket, input: conn.socket, close: () => conn.socket.end(), handOver: () => handOverFd(conn.socket) };
    });
  });

  // The websocket form: raw output in binary frames, stdin from data frames (dockerd's attach/ws).
  hijack.add('GET', /^\/containers\/([^/]+)\/attach\/ws$/, async (req, conn) => {
    checkWebSocketRequest(req);
    const q = { stream: '1', stdout: '1', stderr: '1', stdin: '1', ...req.query };
    await serveAttach(deps, req.params[0] ?? '', q, req.apiVersion, () => {
      const ws = conn.acceptWebSocket();
      // ws is loaded by the hijack router's first WebSocket handshake, before any stream is made here.
      const { createWebSocketStream } = packageRequire('ws') as typeof import('ws');
      const stream = createWebSocketStream(ws);
      // A protocol error (unmasked frame, oversized payload) is answered by ws with a close frame.
      stream.on('error', (err) => log.debug({ err: errorMessage(err) }, 'attach websocket closed on error'));
      // Once the websocket is closed nothing more can be sent: let the attach end.
      ws.once('close', () => setImmediate(() => stream.destroy()));
      return { sink: stream, input: stream, close: () => stream.end(), raw: true };
    });
  });

  hijack.add('POST', /^\/exec\/([^/]+)\/start$/, async (req, conn) => {
    const body = (req.body ?? {}) as { Tty?: boolean };
    await serveExec(deps, req.params[0] ?? '', body.Tty === true, () => {
      conn.upgrade(streamMediaType(body.Tty === true, req.apiVersion));
      return { sink: conn.socket, input: conn.socket, close: () => conn.socket.end(), handOver: () => handOverFd(conn.socket) };
    });
  });
}
