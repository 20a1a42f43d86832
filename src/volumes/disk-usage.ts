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

/** What imagesDiskUsageProvider needs from the image and container services. */
export interface ImageUsageSources {
  /** ImageSummary objects of every image (`Id` and `Size` set). */
  list: () => Record<string, unknown>[];
  /** The image's layers (each with a stable key and its size), base first. */
  layersOf: (imageId: string) => { key: string; size: number }[];
  /** How many containers (running or not) use the image. */
  containersUsing: (imageId: string) => number;
}

/**
 * dockerd's image disk usage: each image with SharedSize (bytes in layers another image also uses)
 * and Containers (how many containers use it); LayersSize counts every layer once.
 */
export function imagesDiskUsageProvider(src: ImageUsageSources): () => ImagesDiskUsage {
  return () => {
    const images = src.list();
    const layerUsers = new Map<string, { size: number; users: number }>();
    const layersById = new Map<string, { key: string; size: number }[]>();
    for (const img of images) {
      const id = String(img.Id);
      const layers = src.layersOf(id);
      layersById.set(id, layers);
      for (const l of new Map(layers.map((x) => [x.key, x])).values()) {
        const u = layerUsers.get(l.key) ?? { size: l.size, users: 0 };
        u.users++;
        layerUsers.set(l.key, u);
      }
    }
    let layersSize = 0;
    for (const u of layerUsers.values()) layersSize += u.size;
    const out = images.map((img) => {
      const id = String(img.Id);
      let shared = 0;
      for (const l of layersById.get(id) ?? []) if ((layerUsers.get(l.key)?.users ?? 0) > 1) shared += l.size;
      return { ...img, SharedSize: shared, Containers: src.containersUsing(id) };
    });
    return { layersSize, images: out };
  };
}
