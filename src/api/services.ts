import type { EventBus } from '../events/event-bus.js';
import type { SystemService } from '../system/system-service.js';
import type { VolumeService } from '../volumes/volume-service.js';
import type { DiskUsageService } from '../volumes/disk-usage.js';
import type { NetworkService } from '../network/network-service.js';
import type { ImageSubsystem } from '../images/image-subsystem.js';
import type { ContainerService } from '../containers/container-service.js';
import type { ExecService } from '../containers/exec-service.js';
import type { ContainerOps } from '../containers/container-ops.js';
import type { RegistryService } from '../registry/registry-service.js';
import type { BuildService } from '../build/builder.js';

/** What the routes may call: one service per area, wired by daemon.ts. */
export interface Services {
  system: SystemService;
  events: EventBus;
  volumes: VolumeService;
  diskUsage: DiskUsageService;
  networks: NetworkService;
  images: ImageSubsystem;
  containers: ContainerService;
  execs: ExecService;
  containerOps: ContainerOps;
  registry: RegistryService;
  build: BuildService;
}
