import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Services } from '../services.js';
import { systemRoutes } from './system.js';
import { volumeRoutes } from './volumes.js';
import { systemDfRoutes } from './system-df.js';
import { networkRoutes } from './networks.js';
import { imageRoutes } from './images.js';
import { containerRoutes } from './containers.js';
import { containerOpsRoutes } from './containers-ops.js';
import { registryRoutes } from './registry.js';
import { pluginRoutes, swarmRoutes } from './swarm.js';
import { buildRoutes } from './build.js';

/** What every routes plugin is registered with. */
export interface ApiRouteOptions {
  services: Services;
}

/** Every routes file, one Fastify plugin per API area. */
const AREAS: FastifyPluginAsync<ApiRouteOptions>[] = [
  systemRoutes,
  volumeRoutes,
  systemDfRoutes,
  networkRoutes,
  imageRoutes,
  containerRoutes,
  containerOpsRoutes,
  registryRoutes,
  swarmRoutes,
  pluginRoutes,
  buildRoutes,
];

/**
 * The whole API as one plugin: each area registered as its own encapsulated plugin (what one registers stays in
 * its context), sharing what the root set up first: error rendering, body parsers, request schemas (onRoute).
 * dockerd serves it at `/` (the maximum version) and under `/v1.NN`: the server splits the prefix off before
 * routing (createApiServer's rewriteUrl), so the routes exist once.
 */
export async function registerRoutes(app: FastifyInstance, services: Services): Promise<void> {
  for (const area of AREAS) await app.register(area, { services });
}
