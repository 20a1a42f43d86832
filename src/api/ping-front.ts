import type { Socket } from 'node:net';
import { checkApiVersion, stripVersionPrefix } from './api-version.js';

/**
 * What the front needs from the HTTP server it stands before: the exact response headers of a routed /_ping,
 * its keep-alive timeout (Node writes it in the Keep-Alive header and closes idle connections on it), and
 * whether requests must take the routed way (debug request logging).
 */
export interface PingFrontOptions {
  /** The headers of GET and HEAD /_ping in the order the HTTP server writes them (ping-fast-path.ts). */
  getHeaders: Record<string, string>;
  headHeaders: Record<string, string>;
  keepAliveTimeoutMs: number;
  /** Node's headersTimeout: a connection that sends nothing this long after connecting is timed out… */
  headersTimeoutMs: number;
  /** …the way the HTTP server times it out (its 'clientError' with ERR_HTTP_REQUEST_TIMEOUT: a 408 and close). */
  onHeadersTimeout: (socket: Socket) => void;
  routedOnly: () => boolean;
}

/** A request line the front answers: GET or HEAD of /_ping, perhaps under a /vX.Y prefix, over HTTP/1.1. */
const REQUEST_LINE = /^(GET|HEAD) (\/[^ ]*) HTTP\/1\.1$/;
/** A header line as llhttp takes it without question: a token, a colon, printable ASCII. */
const HEADER_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e]*$/;
/** Headers that change how the request is read or answered: such a request goes to the HTTP server. */
const SPECIAL = /^(content-length|transfer-encoding|expect|upgrade|proxy-connection|te|trailer|keep-alive|http2-settings)$/i;
/** The one Connection header the answer does not depend on (requests sends it on every request). */
const KEEP_ALIVE = /^connection:[\t ]*keep-alive[\t ]*$/i;
/** Longer heads than this go to the HTTP server (its own limits and errors apply). */
const MAX_HEAD = 8192;

/**
 * Answers the pings a connection opens with, before Node's HTTP server takes the connection: the docker CLI
 * and the SDKs ping first on every connection, health checks and clients' version negotiation ping in loops on
 * a kept-alive one, and Node's request and response objects cost several times what the answer does. The
 * bytes are those Node's server writes for the routed /_ping (the same headers in the same order, then its
 * Date, Connection and Keep-Alive), which test/integration/daemon.test.ts compares. Whatever is not a complete,
 * plain ping — another route, a body, a partial request, HTTP/1.0, an unusual header, a version outside the
 * served range, debug request logging — hands the connection to the HTTP server with every byte read so far,
 * and the front is gone from it: from then on Node parses, times out and answers as it always does.
 */
export class PingFront {
  private readonly keepAliveTimeoutMs: number;
  private readonly tail: string;
  private dateSecond = -1;
  private getResponse = Buffer.alloc(0);
  private headResponse = Buffer.alloc(0);

  constructor(private readonly opts: PingFrontOptions) {
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs;
    this.tail = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(opts.keepAliveTimeoutMs / 1000)}\r\n\r\n`;
  }

  /** Serves `socket` until its first request that is not a plain ping; then calls handOver(socket). */
  accept(socket: Socket, handOver: (socket: Socket) => void): void {
    const resume = (): void => {
      socket.setTimeout(this.keepAliveTimeoutMs);
      socket.resume();
    };
    let answered = false;
    const detach = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('error', onError);
      socket.removeListener('timeout', onTimeout);
      socket.removeListener('drain', resume);
      socket.setTimeout(0);
    };
    const release = (unread: Buffer): void => {
      detach();
      socket.pause();
      if (unread.length > 0) socket.unshift(unread);
      handOver(socket);
      // Node's server reads what was put back once the socket flows again.
      process.nextTick(() => socket.resume());
    };
    const onData = (chunk: Buffer): void => {
      let buf = chunk;
      while (buf.length > 0) {
        const end = buf.indexOf('\r\n\r\n');
        const method = end < 0 || end > MAX_HEAD ? undefined : this.pingMethod(buf.toString('latin1', 0, end));
        if (method === undefined) {
          release(buf);
          return;
        }
        socket.write(this.response(method));
        answered = true;
        buf = buf.subarray(end + 4);
      }
      // A client that pipelines pings without reading the answers is read no further until it does (as Node's
      // server pauses its parser).
      if (socket.writableNeedDrain) {
        socket.setTimeout(0);
        socket.pause();
        socket.once('drain', resume);
        return;
      }
      // Node's server closes a kept-alive connection that stays idle this long after a response.
      socket.setTimeout(this.keepAliveTimeoutMs);
    };
    const onEnd = (): void => {
      socket.end();
    };
    const onError = (): void => {
      socket.destroy();
    };
    const onTimeout = (): void => {
      if (answered) {
        socket.destroy();
        return;
      }
      detach();
      socket.on('error', onError); // the handler destroys the socket with the timeout error
      this.opts.onHeadersTimeout(socket);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('timeout', onTimeout);
    // Node times the headers of a connection's first request from the connection; a request that starts within
    // this time and is handed over gets Node's own headersTimeout from then on. After an answer, only the
    // keep-alive timeout applies, as in Node.
    socket.setTimeout(this.opts.headersTimeoutMs);
  }

  /** GET or HEAD when the request head (without its final CRLFCRLF) is a plain ping the front answers. */
  private pingMethod(head: string): 'GET' | 'HEAD' | undefined {
    if (this.opts.routedOnly()) return undefined;
    const lines = head.split('\r\n');
    const m = REQUEST_LINE.exec(lines[0] ?? '');
    if (!m) return undefined;
    const { url, version } = stripVersionPrefix(m[2] ?? '');
    if (url !== '/_ping') return undefined;
    try {
      checkApiVersion(version);
    } catch {
      return undefined;
    }
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] ?? '';
      if (!HEADER_LINE.test(line)) return undefined;
      const name = line.slice(0, line.indexOf(':'));
      if (SPECIAL.test(name) || (/^connection$/i.test(name) && !KEEP_ALIVE.test(line))) return undefined;
    }
    return m[1] === 'HEAD' ? 'HEAD' : 'GET';
  }

  /** The response bytes, rebuilt when the second changes (Node's Date header is cached per second too). */
  private response(method: 'GET' | 'HEAD'): Buffer {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== this.dateSecond) {
      this.dateSecond = second;
      const date = `Date: ${new Date(now).toUTCString()}\r\n`;
      this.getResponse = Buffer.from(`${statusAndHeaders(this.opts.getHeaders)}${date}${this.tail}OK`, 'latin1');
      this.headResponse = Buffer.from(`${statusAndHeaders(this.opts.headHeaders)}${date}${this.tail}`, 'latin1');
    }
    return method === 'GET' ? this.getResponse : this.headResponse;
  }
}

function statusAndHeaders(headers: Record<string, string>): string {
  let s = 'HTTP/1.1 200 OK\r\n';
  for (const [k, v] of Object.entries(headers)) s += `${k}: ${v}\r\n`;
  return s;
}
