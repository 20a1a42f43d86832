import type { ApiVolume, VolumeService } from './volume-service.js';

/** What the images service contributes to GET /system/df: ImageSummary objects and the total layer size. */
export interface ImagesDiskUsage {
  layersSize: number;
  images: unknown[];
}

/** Providers registered by the services that own images, containers and the build cache. */
export interface DiskUsageProviders {
  images?: () => Promise<ImagesDiskUsage> | ImagesDiskUsage;
  /** ContainerSummary objects with SizeRw / SizeRootFs filled in. */
  containers?: () => Promise<unknown[]> | unknown[];
  buildCache?: () => Promise<unknown[]> | unknown[];
}

export type DiskUsageObject = 'container' | 'image' | 'volume' | 'build-cache';

export interface SystemDataUsage {
  LayersSize?: number;
  Images?: unknown[];
  Containers?: unknown[];
  Volumes?: ApiVolume[];
  BuildCache?: unknown[];
  BuilderSize?: number;
}

/**
 * GET /system/df: volumes from the volume service, the other parts from providers that services
 * register when they exist (empty arrays until then).
 */
export class DiskUsageService {
  private providers: DiskUsageProviders = {};

  constructor(private readonly volumes: VolumeService) {}

  /** Adds (or replaces) providers; parts not given keep their current provider. */
  setDiskUsageProviders(p: DiskUsageProviders): void {
    this.providers = { ...this.providers, ...p };
  }

  async usage(types?: ReadonlySet<DiskUsageObject>): Promise<SystemDataUsage> {
    const want = (t: DiskUsageObject): boolean => !types || types.has(t);
    const out: SystemDataUsage = {};
    const [images, containers, volumes, buildCache] = await Promise.all([
      want('image') ? (this.providers.images?.() ?? { layersSize: 0, images: [] }) : undefined,
      want('container') ? (this.providers.containers?.() ?? []) : undefined,
      want('volume') ? this.volumes.diskUsage() : undefined,
      want('build-cache') ? (this.providers.buildCache?.() ?? []) : undefined,
    ]);
    if (images) {
      out.LayersSize = images.layersSize;
      out.Images = images.images;
    }
    if (containers) out.Containers = containers;
    if (volumes) out.Volumes = volumes;
    if (buildCache) out.BuildCache = buildCache;
    out.BuilderSize = 0;
    return out;
  }
}
