import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ImageService } from './image-service.js';
import type { ImageLoader } from './image-load.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import type { Query } from '../api/query.js';

/** What the API holds for images; pull/push are plugged in by the registry subsystem when it exists. */
export interface ImagesApi {
  service: ImageService;
  loader: ImageLoader;
  /** The layer store, for containers' root filesystems. */
  layers: LayerStore;
  /** POST /images/create?fromImage=… */
  pull?: (request: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply) => Promise<void>;
  /** POST /images/{name}/push */
  push?: (request: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply, name: string) => Promise<void>;
}
