import { constants as C } from 'node:fs';
import { lstat, open, readdir, type FileHandle } from 'node:fs/promises';
import { errnoCode, fdPath } from './fd-fs.js';

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/**
 * Bytes used under a directory as dockerd's directory.Size counts them: regular files, symlinks and
 * other non-directories by their size, each inode once (hard links), directories not at all.
 * The tree may belong to a running container (its writable layer, a volume): it is walked through
 * directory fds, a child directory opened O_NOFOLLOW, so a directory swapped for a symlink is never
 * followed out of the tree.
 */
export async function directorySize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (dh: FileHandle): Promise<void> => {
    let entries: string[];
    try {
      entries = await readdir(fdPath(dh.fd));
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return;
      throw e;
    }
    for (const name of entries) {
      let st;
      try {
        st = await lstat(fdPath(dh.fd, name), { bigint: true });
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') continue;
        throw e;
      }
      if (st.isDirectory()) {
        let child: FileHandle;
        try {
          child = await open(fdPath(dh.fd, name), DIR_FLAGS);
        } catch (e) {
          // Removed, or replaced by a symlink or a file since the lstat: not followed.
          if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ELOOP' || errnoCode(e) === 'ENOTDIR') continue;
          throw e;
        }
        try {
          await walk(child);
        } finally {
          await child.close();
        }
        continue;
      }
      if (st.size === 0n) continue;
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      total += Number(st.size);
    }
  };
  let root: FileHandle;
  try {
    root = await open(dir, DIR_FLAGS);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return 0;
    throw e;
  }
  try {
    await walk(root);
  } finally {
    await root.close();
  }
  return total;
}
