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

/** Every routes file, one per API area. */
export async function registerRoutes(app: FastifyInstance, services: Services): Promise<void> {
  systemRoutes(app, services);
  volumeRoutes(app, services);
  systemDfRoutes(app, services);
  networkRoutes(app, services);
  imageRoutes(app, services);
  containerRoutes(app, services);
  containerOpsRoutes(app, services);
  registryRoutes(app, services);
  swarmRoutes(app);
  pluginRoutes(app);
  buildRoutes(app, services);
}
