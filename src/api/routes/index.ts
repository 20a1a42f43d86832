import type { FastifyInstance } from 'fastify';
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

type AreaRoutes = (app: FastifyInstance, services: Services) => void;

/** Every routes file, one per API area. */
const AREAS: AreaRoutes[] = [
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
 * Each area is its own encapsulated Fastify plugin (what one registers stays in its context), sharing what the
 * root set up first: error rendering, body parsers, request schemas (onRoute), the hijack router. The API
 * version prefix (/v1.NN) is taken off before routing (rewriteUrl), so one mount serves both forms.
 */
export async function registerRoutes(app: FastifyInstance, services: Services): Promise<void> {
  for (const area of AREAS) await app.register(async (scope) => area(scope, services));
}
