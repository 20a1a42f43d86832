// docker diff: what the container's writable layer changed relative to what it started from (init layer +
// image layers). The upper dir is walked through fds (the container controls its contents); each entry is
// compared with the read-only lower view, with dockerd's rules (archive/changes.go): a whiteout is a Delete,
// an entry missing below is an Add (its whole subtree too), an entry whose mode/owner/rdev — or, for
// non-directories, size or mtime — differ is a Modify, and a directory holding changes is a Modify. An opaque
// directory hides everything below it: what the lower view has there and the upper does not is deleted.

import { closeSync, readdirSync, type Stats } from 'node:fs';
import { nativeAddon } from '../native.js';
import { fdPath, lstatOrUndefined, openChildDir } from './confined-root.js';

/** FilesystemChange.Kind: 0 Modify (C), 1 Add (A), 2 Delete (D). */
export const ChangeKind = { Modify: 0, Add: 1, Delete: 2 } as const;
export type ChangeKind = (typeof ChangeKind)[keyof typeof ChangeKind];

export interface Change {
  Path: string;
  Kind: ChangeKind;
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function opaque(path: string): boolean {
  try {
    return nativeAddon().lgetxattr(path, 'trusted.overlay.opaque')?.toString() === 'y';
  } catch {
    return false;
  }
}

/** dockerd's sameFsTime: equal, or the same second when either side has no sub-second part. */
function sameTime(a: Stats, b: Stats): boolean {
  if (a.mtimeMs === b.mtimeMs) return true;
  const as = Math.floor(a.mtimeMs / 1000);
  const bs = Math.floor(b.mtimeMs / 1000);
  return as === bs && (a.mtimeMs % 1000 === 0 || b.mtimeMs % 1000 === 0);
}

function capability(path: string): string {
  try {
    return nativeAddon().lgetxattr(path, 'security.capability')?.toString('hex') ?? '';
  } catch {
    return '';
  }
}

function statDifferent(upper: Stats, lower: Stats, upperPath: string, lowerPath: string): boolean {
  if (upper.mode !== lower.mode || upper.uid !== lower.uid || upper.gid !== lower.gid || upper.rdev !== lower.rdev) return true;
  if (!upper.isDirectory()) {
    if (upper.size !== lower.size || !sameTime(upper, lower)) return true;
  }
  return !upper.isSymbolicLink() && capability(upperPath) !== capability(lowerPath);
}

/**
 * The changes of a container: `upperFd` is its upper dir (open), `lowerFd` the root of the read-only lower
 * view. Sorted by path, as the CLI prints them.
 */
export function containerChanges(upperFd: number, lowerFd: number): Change[] {
  const out: Change[] = [];
  walk(upperFd, lowerFd, '', out);
  out.sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
  return out;
}

/** Compares the directory `dirFd` of upper (at container path `dir`) with the lower view (lowerDirFd, if present). Returns whether anything changed. */
function walk(dirFd: number, lowerDirFd: number | undefined, dir: string, out: Change[]): boolean {
  let changed = false;
  const names = readdirSync(fdPath(dirFd)).sort();
  const seen = new Set(names);
  if (lowerDirFd !== undefined && opaque(fdPath(dirFd))) {
    // An opaque directory replaced the lower one: whatever the lower had that the upper lacks is gone.
    for (const n of readdirSync(fdPath(lowerDirFd))) {
      if (!seen.has(n)) {
        out.push({ Path: `${dir}/${n}`, Kind: ChangeKind.Delete });
        changed = true;
      }
    }
  }
  for (const name of names) {
    const path = `${dir}/${name}`;
    const up = fdPath(dirFd, name);
    const st = lstatOrUndefined(up);
    if (!st) continue;
    const low = lowerDirFd === undefined ? undefined : fdPath(lowerDirFd, name);
    const lst = low === undefined ? undefined : lstatOrUndefined(low);
    if (isWhiteout(st)) {
      if (lst) {
        out.push({ Path: path, Kind: ChangeKind.Delete });
        changed = true;
      }
      continue;
    }
    if (!lst) {
      changed = true;
      out.push({ Path: path, Kind: ChangeKind.Add });
      if (st.isDirectory()) addAll(dirFd, name, path, out);
      continue;
    }
    if (st.isDirectory() && lst.isDirectory()) {
      const fd = openChildDir(dirFd, name);
      let lfd: number | undefined;
      try {
        lfd = openChildDir(lowerDirFd as number, name);
      } catch {
        lfd = undefined;
      }
      try {
        const inner = walk(fd, lfd, path, out);
        if (inner || statDifferent(st, lst, up, low as string)) {
          out.push({ Path: path, Kind: ChangeKind.Modify });
          changed = true;
        }
      } finally {
        closeSync(fd);
        if (lfd !== undefined) closeSync(lfd);
      }
      continue;
    }
    if (statDifferent(st, lst, up, low as string)) {
      out.push({ Path: path, Kind: ChangeKind.Modify });
      changed = true;
    }
    if (!st.isDirectory() && lst.isDirectory()) {
      // A directory replaced by a file: its old contents are deleted.
      const lfd = openChildDir(lowerDirFd as number, name);
      try {
        for (const n of readdirSync(fdPath(lfd))) out.push({ Path: `${path}/${n}`, Kind: ChangeKind.Delete });
      } finally {
        closeSync(lfd);
      }
    }
  }
  return changed;
}

function addAll(parentFd: number, name: string, path: string, out: Change[]): void {
  const fd = openChildDir(parentFd, name);
  try {
    for (const n of readdirSync(fdPath(fd)).sort()) {
      const st = lstatOrUndefined(fdPath(fd, n));
      if (!st || isWhiteout(st)) continue;
      out.push({ Path: `${path}/${n}`, Kind: ChangeKind.Add });
      if (st.isDirectory()) addAll(fd, n, `${path}/${n}`, out);
    }
  } finally {
    closeSync(fd);
  }
}
