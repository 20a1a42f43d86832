import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { nativeAddon, MNT_DETACH, MS_BIND, MS_RDONLY } from '../native.js';
import type { Logger } from '../util/logger.js';

const MS_REMOUNT = 32;

export interface OverlayLayers {
  /** Lower directories, top-most first. */
  lower: string[];
  upper?: string;
  work?: string;
}

const PAGE = 4096;

/** The mount data string for an overlay (index=off where the kernel has the knob, as Docker does). */
export function overlayOptions(layers: OverlayLayers): string {
  const opts: string[] = [];
  if (existsSync('/sys/module/overlay/parameters/index')) opts.push('index=off');
  opts.push(`lowerdir=${layers.lower.join(':')}`);
  if (layers.upper !== undefined) {
    if (layers.work === undefined) throw new Error('an overlay with an upper dir needs a work dir');
    opts.push(`upperdir=${layers.upper}`, `workdir=${layers.work}`);
  }
  return opts.join(',');
}

/**
 * Mounts a merged view at target (for tests, export and diff; containers mount inside their own namespace).
 * One lower and no upper is a read-only bind-like overlay; overlayfs needs two lowers without an upper, so a
 * single lower dir is bind-mounted read-only instead. Fails when the options exceed a page: use
 * LayerStore.shortLowerDirs() and chdir-relative names for very long chains. `flags` adds mount flags (MS_NOSUID,
 * MS_NODEV) to the mount.
 */
export function mountOverlay(target: string, layers: OverlayLayers, flags = 0): void {
  mkdirSync(target, { recursive: true });
  const lower = layers.lower;
  if (lower.length === 0) throw new Error('an overlay needs at least one lower directory');
  const readOnly = layers.upper === undefined;
  const native = nativeAddon();
  if (readOnly && lower.length === 1) {
    native.mount(lower[0] as string, target, '', MS_BIND, '');
    native.mount('', target, '', MS_REMOUNT | MS_BIND | MS_RDONLY | flags, '');
    return;
  }
  const data = overlayOptions(layers);
  if (data.length >= PAGE) throw new Error(`overlay mount options are ${data.length} bytes, over a page: use short lower dir names`);
  native.mount('overlay', target, 'overlay', (readOnly ? MS_RDONLY : 0) | flags, data);
}

export function unmount(target: string): void {
  nativeAddon().umount2(target, MNT_DETACH);
}

/**
 * Unmounts and removes every mount point under `dir` (views a previous daemon left mounted when it stopped mid-copy
 * or mid-build); a missing `dir` is nothing to do, a directory that stays is logged.
 */
export function removeLeftoverMounts(dir: string, log: Logger, what: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(dir, n);
    try {
      unmount(p);
    } catch {
      // not mounted
    }
    try {
      rmdirSync(p);
    } catch (e) {
      log.warn({ err: errorMessage(e), path: p }, `removing a leftover ${what} failed`);
    }
  }
}
