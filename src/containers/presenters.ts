import { humanDuration } from '../util/human-duration.js';
import { inspectMounts } from '../volumes/container-mounts.js';
import { inspectState, ZERO_TIME } from './state.js';
import type { ContainerView } from './types.js';
import type { ContainerMount } from '../volumes/container-mounts.js';


/** The Status column of `docker ps`, as dockerd words it. */
export function statusText(c: ContainerView, now = Date.now()): string {
  const s = c.state;
  switch (s.Status) {
    case 'created':
      return 'Created';
    case 'running':
    case 'paused': {
      let t = `Up ${humanDuration(now - Date.parse(s.StartedAt))}`;
      if (s.Paused) t += ' (Paused)';
      if (s.Health && s.Health.Status !== 'none') {
        t += s.Health.Status === 'starting' ? ' (health: starting)' : ` (${s.Health.Status})`;
      }
      return t;
    }
    case 'restarting':
      return `Restarting (${s.ExitCode}) ${humanDuration(now - Date.parse(s.FinishedAt))} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    case 'exited':
      if (s.FinishedAt === ZERO_TIME) return 'Created';
      return `Exited (${s.ExitCode}) ${humanDuration(now - Date.parse(s.FinishedAt))} ago`;
  }
}

/** `docker ps` COMMAND: dockerd's list form, arguments with spaces in single quotes. */
export function commandText(c: ContainerView): string {
  if (c.args.length === 0) return c.path;
  return `${c.path} ${c.args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}`;
}

/** The ImageSummary name shown for a container: the reference it was created with. */
export function listEntry(c: ContainerView, extra: { ports: unknown[]; networks: Record<string, unknown>; sizeRw?: number; sizeRootFs?: number }): Record<string, unknown> {
  const entry: Record<string, unknown> = {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: c.config.Image,
    ImageID: c.imageId,
    Command: commandText(c),
    Created: Math.floor(Date.parse(c.created) / 1000),
    Ports: extra.ports,
    Labels: c.config.Labels ?? {},
    State: c.state.Status,
    Status: statusText(c),
    HostConfig: { NetworkMode: c.hostConfig.NetworkMode ?? 'default' },
    NetworkSettings: { Networks: extra.networks },
    Mounts: inspectMounts(c.mounts as readonly ContainerMount[]),
  };
  if (extra.sizeRw !== undefined) entry.SizeRw = extra.sizeRw;
  if (extra.sizeRootFs !== undefined) entry.SizeRootFs = extra.sizeRootFs;
  return entry;
}

export interface InspectPaths {
  resolvConfPath: string;
  hostnamePath: string;
  hostsPath: string;
  logPath: string;
  graphDriver: { Name: string; Data: Record<string, string> | null };
}

/** ContainerInspect, field for field as dockerd serves it. */
export function inspectEntry(c: ContainerView, paths: InspectPaths, networkSettings: unknown, sizes?: { rw: number; rootFs: number }): Record<string, unknown> {
  const out: Record<string, unknown> = {
    Id: c.id,
    Created: c.created,
    Path: c.path,
    Args: c.args,
    State: inspectState(c.state),
    Image: c.imageId,
    ResolvConfPath: paths.resolvConfPath,
    HostnamePath: paths.hostnamePath,
    HostsPath: paths.hostsPath,
    LogPath: paths.logPath,
    Name: `/${c.name}`,
    RestartCount: c.restartCount,
    Driver: c.driver,
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: c.hostConfig,
    GraphDriver: paths.graphDriver,
    Mounts: inspectMounts(c.mounts as readonly ContainerMount[]),
    Config: c.config,
    NetworkSettings: networkSettings,
  };
  if (sizes) {
    out.SizeRw = sizes.rw;
    out.SizeRootFs = sizes.rootFs;
  }
  return out;
}
