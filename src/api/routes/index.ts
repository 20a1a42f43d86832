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
import { VERSIONED_PREFIX } from '../api-version.js';

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
 */
export async function apiRoutes(app: FastifyInstance, options: ApiRouteOptions): Promise<void> {
  // Only the services go on: the options also carry the mount's prefix, which the areas inherit from this plugin.
  for (const area of AREAS) await app.register(area, { services: options.services });
}

/** Mounts the API twice, as dockerd does: at `/` (the maximum version) and under `/v1.NN`. */
export async function registerRoutes(app: FastifyInstance, services: Services): Promise<void> {
  await app.register(apiRoutes, { services });
  await app.register(apiRoutes, { services, prefix: VERSIONED_PREFIX });
}
