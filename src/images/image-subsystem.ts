import type { Db } from '../metadata/database.js';
import type { EventBus } from '../events/event-bus.js';
import type { Logger } from '../util/logger.js';
import { ImageRepo } from '../metadata/image-repo.js';
import { LayerRepo } from '../metadata/layer-repo.js';
import { ContentStore } from '../content/content-store.js';
import { LayerStore, type StorageDriverName } from '../snapshots/layer-store.js';
import { ImageService } from './image-service.js';
import { ImageLoader } from './image-load.js';

/** The image subsystem as the daemon wires it: image records, the loader (docker load), the layer store. */
export interface ImageSubsystem {
  service: ImageService;
  loader: ImageLoader;
  /** The layer store, for containers' root filesystems. */
  layers: LayerStore;
}

/**
 * Opens the image subsystem: builds the content store, layer store and image service over berth.db, and repairs what a crash left:
 * temp blobs, half-extracted layers, layers and blobs nothing references.
 */
export function openImageSubsystem(db: Db, dataRoot: string, driver: StorageDriverName, events: EventBus, log: Logger): ImageSubsystem {
  const content = new ContentStore(dataRoot);
  const layers = new LayerStore(dataRoot, driver, new LayerRepo(db), content, log);
  const removedTemp = content.cleanTemp();
  layers.cleanup();
  const repo = new ImageRepo(db);
  // Blobs nothing references (an image config or a layer's blob) are leftovers of an interrupted operation.
  const referenced = new Set<string>([...repo.all().map((r) => r.id), ...new LayerRepo(db).all().map((l) => l.blob_digest ?? '')]);
  let removedBlobs = 0;
  for (const d of content.list()) {
    if (!referenced.has(d)) {
      content.delete(d);
      removedBlobs++;
    }
  }
  if (removedTemp + removedBlobs > 0) log.info({ removedTemp, removedBlobs }, 'removed leftovers of interrupted image operations');
  const service = new ImageService(repo, layers, content, events, log);
  return { service, loader: new ImageLoader(service, dataRoot, log), layers };
}
