import type { ContainerConfigJson } from '../images/image-config.js';
import { InvalidParameterError } from '../errors.js';
import type { ContainerConfig } from './types.js';

function envKey(e: string): string {
  const i = e.indexOf('=');
  return i < 0 ? e : e.slice(0, i);
}

/**
 * dockerd's merge of the image config into a new container's Config (daemon/commit.go merge):
 * user values win; image Env entries the user did not set are appended; Cmd comes from the image
 * only when the user gave neither Cmd nor Entrypoint.
 */
export function mergeImageConfig(user: Partial<ContainerConfig>, image: ContainerConfigJson | undefined, id: string): ContainerConfig {
  const img = image ?? {};
  const env = [...(user.Env ?? [])];
  const keys = new Set(env.map(envKey));
  for (const e of img.Env ?? []) if (!keys.has(envKey(e))) env.push(e);

  // `--entrypoint ""` (Entrypoint [""]) clears the image's entrypoint, as dockerd does.
  const clearEntrypoint = user.Entrypoint?.length === 1 && user.Entrypoint[0] === '';
  let entrypoint = !clearEntrypoint && user.Entrypoint && user.Entrypoint.length > 0 ? user.Entrypoint : null;
  let cmd = user.Cmd && user.Cmd.length > 0 ? user.Cmd : null;
  if (!entrypoint && !clearEntrypoint) {
    entrypoint = img.Entrypoint && img.Entrypoint.length > 0 ? img.Entrypoint : null;
    if (!cmd) cmd = img.Cmd && img.Cmd.length > 0 ? img.Cmd : null;
  }
  // `--entrypoint ""` sends [""]: the image's entrypoint (and its Cmd) are reset, as dockerd's mergeAndVerifyConfig.
  if (entrypoint?.length === 1 && entrypoint[0] === '') entrypoint = null;
  if (!entrypoint && !cmd) throw new InvalidParameterError('No command specified');

  const exposed = { ...(img.ExposedPorts ?? {}), ...(user.ExposedPorts ?? {}) };
  const volumes = { ...(img.Volumes ?? {}), ...(user.Volumes ?? {}) };
  const merged: ContainerConfig = {
    ...user,
    Hostname: user.Hostname || id.slice(0, 12),
    Domainname: user.Domainname ?? '',
    User: user.User || img.User || '',
    AttachStdin: user.AttachStdin ?? false,
    AttachStdout: user.AttachStdout ?? false,
    AttachStderr: user.AttachStderr ?? false,
    Tty: user.Tty ?? false,
    OpenStdin: user.OpenStdin ?? false,
    StdinOnce: user.StdinOnce ?? false,
    Env: env,
    Cmd: cmd,
    Image: user.Image ?? '',
    Volumes: Object.keys(volumes).length > 0 ? volumes : null,
    WorkingDir: user.WorkingDir || img.WorkingDir || '',
    Entrypoint: entrypoint,
    OnBuild: user.OnBuild ?? null,
    Labels: { ...(img.Labels ?? {}), ...(user.Labels ?? {}) },
  };
  if (Object.keys(exposed).length > 0) merged.ExposedPorts = exposed;
  else delete merged.ExposedPorts;
  if (!merged.StopSignal && img.StopSignal) merged.StopSignal = img.StopSignal;
  if (!user.Healthcheck && img.Healthcheck) merged.Healthcheck = img.Healthcheck;
  else if (user.Healthcheck && img.Healthcheck) {
    const h = { ...user.Healthcheck } as Record<string, unknown>;
    const ih = img.Healthcheck;
    if (!Array.isArray(h.Test) || h.Test.length === 0) h.Test = ih.Test;
    for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries']) if (!h[k]) h[k] = ih[k];
    merged.Healthcheck = h;
  }
  return merged;
}

/** The process the container runs: Entrypoint + Cmd, as Path and Args in inspect. */
export function commandOf(config: ContainerConfig): { path: string; args: string[] } {
  const argv = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
  return { path: argv[0] ?? '', args: argv.slice(1) };
}
