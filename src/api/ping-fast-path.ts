import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { checkApiVersion, stripVersionPrefix } from './api-version.js';

/** The headers of a /_ping answer besides the ones every response has (dockerd's set). */
export const PING_HEADERS = {
  'cache-control': 'no-cache, no-store, must-revalidate',
  pragma: 'no-cache',
  // The classic builder only (POST /build?version=1); no BuildKit session.
  'builder-version': '1',
  swarm: 'inactive',
};

/**
 * Answers GET and HEAD /_ping (with or without a /vX.Y prefix) before Fastify sees the request: clients ping
 * before every command and health checks ping in loops, and routing, hooks and the reply object cost more than
 * the answer. The headers are exactly the routed answer's (`standard`, then PING_HEADERS); anything unusual — a
 * query string, a body, a version outside the served range, debug request logging — goes the routed way, so
 * errors and logs stay the same.
 */
export function installPingFastPath(server: Server, standard: Record<string, string>, routedOnly: () => boolean): void {
  const handlers = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  const routed = handlers[0];
  if (handlers.length !== 1 || !routed) return;
  const head = { ...standard, ...PING_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'content-length': '0' };
  const get = { ...head, 'content-length': '2' };
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    if (!url.endsWith('/_ping') || (req.method !== 'GET' && req.method !== 'HEAD') || routedOnly()) return routed(req, res);
    if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0') return routed(req, res);
    const { url: path, version } = stripVersionPrefix(url);
    if (path !== '/_ping') return routed(req, res);
    try {
      checkApiVersion(version);
    } catch {
      return routed(req, res);
    }
    res.writeHead(200, req.method === 'GET' ? get : head);
    res.end(req.method === 'GET' ? 'OK' : undefined);
  });
}
