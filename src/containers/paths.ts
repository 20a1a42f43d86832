// Where a container's things live: its directory under the data root (the OCI bundle: config.json, the overlay
// upper/work dirs, the init layer, the rootfs mount point, shim files and logs) and its cgroup. Every module that
// needs one of these paths asks here.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DeepReadonly, HostConfig } from './types.js';

/** The parent of every container cgroup without a CgroupParent. */
export const CGROUP_ROOT = '/berth';

/** The container's directory, which is also its OCI bundle. */
export function containerDir(dataRoot: string, id: string): string {
  return join(dataRoot, 'containers', id);
}

/**
 * The init layer shared by the containers: Docker's mount-point placeholders (/dev/console, /etc/hosts, /proc…) so
 * that the bind targets exist without showing up in `docker diff` or a commit. Identical for every container and
 * only ever an overlay lower dir (read-only), so one copy serves all of them (dockerd makes one per container).
 */
export function sharedInitLayer(dataRoot: string): string {
  return join(dataRoot, 'init-layer');
}

/** A container's init layer: the shared one, or the container's own `init` dir when an earlier berthd made one. */
export function initLayerOf(dataRoot: string, id: string): string {
  const own = join(containerDir(dataRoot, id), 'init');
  return existsSync(own) ? own : sharedInitLayer(dataRoot);
}

/** The named directories and files inside a container's directory. */
export function containerPaths(dataRoot: string, id: string): {
  dir: string;
  upper: string;
  work: string;
  init: string;
  rootfs: string;
  config: string;
} {
  const dir = containerDir(dataRoot, id);
  return {
    dir,
    upper: join(dir, 'upper'),
    work: join(dir, 'work'),
    init: initLayerOf(dataRoot, id),
    rootfs: join(dir, 'rootfs'),
    config: join(dir, 'config.json'),
  };
}

/** The container's cgroup: <CgroupParent>/<id> when a parent is set (kubelet pods, --cgroup-parent), else /berth/<id>. */
export function cgroupPathOf(c: { readonly id: string; readonly hostConfig: DeepReadonly<HostConfig> }): string {
  const parent = typeof c.hostConfig.CgroupParent === 'string' ? c.hostConfig.CgroupParent.replace(/\/+$/, '') : '';
  if (parent === '') return `${CGROUP_ROOT}/${c.id}`;
  return `${parent.startsWith('/') ? '' : '/'}${parent}/${c.id}`;
}
