import { join } from 'node:path';
import type { ContainerService } from '../containers/container-service.js';
import type { ContainerOps } from '../containers/container-ops.js';
import type { ExecService } from '../containers/exec-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { ImageService } from '../images/image-service.js';
import type { RegistryService } from '../registry/registry-service.js';
import type { CgroupManager } from '../runtime/cgroups/index.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import { ConflictError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { CniManager } from './cni.js';
import { CriContainers } from './containers.js';
import { CriGrpcServer } from './grpc-server.js';
import { CriImageService } from './image-service.js';
import { ImageVolumes } from './image-volumes.js';
import { runtimeHandlers } from './runtime-service.js';
import { SandboxService, sandboxData } from './sandboxes.js';
import { StreamingServer } from './streaming.js';
import { CriStats } from './stats.js';
import { CriMetrics } from './metrics.js';
import { CriNri } from './nri-hooks.js';
import { sendInBatches } from './list-stream.js';
import type { Msg } from './messages.js';
import type { NriService } from '../nri/nri-service.js';

export interface CriOptions {
  /** unix:///run/berth/cri.sock */
  endpoint: string;
  dataRoot: string;
  cniConfDir: string;
  cniBinDirs: string[];
  initPath: string;
  /** The streaming server's address (default 127.0.0.1, any free port). */
  streamAddress?: string;
  streamPort?: number;
}

export interface CriDeps {
  containers: ContainerService;
  containerOps: ContainerOps;
  execs: ExecService;
  events: EventBus;
  images: ImageService;
  layers: LayerStore;
  registry: RegistryService;
  cgroups: CgroupManager;
  /** The NRI service (src/nri) when NRI is on: the CRI's lifecycle calls its hooks. */
  nri?: NriService;
  log: Logger;
}

/** The CRI front door: builds the CRI services over the daemon's own and serves them on the CRI socket. */
export async function startCri(o: CriOptions, d: CriDeps): Promise<{ close(): Promise<void> }> {
  const log = d.log.child({ sub: 'cri' });
  const cni = new CniManager({ confDir: o.cniConfDir, binDirs: o.cniBinDirs, cacheDir: join(o.dataRoot, 'cri', 'cni-results'), writeDefault: true }, log);
  const images = new CriImageService(d.images, d.layers, d.registry, join(o.dataRoot, 'layers'), log);
  const nri = new CriNri(d.nri, d.containers, log.child({ sub: 'nri' }));
  const sandboxes = new SandboxService(d.containers, d.images, cni, o.initPath, log, nri);
  const imageVolumes = new ImageVolumes(join(o.dataRoot, 'cri', 'image-volumes'), d.layers, images, log);
  const criContainers = new CriContainers(d.containers, sandboxes, images, imageVolumes, log, nri);
  nri.attach({ sandboxes: () => sandboxes.list(), criContainers: () => criContainers.list(), containerOps: d.containerOps, events: d.events });
  const stats = new CriStats(d.cgroups, o.dataRoot);
  const streaming = new StreamingServer(
    d.containers,
    d.execs,
    (sandboxId) => {
      const sb = sandboxes.get(sandboxId);
      const data = sandboxData(sb);
      if (data.namespaces.network === 'NODE') return '127.0.0.1';
      const ip = data.ips?.[0];
      if (!ip) throw new ConflictError(`pod sandbox ${sb.id} has no IP address`);
      return ip;
    },
    log,
  );
  await streaming.listen(o.streamAddress ?? '127.0.0.1', o.streamPort ?? 0);
  const server = new CriGrpcServer(
    {
      runtime: runtimeHandlers({
        containers: d.containers,
        containerOps: d.containerOps,
        execs: d.execs,
        events: d.events,
        cni,
        sandboxes,
        criContainers,
        nri,
        stats,
        metrics: new CriMetrics(d.cgroups, o.dataRoot),
        streamUrl: (kind, req) => Promise.resolve(streaming.url(kind, req)),
        log,
      }),
      image: {
        ListImages: (req) => images.listImages(req),
        StreamImages: { stream: async (req, call) => sendInBatches(call, 'images', (await images.listImages(req)).images as Msg[]) },
        ImageStatus: (req) => images.imageStatus(req),
        PullImage: (req) => images.pullImage(req),
        RemoveImage: (req) => images.removeImage(req),
        ImageFsInfo: () => images.imageFsInfo(),
      },
    },
    log,
  );
  try {
    await server.listen(o.endpoint);
  } catch (e) {
    await streaming.close();
    throw e;
  }
  return {
    close: async () => {
      await server.close();
      await streaming.close();
    },
  };
}
