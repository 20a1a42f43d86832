import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import type { CgroupManager } from '../runtime/cgroups/index.js';
import type { BlkioStatEntry, CgroupCounters } from '../runtime/cgroups/resources.js';
import type { ContainerView } from '../containers/types.js';
import { cgroupPathOf, containerPaths } from '../containers/paths.js';
import { directorySize } from '../util/directory-size.js';
import { nowNano } from '../util/time.js';
import { containerData } from './containers.js';
import type { Msg } from './messages.js';
import { sandboxData } from './sandboxes.js';
import { hugetlbAvailable, hugetlbDir, readHugetlb, type HugetlbStat } from './hugetlb.js';

// CRI metrics (ListMetricDescriptors, ListPodSandboxMetrics): the cAdvisor metric families the kubelet serves on
// /metrics/cadvisor when the runtime provides them (KEP-2371), from the same sources as `docker stats` (the
// container's cgroup), /proc of its processes, the writable layer's file system, and the pod's network namespace
// (/proc/<pod pid>/net/dev), and the hugetlb controller where the host has one (per page size). Values are the CRI's
// uint64: *_seconds metrics carry whole seconds. Not provided (no source on these hosts, or not yet): PSI pressure,
// ulimits.

/** cAdvisor's labels for every container series: container (Kubernetes name), id, image, name (runtime), namespace, pod. */
const BASE = ['container', 'id', 'image', 'name', 'namespace', 'pod'];

type Kind = 'COUNTER' | 'GAUGE';

interface Family {
  name: string;
  help: string;
  /** Label keys after the BASE ones. */
  extra: string[];
  kind: Kind;
}

const fam = (name: string, kind: Kind, help: string, extra: string[] = []): Family => ({ name, help, extra, kind });

const FAMILIES: Family[] = [
  fam('container_cpu_usage_seconds_total', 'COUNTER', 'Cumulative cpu time consumed in seconds.', ['cpu']),
  fam('container_cpu_user_seconds_total', 'COUNTER', 'Cumulative user cpu time consumed in seconds.'),
  fam('container_cpu_system_seconds_total', 'COUNTER', 'Cumulative system cpu time consumed in seconds.'),
  fam('container_cpu_cfs_periods_total', 'COUNTER', 'Number of elapsed enforcement period intervals.'),
  fam('container_cpu_cfs_throttled_periods_total', 'COUNTER', 'Number of throttled period intervals.'),
  fam('container_cpu_cfs_throttled_seconds_total', 'COUNTER', 'Total time duration the container has been throttled.'),
  fam('container_memory_usage_bytes', 'GAUGE', 'Current memory usage in bytes, including all memory regardless of when it was accessed.'),
  fam('container_memory_max_usage_bytes', 'GAUGE', 'Maximum memory usage recorded in bytes.'),
  fam('container_memory_working_set_bytes', 'GAUGE', 'Current working set in bytes.'),
  fam('container_memory_cache', 'GAUGE', 'Number of bytes of page cache memory.'),
  fam('container_memory_rss', 'GAUGE', 'Size of RSS in bytes.'),
  fam('container_memory_mapped_file', 'GAUGE', 'Size of memory mapped files in bytes.'),
  fam('container_memory_swap', 'GAUGE', 'Container swap usage in bytes.'),
  fam('container_memory_kernel_usage', 'GAUGE', 'Size of kernel memory allocated in bytes.'),
  fam('container_memory_failcnt', 'COUNTER', 'Number of memory usage hits limits.'),
  fam('container_memory_failures_total', 'COUNTER', 'Cumulative count of memory allocation failures.', ['failure_type', 'scope']),
  fam('container_hugetlb_usage_bytes', 'GAUGE', 'Current hugepage usage.', ['pagesize']),
  fam('container_hugetlb_max_usage_bytes', 'GAUGE', 'Maximum hugepage usages recorded.', ['pagesize']),
  fam('container_hugetlb_failcnt', 'COUNTER', 'Number of hugepage usage hits limits.', ['pagesize']),
  fam('container_oom_events_total', 'COUNTER', 'Count of out of memory events observed for the container.'),
  fam('container_processes', 'GAUGE', 'Number of processes running inside the container.'),
  fam('container_threads', 'GAUGE', 'Number of threads running inside the container.'),
  fam('container_threads_max', 'GAUGE', 'Maximum number of threads allowed inside the container, infinity if value is zero.'),
  fam('container_file_descriptors', 'GAUGE', 'Number of open file descriptors for the container.'),
  fam('container_sockets', 'GAUGE', 'Number of open sockets for the container.'),
  fam('container_fs_usage_bytes', 'GAUGE', 'Number of bytes that are consumed by the container on this filesystem.', ['device']),
  fam('container_fs_limit_bytes', 'GAUGE', 'Number of bytes that can be consumed by the container on this filesystem.', ['device']),
  fam('container_fs_inodes_total', 'GAUGE', 'Number of Inodes.', ['device']),
  fam('container_fs_inodes_free', 'GAUGE', 'Number of available Inodes.', ['device']),
  fam('container_fs_reads_bytes_total', 'COUNTER', 'Cumulative count of bytes read.', ['device']),
  fam('container_fs_writes_bytes_total', 'COUNTER', 'Cumulative count of bytes written.', ['device']),
  fam('container_fs_reads_total', 'COUNTER', 'Cumulative count of reads completed.', ['device']),
  fam('container_fs_writes_total', 'COUNTER', 'Cumulative count of writes completed.', ['device']),
  fam('container_blkio_device_usage_total', 'COUNTER', 'Blkio device bytes usage.', ['device', 'major', 'minor', 'operation']),
  fam('container_spec_cpu_period', 'GAUGE', 'CPU period of the container.'),
  fam('container_spec_cpu_quota', 'GAUGE', 'CPU quota of the container.'),
  fam('container_spec_cpu_shares', 'GAUGE', 'CPU share of the container.'),
  fam('container_spec_memory_limit_bytes', 'GAUGE', 'Memory limit for the container.'),
  fam('container_spec_memory_reservation_limit_bytes', 'GAUGE', 'Memory reservation limit for the container.'),
  fam('container_spec_memory_swap_limit_bytes', 'GAUGE', 'Memory swap limit for the container.'),
  fam('container_start_time_seconds', 'GAUGE', 'Start time of the container since unix epoch in seconds.'),
  fam('container_last_seen', 'GAUGE', 'Last time a container was seen by the exporter.'),
  ...(['receive', 'transmit'] as const).flatMap((dir) => [
    fam(`container_network_${dir}_bytes_total`, 'COUNTER', `Cumulative count of bytes ${dir === 'receive' ? 'received' : 'transmitted'}.`, ['interface']),
    fam(`container_network_${dir}_packets_total`, 'COUNTER', `Cumulative count of packets ${dir === 'receive' ? 'received' : 'transmitted'}.`, ['interface']),
    fam(`container_network_${dir}_errors_total`, 'COUNTER', `Cumulative count of errors encountered while ${dir === 'receive' ? 'receiving' : 'transmitting'}.`, ['interface']),
    fam(`container_network_${dir}_packets_dropped_total`, 'COUNTER', `Cumulative count of packets dropped while ${dir === 'receive' ? 'receiving' : 'transmitting'}.`, ['interface']),
  ]),
];

const BY_NAME = new Map(FAMILIES.map((f) => [f.name, f]));

/**
 * The ListMetricDescriptors answer. The hugetlb families are described only where the host has the controller: a
 * described family must have series (critest checks each descriptor against ListPodSandboxMetrics).
 */
export function metricDescriptors(hugetlb = true): Msg[] {
  return FAMILIES.filter((f) => hugetlb || !f.name.startsWith('container_hugetlb_')).map((f) => ({ name: f.name, help: f.help, label_keys: [...BASE, ...f.extra] }));
}

/** One interface's counters of /proc/<pid>/net/dev. */
interface NetDev {
  name: string;
  rxBytes: number;
  rxPackets: number;
  rxErrs: number;
  rxDrop: number;
  txBytes: number;
  txPackets: number;
  txErrs: number;
  txDrop: number;
}

/** The interfaces (lo excepted) of the network namespace `pid` is in. */
export function parseNetDev(text: string): NetDev[] {
  return text
    .split('\n')
    .slice(2)
    .flatMap((line) => {
      const i = line.indexOf(':');
      if (i < 0) return [];
      const name = line.slice(0, i).trim();
      const f = line
        .slice(i + 1)
        .trim()
        .split(/\s+/)
        .map(Number);
      if (name === 'lo' || f.length < 16) return [];
      const n = (k: number): number => f[k] ?? 0;
      return [{ name, rxBytes: n(0), rxPackets: n(1), rxErrs: n(2), rxDrop: n(3), txBytes: n(8), txPackets: n(9), txErrs: n(10), txDrop: n(11) }];
    });
}

/** Threads, open descriptors and sockets of a set of host PIDs (processes that exit meanwhile are skipped). */
function procCounts(pids: number[]): { threads: number; fds: number; sockets: number } {
  let threads = 0;
  let fds = 0;
  let sockets = 0;
  for (const pid of pids) {
    try {
      threads += Number(/^Threads:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        fds++;
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++;
        } catch {
          // closed meanwhile
        }
      }
    } catch {
      // exited meanwhile
    }
  }
  return { threads, fds, sockets };
}

const secs = (ns: number): number => Math.floor(ns / 1e9);

export class CriMetrics {
  private mountinfo: string | undefined;

  constructor(
    private readonly cgroups: CgroupManager,
    private readonly dataRoot: string,
  ) {}

  /** Whether the host has the hugetlb controller (v1: a hierarchy mounts it; v2: the root offers it). */
  hasHugetlb(): boolean {
    try {
      this.mountinfo ??= readFileSync('/proc/self/mountinfo', 'utf8');
      return hugetlbAvailable(this.cgroups.version, this.mountinfo);
    } catch {
      return false;
    }
  }

  /** The container's hugetlb counters (none when the host mounts no hugetlb controller). */
  private hugetlb(c: ContainerView): HugetlbStat[] {
    try {
      if (!this.hasHugetlb()) return [];
      const dir = hugetlbDir(cgroupPathOf(c), this.cgroups.version, this.mountinfo ?? '');
      return dir ? readHugetlb(dir, this.cgroups.version) : [];
    } catch {
      return [];
    }
  }

  /** PodSandboxMetrics of a running pod: its network at pod level, each running container's families. */
  async pod(sb: ContainerView, containers: ContainerView[]): Promise<Msg> {
    const sd = sandboxData(sb);
    const pod = { namespace: String(sd.metadata.namespace ?? ''), name: String(sd.metadata.name ?? '') };
    const ts = nowNano().toString();
    const podLabels = ['POD', sb.id, sb.config.Image ?? '', sb.name, pod.namespace, pod.name];
    const metrics: Msg[] = [];
    let net: NetDev[] = [];
    try {
      net = parseNetDev(readFileSync(`/proc/${sb.state.Pid}/net/dev`, 'utf8'));
    } catch {
      // the holder exited: no network series
    }
    const put = (out: Msg[], labels: string[], name: string, value: number, extra: string[] = []): void => {
      const f = BY_NAME.get(name);
      if (!f) throw new Error(`no metric family ${name}`);
      out.push({ name, timestamp: ts, metric_type: f.kind, label_values: [...labels, ...extra], value: { value: String(Math.max(0, Math.round(value))) } });
    };
    for (const i of net) {
      put(metrics, podLabels, 'container_network_receive_bytes_total', i.rxBytes, [i.name]);
      put(metrics, podLabels, 'container_network_receive_packets_total', i.rxPackets, [i.name]);
      put(metrics, podLabels, 'container_network_receive_errors_total', i.rxErrs, [i.name]);
      put(metrics, podLabels, 'container_network_receive_packets_dropped_total', i.rxDrop, [i.name]);
      put(metrics, podLabels, 'container_network_transmit_bytes_total', i.txBytes, [i.name]);
      put(metrics, podLabels, 'container_network_transmit_packets_total', i.txPackets, [i.name]);
      put(metrics, podLabels, 'container_network_transmit_errors_total', i.txErrs, [i.name]);
      put(metrics, podLabels, 'container_network_transmit_packets_dropped_total', i.txDrop, [i.name]);
    }
    const containerMetrics: Msg[] = [];
    for (const c of containers) {
      if (!c.state.Running) continue;
      const out: Msg[] = [];
      const d = containerData(c);
      const labels = [String(d.metadata.name ?? ''), c.id, d.image, c.name, pod.namespace, pod.name];
      await this.container(c, (name, value, extra) => put(out, labels, name, value, extra));
      containerMetrics.push({ container_id: c.id, metrics: out });
    }
    return { pod_sandbox_id: sb.id, metrics, container_metrics: containerMetrics };
  }

  private async container(c: ContainerView, put: (name: string, value: number, extra?: string[]) => void): Promise<void> {
    const cg = this.cgroups.open(cgroupPathOf(c));
    let s: CgroupCounters | undefined;
    let pids: number[] = [];
    let ooms = 0;
    try {
      [s, pids, ooms] = await Promise.all([cg.counters(), cg.pids(), cg.oomKillCount()]);
    } catch {
      // the cgroup went away with the process: no cgroup series
    }
    if (s) {
      const cpu = s.cpu;
      put('container_cpu_usage_seconds_total', secs(cpu.usageNs), ['total']);
      put('container_cpu_user_seconds_total', secs(cpu.userNs));
      put('container_cpu_system_seconds_total', secs(cpu.kernelNs));
      put('container_cpu_cfs_periods_total', cpu.periods);
      put('container_cpu_cfs_throttled_periods_total', cpu.throttledPeriods);
      put('container_cpu_cfs_throttled_seconds_total', secs(cpu.throttledNs));
      const m = s.memory;
      const st = m.stat;
      const usage = m.usage ?? 0;
      put('container_memory_usage_bytes', usage);
      put('container_memory_max_usage_bytes', m.maxUsage ?? usage);
      put('container_memory_working_set_bytes', Math.max(0, usage - (st.total_inactive_file ?? st.inactive_file ?? 0)));
      put('container_memory_cache', st.total_cache ?? st.cache ?? st.file ?? 0);
      put('container_memory_rss', st.total_rss ?? st.rss ?? st.anon ?? 0);
      put('container_memory_mapped_file', st.total_mapped_file ?? st.mapped_file ?? st.file_mapped ?? 0);
      put('container_memory_swap', st.total_swap ?? st.swap ?? 0);
      put('container_memory_kernel_usage', st.kernel ?? (st.kernel_stack ?? 0) + (st.slab ?? 0));
      put('container_memory_failcnt', m.failcnt ?? 0);
      const hier = (k: string): number => st[`total_${k}`] ?? st[k] ?? 0;
      put('container_memory_failures_total', st.pgfault ?? 0, ['pgfault', 'container']);
      put('container_memory_failures_total', st.pgmajfault ?? 0, ['pgmajfault', 'container']);
      put('container_memory_failures_total', hier('pgfault'), ['pgfault', 'hierarchy']);
      put('container_memory_failures_total', hier('pgmajfault'), ['pgmajfault', 'hierarchy']);
      put('container_threads_max', s.pids.limit !== undefined && Number.isFinite(s.pids.limit) ? s.pids.limit : 0);
      const io = ioEntries(s.io);
      const byDevice = new Map<string, { rb: number; wb: number; r: number; w: number }>();
      const dev = (e: { major: number; minor: number }): { rb: number; wb: number; r: number; w: number } => {
        const k = `${e.major}:${e.minor}`;
        let v = byDevice.get(k);
        if (!v) byDevice.set(k, (v = { rb: 0, wb: 0, r: 0, w: 0 }));
        return v;
      };
      for (const e of io.bytes) {
        const op = e.op.toLowerCase();
        put('container_blkio_device_usage_total', e.value, [`${e.major}:${e.minor}`, String(e.major), String(e.minor), e.op]);
        if (op === 'read') dev(e).rb += e.value;
        if (op === 'write') dev(e).wb += e.value;
      }
      for (const e of io.ops) {
        const op = e.op.toLowerCase();
        if (op === 'read') dev(e).r += e.value;
        if (op === 'write') dev(e).w += e.value;
      }
      for (const [device, v] of byDevice) {
        put('container_fs_reads_bytes_total', v.rb, [device]);
        put('container_fs_writes_bytes_total', v.wb, [device]);
        put('container_fs_reads_total', v.r, [device]);
        put('container_fs_writes_total', v.w, [device]);
      }
    }
    for (const h of this.hugetlb(c)) {
      put('container_hugetlb_usage_bytes', h.usage, [h.pagesize]);
      put('container_hugetlb_max_usage_bytes', h.maxUsage, [h.pagesize]);
      put('container_hugetlb_failcnt', h.failcnt, [h.pagesize]);
    }
    put('container_oom_events_total', ooms);
    const counts = procCounts(pids);
    put('container_processes', pids.length);
    put('container_threads', counts.threads);
    put('container_file_descriptors', counts.fds);
    put('container_sockets', counts.sockets);
    // the writable layer, on the data root's file system
    const upper = containerPaths(this.dataRoot, c.id).upper;
    const [used, fs] = await Promise.all([directorySize(upper).catch(() => 0), statfs(upper).catch(() => undefined)]);
    put('container_fs_usage_bytes', used, [upper]);
    if (fs) {
      put('container_fs_limit_bytes', fs.blocks * fs.bsize, [upper]);
      put('container_fs_inodes_total', fs.files, [upper]);
      put('container_fs_inodes_free', fs.ffree, [upper]);
    }
    const hc = c.hostConfig;
    const n = (v: unknown): number => (typeof v === 'number' ? v : 0);
    put('container_spec_cpu_period', n(hc.CpuPeriod));
    put('container_spec_cpu_quota', n(hc.CpuQuota));
    put('container_spec_cpu_shares', n(hc.CpuShares));
    put('container_spec_memory_limit_bytes', n(hc.Memory));
    put('container_spec_memory_reservation_limit_bytes', n(hc.MemoryReservation));
    put('container_spec_memory_swap_limit_bytes', n(hc.MemorySwap));
    put('container_start_time_seconds', Math.floor(Date.parse(c.state.StartedAt) / 1000) || 0);
    put('container_last_seen', Math.floor(Date.now() / 1000));
  }
}

/** Block I/O bytes and operations per device and op: v1's blkio entries, v2's io.stat byte counts (no op counts). */
function ioEntries(io: CgroupCounters['io']): { bytes: BlkioStatEntry[]; ops: BlkioStatEntry[] } {
  if (io.version === '1') return { bytes: io.serviceBytes, ops: io.serviced };
  const bytes = io.devices.flatMap((d) => [
    { major: d.major, minor: d.minor, op: 'read', value: d.rbytes },
    { major: d.major, minor: d.minor, op: 'write', value: d.wbytes },
  ]);
  return { bytes, ops: [] };
}
