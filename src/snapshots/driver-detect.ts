import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { nativeAddon, MNT_DETACH } from '../native.js';

export type StorageDriver = 'overlay2' | 'vfs';

/** Docker's status lines for `docker info` (DriverStatus). */
export function driverStatus(driver: StorageDriver, dataRoot: string): [string, string][] {
  if (driver === 'vfs') return [];
  return [
    ['Backing Filesystem', backingFs(dataRoot)],
    ['Supports d_type', 'true'],
    ['Using metacopy', 'false'],
    ['Native Overlay Diff', 'true'],
    ['userxattr', 'false'],
  ];
}

function backingFs(path: string): string {
  try {
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n');
    let best = { len: -1, type: 'unknown' };
    for (const line of mounts) {
      const [, mnt, type] = line.split(' ');
      if (mnt === undefined || type === undefined) continue;
      const m = mnt.replace(/\\040/g, ' ');
      if ((path === m || path.startsWith(m.endsWith('/') ? m : `${m}/`)) && m.length > best.len) best = { len: m.length, type };
    }
    return best.type === 'ext4' || best.type === 'ext3' || best.type === 'ext2' ? 'extfs' : best.type;
  } catch {
    return 'unknown';
  }
}

/**
 * Whether an overlay with an upper dir can really be mounted on the data root's filesystem (overlay on
 * overlay, or a filesystem without d_type/xattrs, fails even when the kernel has overlayfs).
 */
export function overlayWorksOn(dataRoot: string): boolean {
  mkdirSync(dataRoot, { recursive: true });
  const dir = mkdtempSync(join(dataRoot, 'overlay-check-'));
  try {
    for (const d of ['lower1', 'lower2', 'upper', 'work', 'merged']) mkdirSync(join(dir, d));
    const native = nativeAddon();
    native.mount('overlay', join(dir, 'merged'), 'overlay', 0,
      `lowerdir=${join(dir, 'lower2')}:${join(dir, 'lower1')},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`);
    native.umount2(join(dir, 'merged'), MNT_DETACH);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * overlay2 where the kernel has overlayfs and it mounts on the data root, vfs (full copies) otherwise.
 * An explicit `storage-driver` is honoured (overlay2 that cannot work is an error).
 */
export function detectStorageDriver(requested: string | undefined, dataRoot?: string): StorageDriver {
  if (requested === 'vfs') return 'vfs';
  if (requested !== undefined && requested !== '' && requested !== 'overlay2') {
    throw new Error(`error initializing graphdriver: driver not supported: ${requested} (Berth has overlay2 and vfs)`);
  }
  let kernelHas = false;
  try {
    kernelHas = /\boverlay\b/.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    kernelHas = false;
  }
  const works = kernelHas && (dataRoot === undefined || overlayWorksOn(dataRoot));
  if (requested === 'overlay2' && !works) {
    throw new Error('error initializing graphdriver: overlay2 is not supported on this filesystem (use "storage-driver": "vfs")');
  }
  return works ? 'overlay2' : 'vfs';
}
