import type { NriMsg } from './proto.js';

/**
 * Merging the ContainerAdjustments of several plugins into one, in plugin order, as NRI's runtime side does:
 * each field (an annotation key, an env variable, a mount destination, a resource limit…) belongs to the first
 * plugin that sets or removes it, and a second plugin touching the same field is an error that fails the
 * CreateContainer. A key prefixed with "-" (annotations, env, mounts by destination, devices by path) removes it.
 * The result is what the CRI applies to the container's configuration before its spec is built.
 */

export interface NriMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface NriDevice {
  path: string;
  type: string;
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface NriResources {
  memoryLimit?: number;
  memoryReservation?: number;
  memorySwap?: number;
  memorySwappiness?: number;
  disableOomKiller?: boolean;
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: number;
  hugepageLimits: Map<string, number>;
  blockioClass?: string;
  rdtClass?: string;
  unified: Map<string, string>;
}

export interface MergedAdjustment {
  /** value null: remove the key */
  annotations: Map<string, string | null>;
  env: Map<string, string | null>;
  /** by destination; null: remove the mount at that destination */
  mounts: Map<string, NriMount | null>;
  args?: string[];
  rlimits: Map<string, { soft: number; hard: number }>;
  oomScoreAdj?: number;
  resources: NriResources;
  devices: Map<string, NriDevice | null>;
  sysctl: Map<string, string | null>;
  /** Adjusted fields this runtime has no way to apply (the CRI refuses the create naming them). */
  unsupported: string[];
}

export class AdjustmentConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdjustmentConflictError';
  }
}

export function emptyAdjustment(): MergedAdjustment {
  return {
    annotations: new Map(),
    env: new Map(),
    mounts: new Map(),
    rlimits: new Map(),
    resources: { hugepageLimits: new Map(), unified: new Map() },
    devices: new Map(),
    sysctl: new Map(),
    unsupported: [],
  };
}

/** True when the merge changes nothing. */
export function isEmptyAdjustment(a: MergedAdjustment): boolean {
  const r = a.resources;
  const resourceKeys = Object.entries(r).filter(([k, v]) => k !== 'hugepageLimits' && k !== 'unified' && v !== undefined);
  return (
    a.annotations.size === 0 &&
    a.env.size === 0 &&
    a.mounts.size === 0 &&
    a.args === undefined &&
    a.rlimits.size === 0 &&
    a.oomScoreAdj === undefined &&
    resourceKeys.length === 0 &&
    r.hugepageLimits.size === 0 &&
    r.unified.size === 0 &&
    a.devices.size === 0 &&
    a.sysctl.size === 0 &&
    a.unsupported.length === 0
  );
}

/** NRI's Field enum (api.proto), for the owners reported to validators. */
export const Field = {
  Annotations: 1,
  Mounts: 2,
  Devices: 4,
  Env: 6,
  Args: 7,
  MemLimit: 8,
  MemReservation: 9,
  MemSwapLimit: 10,
  MemSwappiness: 13,
  MemDisableOomKiller: 14,
  CPUShares: 16,
  CPUQuota: 17,
  CPUPeriod: 18,
  CPUSetCPUs: 21,
  CPUSetMems: 22,
  PidsLimit: 23,
  HugepageLimits: 24,
  BlockioClass: 25,
  RdtClass: 26,
  CgroupsUnified: 27,
  OomScoreAdj: 29,
  Rlimits: 30,
  Sysctl: 34,
} as const;

const RESOURCE_FIELD: Record<keyof NriResources, number> = {
  memoryLimit: Field.MemLimit,
  memoryReservation: Field.MemReservation,
  memorySwap: Field.MemSwapLimit,
  memorySwappiness: Field.MemSwappiness,
  disableOomKiller: Field.MemDisableOomKiller,
  cpuShares: Field.CPUShares,
  cpuQuota: Field.CPUQuota,
  cpuPeriod: Field.CPUPeriod,
  cpusetCpus: Field.CPUSetCPUs,
  cpusetMems: Field.CPUSetMems,
  pidsLimit: Field.PidsLimit,
  hugepageLimits: Field.HugepageLimits,
  blockioClass: Field.BlockioClass,
  rdtClass: Field.RdtClass,
  unified: Field.CgroupsUnified,
};

const obj = (v: unknown): NriMsg => (v && typeof v === 'object' ? (v as NriMsg) : {});
const list = (v: unknown): NriMsg[] => (Array.isArray(v) ? (v as NriMsg[]) : []);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);
const smap = (v: unknown): Record<string, string> => (v && typeof v === 'object' ? (v as Record<string, string>) : {});
/** An Optional* wrapper's value, or undefined when the wrapper is absent. */
const opt = (v: unknown): string | undefined => (v && typeof v === 'object' && 'value' in v ? String((v as { value: unknown }).value) : undefined);
const optNum = (v: unknown): number | undefined => {
  const s = opt(v);
  return s === undefined ? undefined : Number(s);
};

function removal(key: string): [string, boolean] {
  return key.startsWith('-') ? [key.slice(1), true] : [key, false];
}

/** Accumulates adjustments plugin by plugin with field ownership. */
export class AdjustmentMerger {
  readonly result = emptyAdjustment();
  private readonly owners = new Map<string, string>();

  /** Field owners as NRI's OwningPlugins reports them to validators: simple fields, and keyed (compound) ones. */
  readonly simpleOwners = new Map<number, string>();
  readonly compoundOwners = new Map<number, Map<string, string>>();

  /** Claims a field (NRI's Field enum number, with its key for keyed fields) for a plugin; label names it in errors. */
  private claim(field: string, plugin: string, fieldNo = 0, key?: string): void {
    const owner = this.owners.get(field);
    if (owner !== undefined && owner !== plugin) throw new AdjustmentConflictError(`plugins "${owner}" and "${plugin}" both tried to set ${field}`);
    this.owners.set(field, plugin);
    if (fieldNo === 0) return;
    if (key === undefined) this.simpleOwners.set(fieldNo, plugin);
    else {
      let m = this.compoundOwners.get(fieldNo);
      if (!m) this.compoundOwners.set(fieldNo, (m = new Map()));
      m.set(key, plugin);
    }
  }

  /** Adds one plugin's ContainerAdjustment (decoded); throws AdjustmentConflictError on a conflict. */
  add(plugin: string, adjust: NriMsg | null | undefined): void {
    if (!adjust) return;
    const r = this.result;
    for (const [k, v] of Object.entries(smap(adjust.annotations))) {
      const [key, remove] = removal(k);
      this.claim(`annotation "${key}"`, plugin, Field.Annotations, key);
      r.annotations.set(key, remove ? null : String(v));
    }
    for (const kv of list(adjust.env)) {
      const [key, remove] = removal(String(kv.key ?? ''));
      if (key === '') continue;
      this.claim(`environment variable "${key}"`, plugin, Field.Env, key);
      r.env.set(key, remove ? null : String(kv.value ?? ''));
    }
    for (const m of list(adjust.mounts)) {
      const [dest, remove] = removal(String(m.destination ?? ''));
      if (dest === '') continue;
      this.claim(`mount "${dest}"`, plugin, Field.Mounts, dest);
      r.mounts.set(dest, remove ? null : { destination: dest, type: String(m.type ?? ''), source: String(m.source ?? ''), options: strs(m.options) });
    }
    const args = strs(adjust.args);
    if (args.length > 0) {
      // a leading "" is NRI's override: it takes the args over from whoever set them before, without a conflict
      if (args[0] === '') this.owners.delete('args');
      this.claim('args', plugin, Field.Args);
      r.args = args[0] === '' ? args.slice(1) : args;
    }
    for (const l of list(adjust.rlimits)) {
      const type = String(l.type ?? '');
      if (type === '') continue;
      this.claim(`rlimit ${type}`, plugin, Field.Rlimits, type);
      r.rlimits.set(type, { soft: Number(l.soft ?? 0), hard: Number(l.hard ?? 0) });
    }
    const hooks = obj(adjust.hooks);
    if (Object.values(hooks).some((h) => Array.isArray(h) && h.length > 0)) this.unsupported('OCI hooks', plugin);
    if (list(adjust.CDI_devices).length > 0) this.unsupported('CDI devices', plugin);

    const linux = obj(adjust.linux);
    for (const d of list(linux.devices)) {
      const [path, remove] = removal(String(d.path ?? ''));
      if (path === '') continue;
      this.claim(`device "${path}"`, plugin, Field.Devices, path);
      const fileMode = optNum(d.file_mode);
      const uid = optNum(d.uid);
      const gid = optNum(d.gid);
      r.devices.set(
        path,
        remove
          ? null
          : { path, type: String(d.type ?? ''), major: Number(d.major ?? 0), minor: Number(d.minor ?? 0), ...(fileMode !== undefined ? { fileMode } : {}), ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}) },
      );
    }
    const oom = optNum(linux.oom_score_adj);
    if (oom !== undefined) {
      this.claim('oom_score_adj', plugin, Field.OomScoreAdj);
      r.oomScoreAdj = oom;
    }
    for (const [k, v] of Object.entries(smap(linux.sysctl))) {
      const [key, remove] = removal(k);
      this.claim(`sysctl "${key}"`, plugin, Field.Sysctl, key);
      r.sysctl.set(key, remove ? null : String(v));
    }
    if (linux.resources) this.addResources(plugin, obj(linux.resources));
    if (String(linux.cgroups_path ?? '') !== '') this.unsupported('cgroups path', plugin);
    if (linux.io_priority) this.unsupported('I/O priority', plugin);
    if (linux.seccomp_policy) this.unsupported('seccomp policy', plugin);
    if (list(linux.namespaces).length > 0) this.unsupported('Linux namespaces', plugin);
    if (Object.keys(smap(linux.net_devices)).length > 0) this.unsupported('network devices', plugin);
    if (linux.scheduler) this.unsupported('scheduling policy', plugin);
    if (linux.rdt) this.unsupported('RDT', plugin);
    if (linux.memory_policy) this.unsupported('memory policy', plugin);
  }

  private unsupported(what: string, plugin: string): void {
    this.result.unsupported.push(`${what} (plugin "${plugin}")`);
  }

  private set<K extends keyof NriResources>(key: K, field: string, plugin: string, value: NriResources[K] | undefined): void {
    if (value === undefined) return;
    this.claim(field, plugin, RESOURCE_FIELD[key]);
    this.result.resources[key] = value;
  }

  private addResources(plugin: string, res: NriMsg): void {
    const mem = obj(res.memory);
    this.set('memoryLimit', 'memory limit', plugin, optNum(mem.limit));
    this.set('memoryReservation', 'memory reservation', plugin, optNum(mem.reservation));
    this.set('memorySwap', 'memory swap limit', plugin, optNum(mem.swap));
    this.set('memorySwappiness', 'memory swappiness', plugin, optNum(mem.swappiness));
    const noOom = opt(mem.disable_oom_killer);
    this.set('disableOomKiller', 'OOM killer', plugin, noOom === undefined ? undefined : noOom === 'true');
    if (opt(mem.kernel) !== undefined || opt(mem.kernel_tcp) !== undefined) this.unsupported('kernel memory limits', plugin);
    const cpu = obj(res.cpu);
    this.set('cpuShares', 'CPU shares', plugin, optNum(cpu.shares));
    this.set('cpuQuota', 'CPU quota', plugin, optNum(cpu.quota));
    this.set('cpuPeriod', 'CPU period', plugin, optNum(cpu.period));
    if (String(cpu.cpus ?? '') !== '') this.set('cpusetCpus', 'cpuset CPUs', plugin, String(cpu.cpus));
    if (String(cpu.mems ?? '') !== '') this.set('cpusetMems', 'cpuset memory nodes', plugin, String(cpu.mems));
    if (opt(cpu.realtime_runtime) !== undefined || opt(cpu.realtime_period) !== undefined) this.unsupported('realtime CPU scheduling', plugin);
    const pids = res.pids ? obj(res.pids) : undefined;
    if (pids) this.set('pidsLimit', 'pids limit', plugin, Number(pids.limit ?? 0));
    for (const h of list(res.hugepage_limits)) {
      const size = String(h.page_size ?? '');
      this.claim(`hugepage limit ${size}`, plugin, Field.HugepageLimits, size);
      this.result.resources.hugepageLimits.set(size, Number(h.limit ?? 0));
    }
    this.set('blockioClass', 'block I/O class', plugin, opt(res.blockio_class));
    this.set('rdtClass', 'RDT class', plugin, opt(res.rdt_class));
    for (const [k, v] of Object.entries(smap(res.unified))) {
      this.claim(`unified cgroup "${k}"`, plugin, Field.CgroupsUnified, k);
      this.result.resources.unified.set(k, String(v));
    }
  }
}

/** Merges adjustments in plugin order (the order the plugins were called in). */
export function mergeAdjustments(parts: { plugin: string; adjust: NriMsg | null | undefined }[]): MergedAdjustment {
  const m = new AdjustmentMerger();
  for (const p of parts) m.add(p.plugin, p.adjust);
  return m.result;
}

/** A ContainerUpdate's resources, decoded (the same shape as an adjustment's). */
export function updateResources(plugin: string, update: NriMsg): NriResources {
  const m = new AdjustmentMerger();
  m.add(plugin, { linux: { resources: obj(obj(update.linux).resources) } });
  return m.result.resources;
}

/** A merged adjustment as NRI's ContainerAdjustment message (what validators are shown); "-" marks removals. */
export function adjustmentMessage(a: MergedAdjustment): NriMsg {
  const v = (x: number | undefined): NriMsg | null => (x === undefined ? null : { value: String(x) });
  const r = a.resources;
  return {
    annotations: Object.fromEntries([...a.annotations].map(([k, x]) => (x === null ? [`-${k}`, ''] : [k, x]))),
    env: [...a.env].map(([k, x]) => (x === null ? { key: `-${k}`, value: '' } : { key: k, value: x })),
    mounts: [...a.mounts].map(([d, m]) => (m === null ? { destination: `-${d}`, type: '', source: '', options: [] } : { ...m })),
    args: a.args ?? [],
    rlimits: [...a.rlimits].map(([type, l]) => ({ type, soft: String(l.soft), hard: String(l.hard) })),
    linux: {
      devices: [...a.devices].map(([path, d]) => (d === null ? { path: `-${path}` } : { path, type: d.type, major: String(d.major), minor: String(d.minor) })),
      resources: {
        memory: { limit: v(r.memoryLimit), reservation: v(r.memoryReservation), swap: v(r.memorySwap), swappiness: v(r.memorySwappiness), disable_oom_killer: r.disableOomKiller === undefined ? null : { value: r.disableOomKiller } },
        cpu: { shares: v(r.cpuShares), quota: v(r.cpuQuota), period: v(r.cpuPeriod), cpus: r.cpusetCpus ?? '', mems: r.cpusetMems ?? '' },
        hugepage_limits: [...r.hugepageLimits].map(([page_size, limit]) => ({ page_size, limit: String(limit) })),
        blockio_class: r.blockioClass === undefined ? null : { value: r.blockioClass },
        rdt_class: r.rdtClass === undefined ? null : { value: r.rdtClass },
        unified: Object.fromEntries(r.unified),
        ...(r.pidsLimit !== undefined ? { pids: { limit: String(r.pidsLimit) } } : {}),
      },
      oom_score_adj: v(a.oomScoreAdj),
      sysctl: Object.fromEntries([...a.sysctl].map(([k, x]) => (x === null ? [`-${k}`, ''] : [k, x]))),
    },
  };
}

/** NRI's OwningPlugins for one container: who set which field. */
export function ownersMessage(containerId: string, m: AdjustmentMerger): NriMsg {
  return {
    owners: {
      [containerId]: {
        simple: Object.fromEntries(m.simpleOwners),
        compound: Object.fromEntries([...m.compoundOwners].map(([f, keys]) => [f, { owners: Object.fromEntries(keys) }])),
      },
    },
  };
}
