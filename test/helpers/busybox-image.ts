import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { dockerSaveArchive, materialize, type LayerEntry } from './image-builder.js';

const BUSYBOX = '/bin/busybox';
const CACHE = fileURLToPath(new URL('../fixtures/cache/', import.meta.url));

/**
 * The busybox rootfs from Debian's busybox-static: /bin/busybox with every applet linked to it,
 * /etc/passwd and /etc/group, /tmp 1777, /root, and the usual empty mount points.
 */
export function busyboxEntries(): LayerEntry[] {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install -y busybox-static`);
  const applets = execFileSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== 'bin/busybox');
  const dirs = new Set(['bin', 'dev', 'etc', 'home', 'proc', 'root', 'sbin', 'sys', 'tmp', 'usr', 'usr/bin', 'usr/sbin', 'var', 'var/spool', 'var/www']);
  for (const a of applets) {
    const parts = a.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  const entries: LayerEntry[] = [...dirs].sort().map((d) => ({
    path: d,
    type: 'directory',
    mode: d === 'tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755,
  }));
  entries.push({ path: 'bin/busybox', type: 'file', mode: 0o755, content: readFileSync(BUSYBOX) });
  for (const a of applets.sort()) entries.push({ path: a, type: 'symlink', linkname: '/bin/busybox' });
  entries.push(
    {
      path: 'etc/passwd',
      type: 'file',
      content: 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n',
    },
    { path: 'etc/group', type: 'file', content: 'root:x:0:\ndaemon:x:1:\ntty:x:5:\nwww-data:x:33:\nnogroup:x:65534:\n' },
  );
  return entries;
}

function busyboxVersion(): string {
  return execFileSync(BUSYBOX, [], { encoding: 'utf8' }).split('\n')[0]?.replace(/[^A-Za-z0-9.]+/g, '-') ?? 'unknown';
}

/** Builds `make(tmpPath)` once per machine into the cache; concurrent workers race safely by rename. */
function cached(name: string, make: (tmp: string) => void | Promise<void>): Promise<string> | string {
  const path = join(CACHE, name);
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const finish = (): string => {
    try {
      renameSync(tmp, path);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another worker won the race
    }
    return path;
  };
  const r = make(tmp);
  return r instanceof Promise ? r.then(finish) : finish();
}

/** A directory holding the busybox rootfs (for executor tests that need no image store). */
export function busyboxRootfs(): string {
  return cached(`busybox-rootfs-${busyboxVersion()}`, (tmp) => materialize(busyboxEntries(), tmp)) as string;
}

/** A `docker save` archive of the busybox image tagged `tag` (default busybox:latest). */
export async function busyboxImageTar(tag = 'busybox:latest'): Promise<string> {
  return cached(`busybox-${busyboxVersion()}-${tag.replace(/[^A-Za-z0-9.]+/g, '_')}.tar`, async (tmp) => {
    writeFileSync(tmp, await dockerSaveArchive([{ layers: [busyboxEntries()], repoTags: [tag] }]));
  });
}
