import type { FastifyInstance } from 'fastify';
import { NotFoundError, NotImplementedError, UnavailableError } from '../../errors.js';

// Berth is never part of a swarm: every swarm-mode endpoint answers as a dockerd that is not in one does
// (moby daemon/cluster errNoManager / errNoSwarm, both "unavailable" → 503). Clients rely on these exact answers:
// docker-py's leave_swarm(force=True) ignores a 503 but not a 404.
const NOT_MANAGER =
  'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
const NOT_IN_SWARM = 'This node is not part of a swarm';

const MANAGER_ROUTES: ReadonlyArray<readonly ['GET' | 'POST' | 'DELETE', string]> = [
  ['GET', '/swarm'],
  ['POST', '/swarm/update'],
  ['GET', '/swarm/unlockkey'],
  ['POST', '/swarm/unlock'],
  ['GET', '/nodes'],
  ['GET', '/nodes/:id'],
  ['DELETE', '/nodes/:id'],
  ['POST', '/nodes/:id/update'],
  ['GET', '/services'],
  ['POST', '/services/create'],
  ['GET', '/services/:id'],
  ['DELETE', '/services/:id'],
  ['POST', '/services/:id/update'],
  ['GET', '/services/:id/logs'],
  ['GET', '/tasks'],
  ['GET', '/tasks/:id'],
  ['GET', '/tasks/:id/logs'],
  ['GET', '/secrets'],
  ['POST', '/secrets/create'],
  ['GET', '/secrets/:id'],
  ['DELETE', '/secrets/:id'],
  ['POST', '/secrets/:id/update'],
  ['GET', '/configs'],
  ['POST', '/configs/create'],
  ['GET', '/configs/:id'],
  ['DELETE', '/configs/:id'],
  ['POST', '/configs/:id/update'],
];

export async function swarmRoutes(app: FastifyInstance): Promise<void> {
  for (const [method, url] of MANAGER_ROUTES) {
    app.route({
      method,
      url,
      handler: async () => {
        throw new UnavailableError(NOT_MANAGER);
      },
    });
  }
  app.post('/swarm/leave', async () => {
    throw new UnavailableError(NOT_IN_SWARM);
  });
  const noSwarmMode = async (): Promise<never> => {
    throw new NotImplementedError('swarm mode is not supported by Berth');
  };
  app.post('/swarm/init', noSwarmMode);
  app.post('/swarm/join', noSwarmMode);
}

/** dockerd names a plugin in its errors in familiar form with the default tag (moby plugin/v2 store). */
function familiarPluginName(name: string): string {
  const last = name.slice(name.lastIndexOf('/') + 1);
  if (/^[0-9a-f]{64}$/.test(name) || name.includes('@') || last.includes(':')) return name;
  return `${name}:latest`;
}

// No managed plugins are installed, and none can be: the list is empty and every named plugin is missing.
// Plugin names carry '/' (vieux/sshfs:latest), so the name is everything before the action suffix.
const PLUGIN_ACTIONS: Record<string, RegExp> = {
  GET: /^(.+)\/json$/,
  POST: /^(.+)\/(?:enable|disable|push|set|upgrade)$/,
  DELETE: /^(.+)$/,
};

export async function pluginRoutes(app: FastifyInstance): Promise<void> {
  app.get('/plugins', async () => []);
  const unsupported = async (): Promise<never> => {
    throw new NotImplementedError('managed plugins are not supported by Berth');
  };
  app.get('/plugins/privileges', unsupported);
  app.post('/plugins/pull', unsupported);
  app.post('/plugins/create', unsupported);
  for (const method of ['GET', 'POST', 'DELETE'] as const) {
    app.route<{ Params: { '*': string } }>({
      method,
      url: '/plugins/*',
      handler: async (request, reply) => {
        const name = PLUGIN_ACTIONS[method]?.exec(request.params['*'])?.[1];
        if (name === undefined) return reply.code(404).type('application/json').send({ message: 'page not found' });
        throw new NotFoundError(`plugin "${familiarPluginName(name)}" not found`);
      },
    });
  }
}
