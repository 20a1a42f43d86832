// A create request turned into a new container record: checked before anything is written, with dockerd's
// messages (fields Berth cannot honour, the runtime name, the platform of the image, resources, the deprecated
// container-wide MAC address), and completed with HostConfig's defaults and the image's config.

import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { InvalidParameterError, NotFoundError } from '../errors.js';
import type { ImageService } from '../images/image-service.js';
import { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformMatches } from '../registry/platform.js';
import type { CgroupManager } from '../runtime/cgroups/index.js';
import { nowNano, rfc3339Nano } from '../util/time.js';
import { commandOf, mergeImageConfig } from './config-merge.js';
import { resolveLogConfig } from './log-options.js';
import { generateContainerName, validateContainerName } from './names.js';
import { adaptResources, verifyResources } from './resources.js';
import { validateRestartPolicy } from './restart-policy.js';
import { containerCapabilities, parseSecurityOpts } from './spec-builder.js';
import { emptyState } from './state.js';
import type { ContainerConfig, ContainerRecord, CriAttachment, HostConfig } from './types.js';

/** The host's CPU count, read once: os.cpus() reads /proc/cpuinfo and /proc/stat, ~1 ms, on every create. */
let cpuCount: number | undefined;
function hostCpuCount(): number {
  cpuCount ??= os.cpus().length;
  return cpuCount;
}

export interface CreateRequest {
  name?: string;
  /** `platform` of the create request (os[/arch[/variant]]): the image must be built for it. */
  platform?: string;
  /** Set by the CRI layer only (never from the Docker API). */
  cri?: CriAttachment;
  /** The new container's ID, chosen by the CRI layer (NRI plugins see it before the create); never from the Docker API. */
  id?: string;
  body: Partial<ContainerConfig> & { HostConfig?: HostConfig; NetworkingConfig?: ContainerRecord['networkingConfig'] };
}

/** A new container ID: 64 hex digits. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

export interface NewRecordDeps {
  images: Pick<ImageService, 'resolve'>;
  cgroups: Pick<CgroupManager, 'version' | 'sysInfo'>;
  /** daemon.json log-driver and log-opts. */
  logConfig: { type: string; opts: Record<string, string> };
  /** The snapshot driver the container's layers use. */
  driver: string;
}

/**
 * The record of a new container (not yet stored: its generated name may still change if taken), the creation
 * time for the store, and the warnings for the client.
 */
export async function newContainerRecord(req: CreateRequest, d: NewRecordDeps): Promise<{ record: ContainerRecord; created: bigint; warnings: string[] }> {
  const body = req.body ?? {};
  const hc: HostConfig = { ...(body.HostConfig ?? {}) };
  const warnings: string[] = [];
  if (typeof body.Image !== 'string' || body.Image === '') {
    throw new InvalidParameterError('Config cannot be empty in order to create a container');
  }
  const name = req.name ? validateContainerName(req.name) : undefined;
  const image = d.images.resolve(body.Image);
  if (req.platform) checkImagePlatform(body.Image, image.config, req.platform);
  // A pod's containers join their sandbox's UTS namespace; the Docker API itself has no container: UTS mode.
  refuseUnsupportedFields(hc, { utsFromContainer: req.cri !== undefined });
  if ((hc.CgroupnsMode ?? '') === '') hc.CgroupnsMode = d.cgroups.version === '2' ? 'private' : 'host';

  // Validation with dockerd's messages, before anything is written.
  validateRestartPolicy(hc.RestartPolicy, hc.AutoRemove === true);
  parseSecurityOpts(hc.SecurityOpt);
  containerCapabilities(hc);
  const verified = verifyResources(hc as Parameters<typeof verifyResources>[0], await d.cgroups.sysInfo(), { numCpus: hostCpuCount() });
  Object.assign(hc, adaptResources(verified.resources));
  warnings.push(...verified.warnings);
  const logConfig = resolveLogConfig(hc.LogConfig, d.logConfig);
  hc.Runtime = resolveRuntime(hc.Runtime);
  const networkingConfig = migrateContainerMac(body, hc.NetworkMode, warnings);
  if (hc.OomScoreAdj !== undefined && (hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000)) {
    throw new InvalidParameterError(`Invalid value ${hc.OomScoreAdj}, range for oom score adj is [-1000, 1000]`);
  }
  for (const u of hc.Ulimits ?? []) {
    if (u.Soft > u.Hard) throw new InvalidParameterError(`ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
  }

  if (req.id !== undefined && !/^[0-9a-f]{64}$/.test(req.id)) throw new InvalidParameterError(`invalid container ID "${req.id}"`);
  const id = req.id ?? newContainerId();
  const config = mergeImageConfig({ ...body, Image: body.Image }, image.config.config, id);
  const { path, args } = commandOf(config);
  const created = nowNano();
  const record: ContainerRecord = {
    id,
    name: name ?? generateContainerName(),
    created: rfc3339Nano(created),
    imageId: image.id,
    path,
    args,
    config,
    hostConfig: {
      NetworkMode: 'bridge',
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      ...hc,
      LogConfig: logConfig,
      ...(hc.NetworkMode === undefined || hc.NetworkMode === '' || hc.NetworkMode === 'default' ? { NetworkMode: 'bridge' } : {}),
      // Config.NetworkDisabled (docker-py network_disabled=True): no network at all, as network mode none.
      ...(body.NetworkDisabled === true ? { NetworkMode: 'none' } : {}),
    },
    networkingConfig,
    state: emptyState(),
    restartCount: 0,
    mounts: [],
    chainId: image.chainId,
    hasBeenStarted: false,
    manuallyStopped: false,
    driver: d.driver,
    ...(req.cri ? { cri: req.cri } : {}),
  };
  return { record, created, warnings };
}


/** The runtimes a container may name: Berth's shim runs every container, reported as dockerd's default "runc". */
const RUNTIMES = new Set(['runc', 'io.containerd.runc.v2']);

export function resolveRuntime(requested: string | undefined): string {
  if (requested === undefined || requested === '') return 'runc';
  if (!RUNTIMES.has(requested)) throw new InvalidParameterError(`unknown or invalid runtime name: ${requested}`);
  return requested;
}

/**
 * The container-wide Config.MacAddress (deprecated in API 1.44, still what docker-py sends) applies to the endpoint
 * of the container's own network, as dockerd migrates it; an endpoint MAC that disagrees is refused.
 */
export function migrateContainerMac(
  body: { MacAddress?: string; NetworkingConfig?: ContainerRecord['networkingConfig'] },
  networkMode: string | undefined,
  warnings: string[],
): ContainerRecord['networkingConfig'] {
  const nc = body.NetworkingConfig ?? {};
  const mac = body.MacAddress;
  if (!mac) return nc;
  const mode = networkMode === undefined || networkMode === '' || networkMode === 'default' ? 'bridge' : networkMode;
  if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
    throw new InvalidParameterError('conflicting options: mac-address and the network mode');
  }
  const endpoints = { ...(nc.EndpointsConfig ?? {}) };
  const key = endpoints[mode] !== undefined ? mode : endpoints.default !== undefined ? 'default' : mode;
  const ep = endpoints[key] ?? {};
  const epMac = typeof ep.MacAddress === 'string' ? ep.MacAddress : '';
  if (epMac !== '' && epMac.toLowerCase() !== mac.toLowerCase()) {
    throw new InvalidParameterError('the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty');
  }
  endpoints[key] = { ...ep, MacAddress: mac };
  warnings.push('The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig instead.');
  return { ...nc, EndpointsConfig: endpoints };
}

/**
 * `POST /containers/create?platform=…`: an image built for another platform is "not found" for it, with dockerd's
 * message, so the docker CLI goes on to pull the right one.
 */
export function checkImagePlatform(ref: string, image: { os?: string; architecture?: string; variant?: string }, platform: string): void {
  const want = parsePlatform(platform);
  const host = hostPlatform();
  const actual = normalizePlatform({
    os: image.os || 'linux',
    architecture: image.architecture || host.architecture,
    ...(image.variant ? { variant: image.variant } : {}),
  });
  if (!platformMatches(actual, want)) {
    // containerd's Format drops arm64's default variant (linux/arm64, not linux/arm64/v8).
    const fmt = (p: typeof want): string => formatPlatform(p.architecture === 'arm64' && p.variant === 'v8' ? { os: p.os, architecture: p.architecture } : p);
    throw new NotFoundError(`image with reference ${ref} was found but does not match the specified platform: wanted ${fmt(want)}, actual: ${fmt(actual)}`);
  }
}

const NAMESPACE_MODES: ReadonlyArray<readonly [key: 'IpcMode' | 'PidMode' | 'UTSMode' | 'CgroupnsMode', label: string, modes: readonly string[], container: boolean]> = [
  ['IpcMode', 'IPC mode', ['', 'none', 'private', 'shareable', 'host'], true],
  ['PidMode', 'PID mode', ['', 'host'], true],
  ['UTSMode', 'UTS mode', ['', 'host'], false],
  ['CgroupnsMode', 'cgroup namespace mode', ['', 'host', 'private'], false],
];

/** Go's %v of [][]string: [[gpu] [compute utility]]. */
function goStringLists(v: unknown): string {
  const lists = Array.isArray(v) ? v : [];
  return `[${lists.map((l) => `[${(Array.isArray(l) ? l : []).map(String).join(' ')}]`).join(' ')}]`;
}

/**
 * HostConfig fields Berth cannot honour are refused with dockerd's own messages (what dockerd says when the
 * feature is absent on its host), never accepted and dropped; unknown namespace modes as dockerd's verification.
 */
export function refuseUnsupportedFields(hc: HostConfig, o: { utsFromContainer?: boolean } = {}): void {
  for (const [key, label, modes, container] of NAMESPACE_MODES) {
    const v = hc[key] ?? '';
    const joins = container || (key === 'UTSMode' && o.utsFromContainer === true);
    if (typeof v !== 'string' || !(modes.includes(v) || (joins && /^container:.+/.test(v)))) {
      throw new InvalidParameterError(`invalid ${label}: ${String(v)}`);
    }
  }
  // No device drivers (NVIDIA, CDI) are registered: dockerd's answer when none matches the request.
  const requests = Array.isArray(hc.DeviceRequests) ? (hc.DeviceRequests as { Driver?: string; Capabilities?: unknown }[]) : [];
  for (const r of requests) {
    throw new InvalidParameterError(`could not select device driver "${r.Driver ?? ''}" with capabilities: ${goStringLists(r.Capabilities)}`);
  }
  const isolation = hc.Isolation ?? '';
  if (isolation !== '' && isolation !== 'default') {
    throw new InvalidParameterError(`Invalid isolation: ${JSON.stringify(isolation)} - linux only supports 'default'`);
  }
  // Without user-namespace remapping (Berth has none), "host" is what every container gets.
  const userns = hc.UsernsMode ?? '';
  if (userns !== '' && userns !== 'host') throw new InvalidParameterError(`invalid USER mode: ${String(userns)}`);
  if (typeof hc.Cgroup === 'string' && hc.Cgroup !== '') {
    throw new InvalidParameterError(`sharing another container's cgroup (Cgroup: ${hc.Cgroup}) is not supported by Berth`);
  }
  // Per-container size limits need overlay on xfs with project quotas, which Berth's storage does not set up.
  if (hc.StorageOpt && typeof hc.StorageOpt === 'object' && Object.keys(hc.StorageOpt).length > 0) {
    throw new InvalidParameterError("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
  }
}
