import type { FastifyInstance } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { beginStream } from '../streaming.js';
import { type Query, qString } from '../query.js';
import { Filters } from '../../util/filters.js';
import { EVENT_FILTER_KEYS, eventMatches, type DockerEvent } from '../../events/event-bus.js';
import { nowNano, parseTimestampParam } from '../../util/time.js';
import { PING_HEADERS } from '../ping-fast-path.js';

export async function systemRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { system, events } = services;
  // Usually answered by the fast path (ping-fast-path.ts) before routing; these serve what it passes on.
  app.head('/_ping', async (_req, reply) => {
    void reply.headers(PING_HEADERS).type('text/plain; charset=utf-8').header('content-length', '0').send();
  });
  app.get('/_ping', async (_req, reply) => {
    void reply.headers(PING_HEADERS).type('text/plain; charset=utf-8').send('OK');
  });

  app.get('/version', async () => system.version());
  app.get('/info', async () => system.info());

  app.get<{ Querystring: Query }>('/events', async (request, reply) => {
    const q = request.query;
    const filters = Filters.parse(qString(q, 'filters'), EVENT_FILTER_KEYS);
    const sinceRaw = qString(q, 'since');
    const untilRaw = qString(q, 'until');
    const since = sinceRaw ? parseTimestampParam('since', sinceRaw) : undefined;
    const until = untilRaw ? parseTimestampParam('until', untilRaw) : undefined;

    const res = beginStream(reply, 'application/json');
    const send = (e: DockerEvent): void => {
      if (eventMatches(e, filters)) res.write(`${JSON.stringify(e)}\n`);
    };
    const unsubscribe = events.follow({ since, until }, send);

    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      app.shutdownSignal.removeEventListener('abort', finish);
      unsubscribe();
      if (timer) clearTimeout(timer);
      res.end();
    };
    request.raw.on('close', finish);
    app.shutdownSignal.addEventListener('abort', finish, { once: true });
    if (until !== undefined) {
      const waitMs = Number((until - nowNano()) / 1_000_000n);
      if (waitMs <= 0) finish();
      else timer = setTimeout(finish, waitMs);
    }
  });
}
