import type { IncomingMessage } from 'node:http';
import type { Logger } from '../util/logger.js';

/**
 * How long a client may take to send a request. Only the request is timed: once it has arrived, the answer
 * may stream for as long as it lasts (logs -f, events, wait, attach, pull/push/load progress, build).
 */
export interface ApiTimeouts {
  /** From connecting (or from the end of the previous answer) to the end of the request headers. */
  headersMs: number;
  /** From the headers to the end of the body, for requests whose body is a JSON document. */
  requestMs: number;
  /** Longest silence while an upload body (load, import, cp, build context) is still arriving. */
  bodyIdleMs: number;
}

/** dockerd sets a 5 minute ReadHeaderTimeout; Node's own default (60 s) is what ordinary clients expect. */
export const DEFAULT_API_TIMEOUTS: ApiTimeouts = { headersMs: 60_000, requestMs: 60_000, bodyIdleMs: 300_000 };

/** Node options that time out the headers: expiry is checked every `connectionsCheckingInterval`. */
export function httpServerTimeoutOptions(t: ApiTimeouts): { headersTimeout: number; connectionsCheckingInterval: number } {
  return { headersTimeout: t.headersMs, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(t.headersMs / 4))) };
}

/**
 * Arms the body timeout of one request whose body has not fully arrived yet: a deadline for JSON bodies, an
 * idle timeout for uploads (which may rightly take long, but never stall). The socket is destroyed when it
 * fires; both are disarmed once the body is in. An answer sent early does not disarm them: Node still reads
 * (drains) the rest of the body before the connection can serve another request.
 */
export function guardRequestBody(req: IncomingMessage, upload: boolean, t: ApiTimeouts, log: Logger): void {
  if (req.complete) return;
  // No body at all (a GET, a bodyless POST): nothing to time. Node has not yet marked such a request complete
  // when the route starts, so without this every request would arm a timer and listeners.
  const h = req.headers;
  if (h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0')) return;
  const socket = req.socket;
  const expire = (why: string): void => {
    if (req.complete || socket.destroyed) return;
    log.info({ method: req.method, url: req.url, why }, 'request body timed out: closing the connection');
    socket.destroy();
  };
  if (upload) {
    const onTimeout = (): void => expire(`no data for ${t.bodyIdleMs} ms`);
    socket.setTimeout(t.bodyIdleMs);
    socket.on('timeout', onTimeout);
    const disarm = (): void => {
      req.off('end', disarm);
      socket.off('close', disarm);
      socket.off('timeout', onTimeout);
      // Leave a timeout Node set since (keep-alive after the answer) alone.
      if (socket.timeout === t.bodyIdleMs) socket.setTimeout(0);
    };
    req.once('end', disarm);
    socket.once('close', disarm);
  } else {
    const timer = setTimeout(() => expire(`body not complete after ${t.requestMs} ms`), t.requestMs);
    // Both listeners go when either fires: a kept-alive socket serves many requests and must not collect them.
    const disarm = (): void => {
      clearTimeout(timer);
      req.off('end', disarm);
      socket.off('close', disarm);
    };
    req.once('end', disarm);
    socket.once('close', disarm);
  }
}
