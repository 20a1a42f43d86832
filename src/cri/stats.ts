import os from 'node:os';
import type { CgroupCounters, CgroupManager } from '../runtime/cgroups/index.js';
import type { ContainerView } from '../containers/types.js';
import { cgroupPathOf, containerPaths } from '../containers/paths.js';
import { directorySize } from '../util/directory-size.js';
import { nowNano } from '../util/time.js';
import { containerData } from './containers.js';
import type { Msg } from './messages.js';
import { sandboxData } from './sandboxes.js';

const u = (n: number | undefined): { value: string } => ({ value: String(Math.max(0, Math.round(n ?? 0))) });

/** CRI stats from the containers' cgroup counters (the same readers as `docker stats`) and their writable layers. */
export class CriStats {
  /** Last CPU reading per container, for usage_nano_cores. */
  private readonly lastCpu = new Map<string, { nano: bigint; usage: number }>();

  constructor(
    private readonly cgroups: CgroupManager,
    private readonly dataRoot: string,
  ) {}

  private async cgroupStats(c: ContainerView, key: string): Promise<{ cpu: Msg; memory: Msg }> {
    const ts = nowNano();
    let usage = 0;
    let mem: CgroupCounters['memory'] = { stat: {} };
    if (c.state.Running) {
      try {
        const s = await this.cgroups.open(cgroupPathOf(c)).counters();
        usage = s.cpu.usageNs;
        mem = s.memory;
      } catch {
        // the cgroup went away with the process: zeros
      }
    }
    const prev = this.lastCpu.get(key);
    this.lastCpu.set(key, { nano: ts, usage });
    let nanoCores = 0;
    if (prev && ts > prev.nano && usage >= prev.usage) nanoCores = ((usage - prev.usage) * 1e9) / Number(ts - prev.nano);
    // working set = usage - inactive file (cadvisor's definition)
    const st = mem.stat;
    const inactive = st.total_inactive_file ?? st.inactive_file ?? 0;
    const workingSet = Math.max(0, (mem.usage ?? 0) - inactive);
    const rss = st.total_rss ?? st.rss ?? st.anon ?? 0;
    // an unlimited cgroup is limited by the host's memory
    const limit = mem.limit === undefined ? undefined : Math.min(mem.limit, os.totalmem());
    const timestamp = ts.toString();
    return {
      cpu: { timestamp, usage_core_nano_seconds: u(usage), usage_nano_cores: u(nanoCores) },
      memory: {
        timestamp,
        working_set_bytes: u(workingSet),
        usage_bytes: u(mem.usage),
        rss_bytes: u(rss),
        page_faults: u(st.total_pgfault ?? st.pgfault),
        major_page_faults: u(st.total_pgmajfault ?? st.pgmajfault),
        ...(limit ? { available_bytes: u(limit - workingSet) } : {}),
      },
    };
  }

  async container(c: ContainerView): Promise<Msg> {
    const d = containerData(c);
    const { cpu, memory } = await this.cgroupStats(c, c.id);
    const upper = containerPaths(this.dataRoot, c.id).upper;
    const used = await directorySize(upper).catch(() => 0);
    return {
      attributes: { id: c.id, metadata: d.metadata, labels: d.labels, annotations: d.annotations },
      cpu,
      memory,
      writable_layer: { timestamp: nowNano().toString(), fs_id: { mountpoint: upper }, used_bytes: u(used), inodes_used: u(0) },
    };
  }

  async sandbox(sb: ContainerView, containers: ContainerView[]): Promise<Msg> {
    const d = sandboxData(sb);
    const { cpu, memory } = await this.cgroupStats(sb, sb.id);
    const list: Msg[] = [];
    for (const c of containers) if (c.state.Running) list.push(await this.container(c));
    return {
      attributes: { id: sb.id, metadata: d.metadata, labels: d.labels, annotations: d.annotations },
      linux: { cpu, memory, containers: list },
    };
  }
}
