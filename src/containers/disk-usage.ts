// Bytes used by a directory tree (regular files' sizes, each inode counted once), without following symlinks.

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export async function du(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    let entries: string[];
    try {
      entries = await readdir(p);
    } catch {
      return;
    }
    for (const e of entries) {
      const child = join(p, e);
      const st = await lstat(child).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) await walk(child);
      else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1) {
          if (seen.has(key)) continue;
          seen.add(key);
        }
        total += st.size;
      }
    }
  };
  await walk(dir);
  return total;
}
