// Read-only answers about containers: docker ps with its filters, inspect, and the logs endpoint's reader.
// They take views and never write container state (ContainerService does, and calls these).

import { join } from 'node:path';
import { InvalidParameterError, NotImplementedError } from '../errors.js';
import type { ImageService } from '../images/image-service.js';
import type { ContainerNetwork } from '../network/container-network.js';
import type { NetworkSettings } from '../network/types.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import { Filters, labelTermHolds } from '../util/filters.js';
import { parseTimestampParam } from '../util/time.js';
import type { ContainerDirs } from './container-dirs.js';
import { logLimits } from './log-options.js';
import { readLogBatches, type LogEntry } from './log-reader.js';
import { inspectEntry, listEntry } from './presenters.js';
import { isRunning } from './state.js';
import type { ContainerView } from './types.js';

const LIST_FILTERS = ['id', 'name', 'label', 'status', 'ancestor', 'before', 'since', 'exited', 'health', 'network', 'volume', 'publish', 'expose', 'is-task', 'label!'];

export interface ListOptions {
  all: boolean;
  limit?: number;
  size: boolean;
  filters?: string;
}

export interface QueryDeps {
  dirs: ContainerDirs;
  images: Pick<ImageService, 'tryResolve'>;
  layers: Pick<LayerStore, 'lowerDirs'>;
  network: Pick<ContainerNetwork, 'portList'>;
  /** A container's NetworkSettings from their owner, the network service (ContainerService.networkSettings). */
  settingsOf(c: ContainerView): NetworkSettings;
}

/** docker ps: newest first, filtered; `find` resolves the before/since references (NotFoundError otherwise). */
export function listContainers(
  containers: readonly ContainerView[],
  o: ListOptions,
  find: (ref: string) => ContainerView,
  d: QueryDeps,
): Record<string, unknown>[] {
  const f = Filters.parse(o.filters, LIST_FILTERS);
  let list = [...containers].sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
  const all = o.all || (o.limit !== undefined && o.limit > 0) || f.has('status') || f.has('exited');
  const beforeC = f.has('before') ? find(f.get('before')[0] ?? '') : undefined;
  const sinceC = f.has('since') ? find(f.get('since')[0] ?? '') : undefined;
  const isAncestor = (c: ContainerView, ref: string): boolean => {
    const img = d.images.tryResolve(ref);
    return img !== undefined && img.id === c.imageId;
  };
  list = list.filter((c) => {
    const running = isRunning(c.state);
    if (!all && !running) return false;
    if (!f.matchesAny('id', [c.id]) && !f.get('id').some((p) => c.id.startsWith(p))) return false;
    if (f.has('name') && !f.get('name').some((n) => new RegExp(n.replace(/^\//, '')).test(c.name))) return false;
    if (!f.matchesLabels(c.config.Labels)) return false;
    if (f.has('label!') && f.get('label!').some((t) => labelTermHolds(c.config.Labels ?? {}, t))) return false;
    if (!f.matches('status', c.state.Status)) return false;
    if (f.has('exited') && (running || !f.get('exited').includes(String(c.state.ExitCode)))) return false;
    if (f.has('health') && !f.get('health').includes(c.state.Health?.Status ?? 'none')) return false;
    if (f.has('ancestor') && !f.get('ancestor').some((a) => isAncestor(c, a))) return false;
    if (beforeC && c.created >= beforeC.created) return false;
    if (sinceC && c.created <= sinceC.created) return false;
    if (f.has('volume') && !f.get('volume').some((v) => c.mounts.some((m) => m.Name === v || m.Destination === v || m.Source === v))) return false;
    if (f.has('network')) {
      const nets = Object.keys(d.settingsOf(c).Networks ?? {});
      if (!f.get('network').some((n) => nets.includes(n) || (c.hostConfig.NetworkMode ?? '') === n)) return false;
    }
    if (f.has('expose') && !f.get('expose').some((p) => Object.keys(c.config.ExposedPorts ?? {}).includes(p.includes('/') ? p : `${p}/tcp`))) return false;
    if (f.has('publish')) {
      const ports = Object.entries((d.settingsOf(c).Ports ?? {}) as Record<string, { HostPort: string }[] | null>);
      const ok = f.get('publish').some((p) => {
        const [port, proto = 'tcp'] = p.split('/');
        return ports.some(([k, v]) => (v ?? []).some((b) => b.HostPort === port) && k.endsWith(`/${proto}`)) ||
          ports.some(([k, v]) => k === `${port}/${proto}` && v !== null);
      });
      if (!ok) return false;
    }
    return true;
  });
  if (o.limit !== undefined && o.limit > 0) list = list.slice(0, o.limit);
  return list.map((c) => listEntry(c, { ports: d.network.portList(c.id), networks: d.settingsOf(c).Networks ?? {} }));
}

/** docker inspect of one container. */
export function inspectContainer(c: ContainerView, d: QueryDeps): Record<string, unknown> {
  const dir = d.dirs.dir(c.id);
  const lower = c.chainId ? d.layers.lowerDirs(c.chainId) : [];
  return inspectEntry(
    c,
    {
      resolvConfPath: join(dir, 'resolv.conf'),
      hostnamePath: join(dir, 'hostname'),
      hostsPath: join(dir, 'hosts'),
      logPath: d.dirs.logPath(c.id),
      graphDriver: {
        Name: c.driver,
        Data:
          c.driver === 'overlay2'
            ? { LowerDir: [d.dirs.initLayer(c.id), ...lower].join(':'), MergedDir: join(dir, 'rootfs'), UpperDir: join(dir, 'upper'), WorkDir: join(dir, 'work') }
            : null,
      },
    },
    d.settingsOf(c),
  );
}

export interface LogsOptions {
  stdout: boolean;
  stderr: boolean;
  since?: string;
  until?: string;
  tail?: string;
  follow: boolean;
  signal: AbortSignal;
}

/**
 * The json-file log as Docker's logs endpoint serves it, in batches of entries (one per chunk read); `stopped`
 * resolves when the current run ends (a follower stops there).
 */
export function readContainerLogs(c: ContainerView, o: LogsOptions, dirs: ContainerDirs, stopped: Promise<void> | undefined): AsyncGenerator<LogEntry[]> {
  const limits = logLimits(c.hostConfig.LogConfig ?? { Type: 'json-file', Config: {} });
  if (!limits.enabled) throw new NotImplementedError('configured logging driver does not support reading');
  if (!o.stdout && !o.stderr) throw new InvalidParameterError('Bad parameters: you must choose at least one stream');
  let tail: number | undefined;
  if (o.tail !== undefined && o.tail !== '' && o.tail !== 'all') {
    if (!/^-?\d+$/.test(o.tail)) throw new InvalidParameterError(`invalid value for tail: ${o.tail}`);
    const n = Number(o.tail);
    tail = n < 0 ? undefined : n;
  }
  const since = o.since && o.since !== '0' ? parseTimestampParam('since', o.since) : undefined;
  const until = o.until && o.until !== '0' ? parseTimestampParam('until', o.until) : undefined;
  const follow = o.follow && (isRunning(c.state) || c.state.Status === 'restarting');
  // a CRI container logs in the kubelet's file, in the CRI format (the reader takes both)
  return readLogBatches(c.cri?.logPath || dirs.logPath(c.id), {
    stdout: o.stdout,
    stderr: o.stderr,
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(tail !== undefined ? { tail } : {}),
    follow,
    ...(stopped ? { stopped } : {}),
    signal: o.signal,
    maxFile: limits.maxFile,
  });
}
