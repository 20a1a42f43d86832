import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hugetlbAvailable, hugetlbDir, readHugetlb } from '../../../src/cri/hugetlb.js';
import { metricDescriptors } from '../../../src/cri/metrics.js';

const V1_MOUNTS = [
  '30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory',
  '31 25 0:27 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,hugetlb',
].join('\n');

describe('CRI hugetlb metrics', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bt-hugetlb-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the hugetlb hierarchy (v1), the unified tree (v2), or none', () => {
    expect(hugetlbDir('/kubepods/pod1/abc', '1', V1_MOUNTS)).toBe('/sys/fs/cgroup/hugetlb/kubepods/pod1/abc');
    expect(hugetlbDir('berth/abc', '1', V1_MOUNTS.split('\n')[0] ?? '')).toBeUndefined();
    expect(hugetlbDir('berth/abc', '2', '29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw')).toBe('/sys/fs/cgroup/berth/abc');
  });

  it('reads usage, max usage and failcnt per page size (v1)', () => {
    for (const [f, v] of Object.entries({
      'hugetlb.2MB.usage_in_bytes': '4194304\n',
      'hugetlb.2MB.max_usage_in_bytes': '6291456\n',
      'hugetlb.2MB.failcnt': '3\n',
      'hugetlb.2MB.limit_in_bytes': '9223372036854771712\n',
      'hugetlb.1GB.usage_in_bytes': '0\n',
      'hugetlb.1GB.max_usage_in_bytes': '0\n',
      'hugetlb.1GB.failcnt': '0\n',
      'memory.usage_in_bytes': '1\n',
    })) writeFileSync(join(dir, f), v);
    expect(readHugetlb(dir, '1')).toEqual([
      { pagesize: '1GB', usage: 0, maxUsage: 0, failcnt: 0 },
      { pagesize: '2MB', usage: 4194304, maxUsage: 6291456, failcnt: 3 },
    ]);
  });

  it('reads current and the max events (v2), no maximum usage', () => {
    writeFileSync(join(dir, 'hugetlb.2MB.current'), '2097152\n');
    writeFileSync(join(dir, 'hugetlb.2MB.events'), 'max 5\n');
    writeFileSync(join(dir, 'hugetlb.2MB.max'), 'max\n');
    writeFileSync(join(dir, 'hugetlb.2MB.rsvd.current'), '2097152\n');
    expect(readHugetlb(dir, '2')).toEqual([{ pagesize: '2MB', usage: 2097152, maxUsage: 0, failcnt: 5 }]);
  });

  it('gives nothing for a cgroup that is gone', () => {
    expect(readHugetlb(join(dir, 'gone'), '1')).toEqual([]);
  });

  it("describes the families with cAdvisor's pagesize label where the host has hugetlb, and not otherwise", () => {
    const d = new Map(metricDescriptors(true).map((x) => [x.name, x.label_keys as string[]]));
    const names = ['container_hugetlb_usage_bytes', 'container_hugetlb_max_usage_bytes', 'container_hugetlb_failcnt'];
    for (const n of names) expect(d.get(n)?.at(-1)).toBe('pagesize');
    const without = metricDescriptors(false).map((x) => x.name);
    for (const n of names) expect(without).not.toContain(n);
    expect(without.length).toBe(d.size - 3);
  });

  it('knows whether the host has the controller', () => {
    expect(hugetlbAvailable('1', V1_MOUNTS)).toBe(true);
    expect(hugetlbAvailable('1', V1_MOUNTS.split('\n')[0] ?? '')).toBe(false);
    const v2 = '29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw';
    expect(hugetlbAvailable('2', v2, '/sys/fs/cgroup', () => 'cpuset cpu io memory hugetlb pids\n')).toBe(true);
    expect(hugetlbAvailable('2', v2, '/sys/fs/cgroup', () => 'cpuset cpu io memory pids\n')).toBe(false);
  });
});
