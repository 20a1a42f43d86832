import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, readdir, readlink, stat, symlink, utimes, chown } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';

/**
 * Copies a directory tree keeping owners, modes (incl. setuid/setgid/sticky), symlinks, hard links
 * and modification times. Sockets, FIFOs and device nodes are skipped (logged): Node cannot mknod.
 * The source is only read; symlinks are copied as links, never followed.
 */
export async function copyTree(src: string, dst: string, log?: Logger): Promise<void> {
  const links = new Map<string, string>();
  const dirTimes: { path: string; atime: Date; mtime: Date }[] = [];

  const copyEntry = async (from: string, to: string): Promise<void> => {
    const st = await lstat(from, { bigint: true });
    const mode = Number(st.mode & 0o7777n);
    const uid = Number(st.uid);
    const gid = Number(st.gid);
    const atime = new Date(Number(st.atimeMs));
    const mtime = new Date(Number(st.mtimeMs));
    if (st.isDirectory()) {
      await mkdir(to).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
      await chown(to, uid, gid);
      await chmod(to, mode);
      for (const name of await readdir(from)) await copyEntry(join(from, name), join(to, name));
      dirTimes.push({ path: to, atime, mtime });
      return;
    }
    if (st.isSymbolicLink()) {
      await symlink(await readlink(from), to);
      await lchown(to, uid, gid);
      await lutimes(to, atime, mtime);
      return;
    }
    if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? links.get(key) : undefined;
      if (first !== undefined) {
        await link(first, to);
        return;
      }
      if (st.nlink > 1n) links.set(key, to);
      await copyFile(from, to, constants.COPYFILE_EXCL);
      // chown before chmod: chown clears setuid/setgid bits.
      await chown(to, uid, gid);
      await chmod(to, mode);
      await utimes(to, atime, mtime);
      return;
    }
    log?.warn({ path: from }, 'copy-up skips a special file (socket, fifo or device)');
  };

  for (const name of await readdir(src)) await copyEntry(join(src, name), join(dst, name));
  // Directory times last: creating entries inside a directory changes its mtime.
  for (const d of dirTimes.reverse()) await utimes(d.path, d.atime, d.mtime);
}

/**
 * dockerd's populateVolume / copyExistingContents: when `volumeDataDir` is empty and `sourceDir` is a
 * directory, copies the source's content into it and gives the volume root the source's owner and mode.
 * Returns whether anything was copied.
 */
export async function copyUpIfEmpty(volumeDataDir: string, sourceDir: string, log?: Logger): Promise<boolean> {
  let srcStat;
  try {
    srcStat = await stat(sourceDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  if (!srcStat.isDirectory()) return false;
  if ((await readdir(volumeDataDir)).length > 0) return false;
  await copyTree(sourceDir, volumeDataDir, log);
  await chown(volumeDataDir, srcStat.uid, srcStat.gid);
  await chmod(volumeDataDir, srcStat.mode & 0o7777);
  return true;
}
