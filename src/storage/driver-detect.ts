import { readFileSync } from 'node:fs';

/** overlay2 where the kernel has overlayfs, vfs (full copies) otherwise. */
export function detectStorageDriver(requested: string | undefined): 'overlay2' | 'vfs' {
  if (requested === 'vfs' || requested === 'overlay2') return requested;
  try {
    return /\boverlay\b/.test(readFileSync('/proc/filesystems', 'utf8')) ? 'overlay2' : 'vfs';
  } catch {
    return 'vfs';
  }
}
