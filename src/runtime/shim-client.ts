// Client side of berth-shim's control socket. Frames both ways: 1 type byte, 4-byte big-endian
// length, payload. Requests ('S' start, 'A' attach, 'C' close stdin, 'W' resize, 'K' kill, 'Q' state, 'L' reopen log)
// get one 'r' reply each, in order ("ok[ <json>]" / "err <message>"); 'I' (stdin bytes) has no reply.
// The shim pushes 'o'/'e' output to attached connections and 'x' (the exit record JSON) to everyone. A direct
// attach passes the API client's socket with the 'A' frame: the shim writes that session's output there itself.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { BerthError } from '../errors.js';
import { nativeAddon } from '../native.js';
import type { DirectOutput } from './executor-api.js';

export interface ExitStatus {
  /** Exit code, or 128 + signal. */
  exitCode: number;
  /** The terminating signal, 0 if the process exited normally. */
  signal: number;
  /** Left for berthd to decide from the cgroup (the shim writes null). */
  oomKilled: boolean | null;
  /** RFC 3339 with nanoseconds, UTC. */
  finishedAt: string;
  pid: number;
  /** The pre-exec error (Docker-style message), if the process never ran. */
  error: string | null;
}

export type ShimState = 'created' | 'running' | 'exited';

/** Validates an exit record read from disk or the socket. */
export function parseExitStatus(text: string): ExitStatus {
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null) throw new Error('exit record is not an object');
  const o = v as Record<string, unknown>;
  const num = (k: string): number => {
    const x = o[k];
    if (typeof x !== 'number' || !Number.isInteger(x)) throw new Error(`exit record: bad ${k}`);
    return x;
  };
  const finishedAt = o['finishedAt'];
  const error = o['error'];
  const oom = o['oomKilled'];
  if (typeof finishedAt !== 'string') throw new Error('exit record: bad finishedAt');
  if (error !== null && typeof error !== 'string') throw new Error('exit record: bad error');
  if (oom !== null && typeof oom !== 'boolean') throw new Error('exit record: bad oomKilled');
  return { exitCode: num('exitCode'), signal: num('signal'), oomKilled: oom, finishedAt, pid: num('pid'), error };
}

export class ShimRequestError extends BerthError {}

interface Pending {
  resolve: (payload: string) => void;
  reject: (err: Error) => void;
}

/**
 * One connection to a shim. Events: 'output' (stream: 'stdout' | 'stderr', data: Buffer),
 * 'exit' (ExitStatus), 'close' ().
 */
export class ShimConnection extends EventEmitter {
  /** Received bytes not yet parsed into frames (usually one buffer; more while a frame is incomplete). */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly pending: Pending[] = [];
  private closed = false;
  /** Bytes still to come of an output frame that is being passed on in pieces, and its stream. */
  private outputLeft = 0;
  private outputStream: 'stdout' | 'stderr' = 'stdout';
  exitStatus: ExitStatus | undefined;

  private constructor(private readonly sock: net.Socket) {
    super();
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', () => {
      /* surfaced as close */
    });
    sock.on('close', () => this.onClose());
  }

  static connect(socketPath: string): Promise<ShimConnection> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ path: socketPath });
      const onErr = (err: Error): void => reject(err);
      sock.once('error', onErr);
      sock.once('connect', () => {
        sock.off('error', onErr);
        resolve(new ShimConnection(sock));
      });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onData(d: Buffer): void {
    if (this.outputLeft > 0) {
      // the rest of an output frame whose start was passed on already
      const n = Math.min(this.outputLeft, d.length);
      this.outputLeft -= n;
      this.emit('output', this.outputStream, n === d.length ? d : d.subarray(0, n));
      if (n === d.length || this.closed) return;
      d = d.subarray(n);
    }
    this.chunks.push(d);
    this.buffered += d.length;
    while (this.buffered >= 5) {
      let head = this.chunks[0] as Buffer;
      if (head.length < 5) head = this.merge();
      const len = head.readUInt32BE(1);
      if (this.buffered < 5 + len && (head[0] === 0x6f || head[0] === 0x65)) {
        // An output frame ('o'/'e') is passed on as it arrives, not joined: no copy, and the client gets
        // the bytes while the rest of the frame is still on its way. Every buffered byte belongs to it.
        const stream = head[0] === 0x6f ? 'stdout' : 'stderr';
        const parts = this.chunks;
        parts[0] = head.subarray(5);
        this.chunks = [];
        this.outputLeft = len - (this.buffered - 5);
        this.outputStream = stream;
        this.buffered = 0;
        for (const p of parts) {
          if (p.length > 0) this.emit('output', stream, p);
          if (this.closed) return;
        }
        return;
      }
      if (this.buffered < 5 + len) break;
      // one copy at most: only a frame split across socket reads is joined; payloads are views
      if (head.length < 5 + len) head = this.merge();
      const type = String.fromCharCode(head[0] ?? 0);
      const payload = head.subarray(5, 5 + len);
      if (head.length === 5 + len) this.chunks.shift();
      else this.chunks[0] = head.subarray(5 + len);
      this.buffered -= 5 + len;
      this.onFrame(type, payload);
      if (this.closed) return;
    }
  }

  private merge(): Buffer {
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all;
  }

  private onFrame(type: string, payload: Buffer): void {
    if (type === 'r') {
      const p = this.pending.shift();
      if (!p) return;
      const text = payload.toString('utf8');
      if (text === 'ok') p.resolve('');
      else if (text.startsWith('ok ')) p.resolve(text.slice(3));
      else p.reject(new ShimRequestError(text.startsWith('err ') ? text.slice(4) : text));
    } else if (type === 'o' || type === 'e') {
      this.emit('output', type === 'o' ? 'stdout' : 'stderr', payload);
    } else if (type === 'x') {
      try {
        this.exitStatus = parseExitStatus(payload.toString('utf8'));
        this.emit('exit', this.exitStatus);
      } catch {
        // a malformed record is ignored; callers fall back to the exit file
      }
    }
  }

  private onClose(): void {
    this.closed = true;
    for (const p of this.pending.splice(0)) p.reject(new ShimRequestError('connection to the shim closed'));
    this.emit('close');
  }

  private frame(type: string, payload: Buffer): Buffer {
    const f = Buffer.allocUnsafe(5 + payload.length);
    f.write(type, 0, 'latin1');
    f.writeUInt32BE(payload.length, 1);
    payload.copy(f, 5);
    return f;
  }

  request(type: string, payload: string | Buffer = ''): Promise<string> {
    if (this.closed) return Promise.reject(new ShimRequestError('connection to the shim closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.sock.write(this.frame(type, typeof payload === 'string' ? Buffer.from(payload) : payload));
    });
  }

  /** Sends stdin bytes; returns false when the socket buffer is full (wait for 'drain' via onDrain). */
  writeStdin(data: Buffer): boolean {
    if (this.closed) return true;
    let ok = true;
    for (let off = 0; off < data.length; off += 1 << 20) {
      ok = this.sock.write(this.frame('I', data.subarray(off, off + (1 << 20))));
    }
    return ok;
  }

  /** Stops reading from the shim (its output then waits in the shim, which stops reading the container). */
  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  onDrain(cb: () => void): void {
    this.sock.once('drain', cb);
  }

  async start(): Promise<number> {
    const r = JSON.parse(await this.request('S')) as { pid: number };
    return r.pid;
  }

  async attach(stdout: boolean, stderr: boolean): Promise<void> {
    await this.request('A', `${stdout ? 1 : 0} ${stderr ? 1 : 0}`);
  }

  /**
   * Attaches with the output going to the API client's socket `out.fd` directly (the shim gets the descriptor
   * with the request and writes Docker's stream there itself). Falls back to an ordinary attach (output as
   * 'output' events) when the descriptor cannot be passed now or the shim does not take it; true when direct.
   */
  async attachDirect(stdout: boolean, stderr: boolean, out: DirectOutput): Promise<boolean> {
    const fd = (this.sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    // Sent beside Node's write queue: only while that queue is empty do the bytes stay in order.
    if (this.closed || this.sock.writableLength > 0 || typeof fd !== 'number' || fd < 0) {
      await this.attach(stdout, stderr);
      return false;
    }
    const f = this.frame('A', Buffer.from(`${stdout ? 1 : 0} ${stderr ? 1 : 0} ${out.framed ? 1 : 2}`));
    const reply = new Promise<string>((resolve, reject) => this.pending.push({ resolve, reject }));
    let sent: number;
    try {
      sent = nativeAddon().sendWithFd(fd, f, out.fd);
    } catch {
      this.pending.pop();
      await this.attach(stdout, stderr);
      return false;
    }
    if (sent < f.length) this.sock.write(f.subarray(sent));
    try {
      return (await reply) === 'direct';
    } catch (err) {
      if (!(err instanceof ShimRequestError) || this.closed) throw err;
      await this.attach(stdout, stderr);
      return false;
    }
  }

  async closeStdin(): Promise<void> {
    await this.request('C');
  }

  async reopenLog(): Promise<void> {
    await this.request('L');
  }

  async resize(height: number, width: number): Promise<void> {
    await this.request('W', `${Math.max(0, Math.floor(height))} ${Math.max(0, Math.floor(width))}`);
  }

  async kill(signal: number, all = false): Promise<void> {
    await this.request('K', `${signal} ${all ? 1 : 0}`);
  }

  async state(): Promise<{ state: ShimState; pid: number }> {
    return JSON.parse(await this.request('Q')) as { state: ShimState; pid: number };
  }

  close(): void {
    this.sock.destroy();
  }
}
