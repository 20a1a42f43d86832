// Finding the cgroup hierarchies in /proc/self/mountinfo (proc(5)).

/** One mounted cgroup v1 hierarchy. */
export interface V1Hierarchy {
  /** Controllers bound to it ("cpu", "cpuacct"), or the name of a named hierarchy ("name=systemd"). */
  controllers: string[];
  mountPoint: string;
  /** The hierarchy path shown at the mount point ("/" unless the mount is a sub-tree, e.g. inside a container). */
  root: string;
}

export interface CgroupMounts {
  v1: V1Hierarchy[];
  /** The cgroup2 mount, if any (pure v2, or the unified tree of a hybrid host). */
  unified?: { mountPoint: string; root: string };
}

/** Undo mountinfo's octal escapes (\040 for space, \011, \012, \134). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Parse mountinfo text. Each hierarchy is reported once (the first mount of a given superblock, preferring
 * mounts under `preferUnder`), so bind mounts of the same hierarchy do not count twice.
 */
export function parseCgroupMounts(text: string, preferUnder = '/sys/fs/cgroup'): CgroupMounts {
  const v1ByDev = new Map<string, V1Hierarchy>();
  let unified: CgroupMounts['unified'];
  const under = (p: string): boolean => p === preferUnder || p.startsWith(preferUnder.replace(/\/$/, '') + '/');
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const dev = pre[2];
    const root = pre[3];
    const mountPoint = pre[4];
    const fstype = post[0];
    const superOpts = post[2] ?? '';
    if (dev === undefined || root === undefined || mountPoint === undefined) continue;
    if (fstype === 'cgroup2') {
      const entry = { mountPoint: unescape(mountPoint), root: unescape(root) };
      if (unified === undefined || (!under(unified.mountPoint) && under(entry.mountPoint))) unified = entry;
      continue;
    }
    if (fstype !== 'cgroup') continue;
    const controllers = superOpts
      .split(',')
      .filter((o) => o !== 'rw' && o !== 'ro' && o !== '' && !o.startsWith('release_agent=') && o !== 'noprefix' && o !== 'clone_children' && o !== 'xattr' && o !== 'cpuset_v2_mode' && o !== 'favordynmods');
    if (controllers.length === 0) continue;
    const entry: V1Hierarchy = { controllers, mountPoint: unescape(mountPoint), root: unescape(root) };
    const prev = v1ByDev.get(dev);
    if (prev === undefined || (!under(prev.mountPoint) && under(entry.mountPoint))) v1ByDev.set(dev, entry);
  }
  const result: CgroupMounts = { v1: [...v1ByDev.values()] };
  if (unified !== undefined) result.unified = unified;
  return result;
}
