import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseCgroupPath } from '../runtime/cgroups/cgroup.js';
import { parseCgroupMounts } from '../runtime/cgroups/mountinfo.js';

/** One page size's hugetlb counters of a cgroup, as cAdvisor reports them (`pagesize` "2MB", "1GB"). */
export interface HugetlbStat {
  pagesize: string;
  usage: number;
  maxUsage: number;
  failcnt: number;
}

/**
 * The directory holding a cgroup's hugetlb files: v1, the hierarchy with the hugetlb controller (none when the host
 * does not mount it); v2, the unified tree.
 */
export function hugetlbDir(cgroupPath: string, version: '1' | '2', mountinfo: string, root = '/sys/fs/cgroup'): string | undefined {
  const mounts = parseCgroupMounts(mountinfo, root);
  const rel = normaliseCgroupPath(cgroupPath);
  if (version === '2') return mounts.unified ? join(mounts.unified.mountPoint, rel) : undefined;
  const h = mounts.v1.find((x) => x.controllers.includes('hugetlb'));
  return h ? join(h.mountPoint, rel) : undefined;
}

/** Whether the host has the hugetlb controller: v1, a hierarchy mounts it; v2, the root's cgroup.controllers lists it. */
export function hugetlbAvailable(version: '1' | '2', mountinfo: string, root = '/sys/fs/cgroup', readControllers = (dir: string): string => readFileSync(join(dir, 'cgroup.controllers'), 'utf8')): boolean {
  const mounts = parseCgroupMounts(mountinfo, root);
  if (version === '1') return mounts.v1.some((x) => x.controllers.includes('hugetlb'));
  if (!mounts.unified) return false;
  try {
    return readControllers(mounts.unified.mountPoint).split(/\s+/).includes('hugetlb');
  } catch {
    return false;
  }
}

const V1 = /^hugetlb\.([0-9]+[KMGT]?B)\.(usage_in_bytes|max_usage_in_bytes|failcnt)$/;
const V2 = /^hugetlb\.([0-9]+[KMGT]?B)\.(current|events)$/;

/**
 * The counters per page size in `dir`: v1 `hugetlb.<size>.usage_in_bytes`, `max_usage_in_bytes`, `failcnt`; v2
 * `hugetlb.<size>.current` and the `max` count of `hugetlb.<size>.events` (v2 keeps no maximum usage: 0, as runc
 * reports it). A missing directory or file gives nothing (the cgroup went away, or the host has no hugetlb).
 */
export function readHugetlb(dir: string, version: '1' | '2'): HugetlbStat[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const bySize = new Map<string, HugetlbStat>();
  const stat = (size: string): HugetlbStat => {
    let s = bySize.get(size);
    if (!s) bySize.set(size, (s = { pagesize: size, usage: 0, maxUsage: 0, failcnt: 0 }));
    return s;
  };
  for (const name of names.sort()) {
    const m = (version === '1' ? V1 : V2).exec(name);
    if (!m?.[1]) continue;
    let text: string;
    try {
      text = readFileSync(join(dir, name), 'utf8');
    } catch {
      continue;
    }
    const s = stat(m[1]);
    const n = (v: string | undefined): number => {
      const x = Number((v ?? '').trim());
      return Number.isFinite(x) && x >= 0 ? x : 0;
    };
    switch (m[2]) {
      case 'usage_in_bytes':
      case 'current':
        s.usage = n(text);
        break;
      case 'max_usage_in_bytes':
        s.maxUsage = n(text);
        break;
      case 'failcnt':
        s.failcnt = n(text);
        break;
      case 'events':
        s.failcnt = n(/^max\s+(\d+)/m.exec(text)?.[1]);
        break;
    }
  }
  return [...bySize.values()];
}
