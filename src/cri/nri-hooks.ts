import { InvalidParameterError, errorMessage } from '../errors.js';
import type { ContainerService } from '../containers/container-service.js';
import type { ContainerOps } from '../containers/container-ops.js';
import type { CreateRequest } from '../containers/create-request.js';
import type { ContainerView, HostConfig } from '../containers/types.js';
import type { EventBus } from '../events/event-bus.js';
import type { MergedAdjustment, NriResources } from '../nri/adjustment.js';
import { updateResources } from '../nri/adjustment.js';
import type { NriService } from '../nri/nri-service.js';
import type { NriMsg } from '../nri/proto.js';
import type { Logger } from '../util/logger.js';
import { containerData } from './containers.js';
import { sandboxData } from './sandboxes.js';
import { num, str, type Msg } from './messages.js';

/**
 * The CRI's side of NRI: turns pods and containers into NRI's PodSandbox and Container messages, calls the NRI
 * service at each lifecycle step, and applies a CreateContainer adjustment to the create request before the
 * container service builds the spec. Only CRI objects go through NRI (containerd applies NRI to the CRI only);
 * Docker API containers do not. Without an NRI service every hook is a no-op.
 */
export class CriNri {
  /** Containers whose StopContainer event was delivered (it is sent once: at the CRI stop or at the exit). */
  private readonly stopped = new Set<string>();

  constructor(
    private readonly nri: NriService | undefined,
    private readonly containers: ContainerService,
    private readonly log: Logger,
  ) {}

  get enabled(): boolean {
    return this.nri !== undefined;
  }

  /** Registers the state source (snapshot, updates) and follows container exits for StopContainer. */
  attach(d: { sandboxes: () => ContainerView[]; criContainers: () => ContainerView[]; containerOps: ContainerOps; events: EventBus }): void {
    const nri = this.nri;
    if (!nri) return;
    nri.setStateSource({
      snapshot: () => ({
        pods: d.sandboxes().filter((s) => s.state.Running).map((s) => podMessage(s)),
        containers: d.criContainers().map((c) => containerMessage(c)),
      }),
      update: async (updates) => {
        const failed: NriMsg[] = [];
        for (const u of updates) {
          try {
            const c = this.containers.get(String(u.container_id ?? ''));
            await d.containerOps.update(c.id, resourcesBody(updateResources('update', u)) as Parameters<ContainerOps['update']>[1], 'cri');
          } catch (e) {
            this.log.warn({ container: u.container_id, err: errorMessage(e) }, 'NRI container update failed');
            if (u.ignore_failure !== true) failed.push(u);
          }
        }
        return failed;
      },
    });
    d.events.subscribe((e) => {
      if (e.Type !== 'container' || e.Action !== 'die') return;
      const c = this.containers.find(e.Actor.ID);
      if (c?.cri?.kind === 'container') void this.stopContainer(c);
    });
  }

  private pod(sandboxId: string): NriMsg {
    const sb = this.containers.find(sandboxId);
    return sb ? podMessage(sb) : { id: sandboxId };
  }

  blockSync(): Promise<() => void> {
    return this.nri ? this.nri.blockSync() : Promise.resolve(() => undefined);
  }

  async runPodSandbox(sb: ContainerView): Promise<void> {
    await this.nri?.runPodSandbox(podMessage(sb));
  }

  async stopPodSandbox(sb: ContainerView): Promise<void> {
    await this.nri?.stopPodSandbox(podMessage(sb));
  }

  async removePodSandbox(sb: ContainerView): Promise<void> {
    await this.nri?.removePodSandbox(podMessage(sb));
  }

  /** CreateContainer: the plugins see the container as it will be created and may adjust the request. */
  async createContainer(sb: ContainerView, id: string, name: string, req: CreateRequest, annotations: Record<string, string>): Promise<void> {
    if (!this.nri) return;
    const adjust = await this.nri.createContainer(podMessage(sb), requestMessage(sb.id, id, name, req, annotations));
    if (adjust) applyAdjustment(req, adjust, annotations);
  }

  async postCreateContainer(c: ContainerView): Promise<void> {
    await this.nri?.postCreateContainer(this.pod(containerData(c).sandboxId), containerMessage(c));
  }

  async startContainer(c: ContainerView): Promise<void> {
    await this.nri?.startContainer(this.pod(containerData(c).sandboxId), containerMessage(c));
  }

  async postStartContainer(c: ContainerView): Promise<void> {
    await this.nri?.postStartContainer(this.pod(containerData(c).sandboxId), containerMessage(c));
  }

  async updateContainer(c: ContainerView, resources: NriMsg): Promise<void> {
    await this.nri?.updateContainer(this.pod(containerData(c).sandboxId), containerMessage(c), resources);
  }

  async postUpdateContainer(c: ContainerView): Promise<void> {
    await this.nri?.postUpdateContainer(this.pod(containerData(c).sandboxId), containerMessage(c));
  }

  /** StopContainer, once per container (the event is queued before this returns its promise). */
  stopContainer(c: ContainerView): Promise<void> {
    if (!this.nri || this.stopped.has(c.id)) return Promise.resolve();
    this.stopped.add(c.id);
    return this.nri.stopContainer(this.pod(containerData(c).sandboxId), containerMessage(this.containers.find(c.id) ?? c));
  }

  async removeContainer(c: ContainerView): Promise<void> {
    if (!this.nri) return;
    // a container removed without a stop (created, never started) still gets its StopContainer first
    if (c.state.Status !== 'created') void this.stopContainer(c);
    this.stopped.delete(c.id);
    await this.nri.removeContainer(this.pod(containerData(c).sandboxId), containerMessage(c));
  }
}

/** NRI PodSandbox of a sandbox. */
export function podMessage(sb: ContainerView): NriMsg {
  const d = sandboxData(sb);
  const md = d.metadata ?? {};
  return {
    id: sb.id,
    name: String(md.name ?? ''),
    uid: String(md.uid ?? ''),
    namespace: String(md.namespace ?? ''),
    labels: d.labels ?? {},
    annotations: d.annotations ?? {},
    runtime_handler: d.runtimeHandler ?? '',
    linux: {
      cgroup_parent: d.cgroupParent ?? '',
      ...(d.overhead ? { pod_overhead: nriResources(d.overhead) } : {}),
      ...(d.resources ? { pod_resources: nriResources(d.resources) } : {}),
    },
    pid: sb.state.Pid,
    ips: d.ips ?? [],
  };
}

const NANOS = (t: string): string => {
  const ms = Date.parse(t);
  return Number.isFinite(ms) && ms > 0 ? (BigInt(ms) * 1_000_000n).toString() : '0';
};

function nriState(c: ContainerView): string {
  if (c.state.Paused) return 'CONTAINER_PAUSED';
  if (c.state.Running) return 'CONTAINER_RUNNING';
  if (c.state.Status === 'created') return 'CONTAINER_CREATED';
  return 'CONTAINER_STOPPED';
}

function linuxResources(hc: Readonly<Record<string, unknown>>): NriMsg {
  const n = (v: unknown): { value: string } | null => (typeof v === 'number' && v !== 0 ? { value: String(v) } : null);
  return {
    memory: { limit: n(hc.Memory), reservation: n(hc.MemoryReservation), swap: n(hc.MemorySwap) },
    cpu: { shares: n(hc.CpuShares), quota: n(hc.CpuQuota), period: n(hc.CpuPeriod), cpus: String(hc.CpusetCpus ?? ''), mems: String(hc.CpusetMems ?? '') },
    ...(typeof hc.PidsLimit === 'number' && hc.PidsLimit > 0 ? { pids: { limit: String(hc.PidsLimit) } } : {}),
  };
}

function mountsOf(hc: { readonly Mounts?: readonly Readonly<Record<string, unknown>>[] | null }): NriMsg[] {
  return (hc.Mounts ?? []).map((m) => ({
    destination: String(m.Target ?? ''),
    type: String(m.Type ?? 'bind'),
    source: String(m.Source ?? ''),
    options: [m.Type === 'bind' || m.Type === undefined ? 'rbind' : '', m.ReadOnly === true ? 'ro' : 'rw'].filter((o) => o !== ''),
  }));
}

/** NRI Container of an existing CRI container. */
export function containerMessage(c: ContainerView): NriMsg {
  const d = containerData(c);
  const exited = nriState(c) === 'CONTAINER_STOPPED';
  return {
    id: c.id,
    pod_sandbox_id: d.sandboxId,
    name: String(d.metadata?.name ?? ''),
    state: nriState(c),
    labels: d.labels ?? {},
    annotations: d.annotations ?? {},
    args: [c.path, ...c.args].filter((a) => a !== ''),
    env: c.config.Env ?? [],
    mounts: mountsOf(c.hostConfig),
    linux: { resources: linuxResources(c.hostConfig), ...(c.hostConfig.OomScoreAdj ? { oom_score_adj: { value: String(c.hostConfig.OomScoreAdj) } } : {}) },
    pid: c.state.Pid,
    created_at: d.createdAt ?? '0',
    started_at: NANOS(c.state.StartedAt),
    finished_at: exited ? NANOS(c.state.FinishedAt) : '0',
    exit_code: exited ? c.state.ExitCode : 0,
    ...(d.user ? { user: { uid: d.user.uid, gid: d.user.gid, additional_gids: d.user.supplemental_groups } } : {}),
    image: { name: d.image ?? '' },
  };
}

/** NRI Container of a container about to be created (the request as the CRI translated it). */
function requestMessage(sandboxId: string, id: string, name: string, req: CreateRequest, annotations: Record<string, string>): NriMsg {
  const b = req.body;
  const hc = b.HostConfig ?? {};
  return {
    id,
    pod_sandbox_id: sandboxId,
    name,
    state: 'CONTAINER_UNKNOWN',
    labels: Object.fromEntries(Object.entries(b.Labels ?? {}).filter(([k]) => !k.startsWith('io.berth.'))),
    annotations,
    args: [...(b.Entrypoint ?? []), ...(b.Cmd ?? [])],
    env: b.Env ?? [],
    mounts: mountsOf(hc),
    linux: { resources: linuxResources(hc), ...(hc.OomScoreAdj ? { oom_score_adj: { value: String(hc.OomScoreAdj) } } : {}) },
    image: { name: String(b.Image ?? '') },
  };
}

/** Docker update/create fields of NRI resources. */
export function resourcesBody(r: NriResources): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.memoryLimit !== undefined) out.Memory = r.memoryLimit;
  if (r.memoryReservation !== undefined) out.MemoryReservation = r.memoryReservation;
  if (r.memorySwap !== undefined) out.MemorySwap = r.memorySwap;
  // a memory limit without a swap limit means no swap, as the kubelet asks by default (Docker would otherwise keep
  // or double an earlier swap limit, or refuse a limit above it)
  else if (r.memoryLimit !== undefined) out.MemorySwap = r.memoryLimit;
  if (r.memorySwappiness !== undefined) out.MemorySwappiness = r.memorySwappiness;
  if (r.disableOomKiller !== undefined) out.OomKillDisable = r.disableOomKiller;
  if (r.cpuShares !== undefined) out.CpuShares = r.cpuShares;
  if (r.cpuQuota !== undefined) out.CpuQuota = r.cpuQuota;
  if (r.cpuPeriod !== undefined) out.CpuPeriod = r.cpuPeriod;
  if (r.cpusetCpus !== undefined) out.CpusetCpus = r.cpusetCpus;
  if (r.cpusetMems !== undefined) out.CpusetMems = r.cpusetMems;
  if (r.pidsLimit !== undefined) out.PidsLimit = r.pidsLimit;
  return out;
}

const PROPAGATIONS = ['rprivate', 'private', 'rslave', 'slave', 'rshared', 'shared'];

/**
 * Applies a merged NRI adjustment to a CRI create request (Docker-shaped body), before the container service
 * builds the OCI spec from it. What Berth cannot express (hooks, CDI, namespaces, block I/O or RDT classes,
 * hugepage limits, unified cgroup keys…) is refused with the fields named, rather than silently dropped.
 */
export function applyAdjustment(req: CreateRequest, a: MergedAdjustment, annotations: Record<string, string>): void {
  const unsupported = [...a.unsupported];
  const r = a.resources;
  if (r.hugepageLimits.size > 0) unsupported.push('hugepage limits');
  if (r.blockioClass !== undefined) unsupported.push('block I/O class');
  if (r.rdtClass !== undefined) unsupported.push('RDT class');
  if (r.unified.size > 0) unsupported.push('unified cgroup settings');
  const b = req.body;
  const hc: HostConfig = (b.HostConfig ??= {});
  const mounts: Record<string, unknown>[] = [...(hc.Mounts ?? [])];
  for (const [dest, m] of a.mounts) {
    const i = mounts.findIndex((x) => x.Target === dest);
    if (i >= 0) mounts.splice(i, 1);
    if (!m) continue;
    const bind = m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');
    if (bind) {
      mounts.push({
        Type: 'bind',
        Source: m.source,
        Target: dest,
        ReadOnly: m.options.includes('ro'),
        BindOptions: { Propagation: m.options.find((o) => PROPAGATIONS.includes(o)) ?? 'rprivate', ...(m.options.includes('rbind') ? {} : { NonRecursive: true }), CreateMountpoint: true },
      });
    } else if (m.type === 'tmpfs') {
      mounts.push({ Type: 'tmpfs', Target: dest, ReadOnly: m.options.includes('ro') });
    } else {
      unsupported.push(`mount of type "${m.type}" at ${dest}`);
    }
  }
  if (unsupported.length > 0) throw new InvalidParameterError(`NRI adjustment cannot be applied by Berth: ${unsupported.join(', ')}`);
  if (a.mounts.size > 0) hc.Mounts = mounts;

  if (a.env.size > 0) {
    const env = [...(b.Env ?? [])];
    for (const [key, value] of a.env) {
      const i = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
      if (value === null) {
        if (i >= 0) env.splice(i, 1);
      } else if (i >= 0) env[i] = `${key}=${value}`;
      else env.push(`${key}=${value}`);
    }
    b.Env = env;
  }
  if (a.annotations.size > 0) {
    const out: Record<string, string> = { ...annotations, ...((hc.Annotations as Record<string, string> | undefined) ?? {}) };
    for (const [k, v] of a.annotations) {
      if (v === null) delete out[k];
      else out[k] = v;
    }
    hc.Annotations = out;
  }
  if (a.args !== undefined) {
    b.Entrypoint = a.args;
    b.Cmd = null;
  }
  if (a.rlimits.size > 0) {
    const ulimits = [...(hc.Ulimits ?? [])];
    for (const [type, l] of a.rlimits) {
      const name = type.toLowerCase().replace(/^rlimit_/, '');
      const i = ulimits.findIndex((u) => u.Name === name);
      if (i >= 0) ulimits.splice(i, 1);
      ulimits.push({ Name: name, Soft: l.soft, Hard: l.hard });
    }
    hc.Ulimits = ulimits;
  }
  if (a.oomScoreAdj !== undefined) hc.OomScoreAdj = a.oomScoreAdj;
  Object.assign(hc, resourcesBody(r));
  if (a.sysctl.size > 0) {
    const sysctls = { ...(hc.Sysctls ?? {}) };
    for (const [k, v] of a.sysctl) {
      if (v === null) delete sysctls[k];
      else sysctls[k] = v;
    }
    hc.Sysctls = sysctls;
  }
  if (a.devices.size > 0) {
    const devices = [...(hc.Devices ?? [])];
    for (const [path, dev] of a.devices) {
      const i = devices.findIndex((x) => x.PathInContainer === path);
      if (i >= 0) devices.splice(i, 1);
      if (dev) devices.push({ PathOnHost: path, PathInContainer: path, CgroupPermissions: 'rwm' });
    }
    hc.Devices = devices;
  }
}

/** CRI LinuxContainerResources as NRI LinuxResources (UpdateContainer's event, the pod's resources). */
export function nriResources(r: Msg): Msg {
  const o = (v: unknown): { value: string } | null => (num(v) > 0 ? { value: String(num(v)) } : null);
  return {
    memory: { limit: o(r.memory_limit_in_bytes), swap: o(r.memory_swap_limit_in_bytes) },
    cpu: { shares: o(r.cpu_shares), quota: o(r.cpu_quota), period: o(r.cpu_period), cpus: str(r.cpuset_cpus), mems: str(r.cpuset_mems) },
    unified: strMapOf(r.unified),
  };
}

function strMapOf(v: unknown): Record<string, string> {
  return v && typeof v === 'object' ? Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)])) : {};
}
