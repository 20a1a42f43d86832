import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/**
 * Takes a reply over for a long-lived response (events, logs, progress): the headers,
 * including the standard ones set on every reply, go out at once so clients unblock.
 */
export function beginStream(reply: FastifyReply, contentType: string, status = 200): ServerResponse {
  reply.hijack();
  const res = reply.raw;
  const headers: Record<string, string | number | string[]> = {};
  for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = v as string | number | string[];
  headers['content-type'] = contentType;
  res.writeHead(status, headers);
  res.flushHeaders();
  return res;
}

/** Writes one JSON object of a progress/event stream, `\r\n`-terminated as dockerd does. */
export function writeJsonLine(res: ServerResponse, obj: unknown): boolean {
  return res.write(`${JSON.stringify(obj)}\r\n`);
}
