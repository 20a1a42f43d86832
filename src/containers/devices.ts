// Devices for a container (container policy; src/runtime gets the resulting OCI devices and cgroup rules):
// dockerd's default device rules, --device-cgroup-rule, --device (moby daemon/oci_linux.go WithDevices,
// oci/devices_linux.go DevicesFromPath), privileged containers' host devices, runc's AllowedDevices.

import { type Dirent, promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidParameterError } from '../errors.js';
import { DEFAULT_DEVICE_CGROUP_RULES, RUNTIME_ALLOWED_DEVICE_RULES } from '../runtime/defaults.js';
import type { LinuxDevice, LinuxDeviceCgroup } from '../runtime/cgroups/resources.js';
import { errnoCode } from '../runtime/cgroups/cgroup.js';
import { type DeviceMapping, splitDevNumber, syscallErrorText } from './resources.js';

const bad = (message: string): InvalidParameterError => new InvalidParameterError(message);

/** dockerd's default cgroup device rules (oci DefaultLinuxSpec): deny all, allow the basic nodes, deny /dev/fuse. */
export function defaultDeviceRules(): LinuxDeviceCgroup[] {
  return DEFAULT_DEVICE_CGROUP_RULES.map((r) => ({ ...r }));
}

/** The rules runc appends after the spec's (AllowedDevices); the executor appends them at create, as runc does. */
export function runtimeAllowedDeviceRules(): LinuxDeviceCgroup[] {
  return RUNTIME_ALLOWED_DEVICE_RULES.map((r) => ({ ...r }));
}

const DEVICE_CGROUP_RULE = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/;
const INT64_MAX = 9223372036854775807n;

/** `--device-cgroup-rule 'c 42:* rmw'` → an allow rule; dockerd's messages on bad input. */
export function parseDeviceCgroupRule(rule: string): LinuxDeviceCgroup {
  const m = DEVICE_CGROUP_RULE.exec(rule);
  if (m === null || m[1] === undefined || m[2] === undefined || m[3] === undefined || m[4] === undefined) {
    throw bad(`invalid device cgroup rule format: '${rule}'`);
  }
  const num = (s: string, what: string): number => {
    if (s === '*') return -1;
    if (BigInt(s) > INT64_MAX) throw bad(`invalid ${what} value in device cgroup rule format: '${rule}'`);
    return Number(s);
  };
  return {
    allow: true,
    type: m[1] as 'a' | 'b' | 'c',
    major: num(m[2], 'major'),
    minor: num(m[3], 'minor'),
    access: m[4],
  };
}

/** A device node on the host, or undefined if `p` is not one (lstat: symlinks are not devices). */
async function deviceFromPath(p: string): Promise<LinuxDevice | undefined> {
  const st = await fsp.lstat(p, { bigint: true });
  let type: LinuxDevice['type'];
  if (st.isBlockDevice()) type = 'b';
  else if (st.isCharacterDevice()) type = 'c';
  else if (st.isFIFO()) type = 'p';
  else return undefined;
  const { major, minor } = splitDevNumber(st.rdev);
  return { path: p, type, major, minor, fileMode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid) };
}

/** Follow a symlink only when it lands under /dev (moby: no redirecting --device to arbitrary host files). */
async function resolveDevicePath(p: string): Promise<string> {
  const clean = path.resolve(p);
  try {
    const real = await fsp.realpath(clean);
    if (real === '/dev' || real.startsWith('/dev/')) return real;
  } catch {
    // keep the path as given; the lstat below reports the error
  }
  return clean;
}

const PERMISSIONS = /^[rwm]{1,3}$/;

/**
 * `--device host[:container[:perms]]`: the node(s) to create and their allow rules. A directory adds every device
 * below it. Errors: dockerd's "error gathering device information while adding custom device …".
 */
export async function devicesFromPath(
  pathOnHost: string,
  pathInContainer: string,
  permissions: string,
): Promise<{ devices: LinuxDevice[]; rules: LinuxDeviceCgroup[] }> {
  const access = permissions === '' ? 'rwm' : permissions;
  if (!PERMISSIONS.test(access)) throw bad(`invalid device mode: ${permissions}`);
  const resolved = await resolveDevicePath(pathOnHost);
  const devices: LinuxDevice[] = [];
  const rules: LinuxDeviceCgroup[] = [];
  const add = (d: LinuxDevice): void => {
    devices.push(d);
    // FIFOs are created but not subject to the devices controller.
    if (d.type === 'b' || d.type === 'c') rules.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access });
  };
  let reason: string;
  try {
    const dev = await deviceFromPath(resolved);
    if (dev !== undefined) {
      add({ ...dev, path: pathInContainer });
      return { devices, rules };
    }
    reason = 'not a device node';
    const st = await fsp.stat(resolved);
    if (st.isDirectory()) {
      for (const child of await walkDevices(resolved)) {
        add({ ...child, path: pathInContainer + child.path.slice(resolved.length) });
      }
    }
  } catch (err) {
    reason = syscallErrorText(err);
  }
  if (devices.length > 0) return { devices, rules };
  throw bad(`error gathering device information while adding custom device "${pathOnHost}": ${reason}`);
}

/** Every device node below `dir` (depth first, errors ignored). */
async function walkDevices(dir: string): Promise<LinuxDevice[]> {
  const out: LinuxDevice[] = [];
  let entries: Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      out.push(...(await walkDevices(full)));
      continue;
    }
    try {
      const d = await deviceFromPath(await resolveDevicePath(full));
      if (d !== undefined) out.push({ ...d, path: full });
    } catch {
      // ignore the entry
    }
  }
  return out;
}

/** Host devices for --privileged (containerd oci.HostDevices): /dev minus pts, shm, fd, mqueue, console… */
export async function hostDevices(devRoot = '/dev'): Promise<LinuxDevice[]> {
  const skipDirs = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);
  const walk = async (dir: string): Promise<LinuxDevice[]> => {
    const out: LinuxDevice[] = [];
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return out;
      throw err;
    }
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!skipDirs.has(e.name)) out.push(...(await walk(full)));
        continue;
      }
      if (e.name === 'console') continue;
      try {
        const d = await deviceFromPath(full);
        if (d !== undefined) out.push(d);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
    }
    return out;
  };
  return walk(devRoot);
}

export interface DeviceConfigInput {
  Privileged?: boolean;
  Devices?: DeviceMapping[] | null;
  DeviceCgroupRules?: string[] | null;
}

/**
 * linux.devices and linux.resources.devices for a container, as dockerd's WithDevices produces them:
 * unprivileged = dockerd's defaults, then one allow per --device node, then the --device-cgroup-rule rules
 * (the executor appends runc's AllowedDevices at create); privileged = all host devices plus the mapped
 * ones, and a single `a *:* rwm` allow.
 * `warnings` are log-level notes (dockerd logs them; they are not API warnings).
 */
export async function buildDeviceConfig(
  hc: DeviceConfigInput,
  opts: { devRoot?: string } = {},
): Promise<{ devices: LinuxDevice[]; rules: LinuxDeviceCgroup[]; notes: string[] }> {
  const devices: LinuxDevice[] = [];
  const notes: string[] = [];
  if (hc.Privileged === true) {
    devices.push(...(await hostDevices(opts.devRoot)));
    for (const m of hc.Devices ?? []) {
      const perms = m.CgroupPermissions ?? 'rwm';
      if (perms !== 'rwm') notes.push(`custom ${perms} permissions for device ${m.PathOnHost} are ignored in privileged mode`);
      if (m.PathOnHost === m.PathInContainer) {
        notes.push(`path in container ${m.PathInContainer} already exists in privileged mode`);
        continue;
      }
      devices.push(...(await devicesFromPath(m.PathOnHost, m.PathInContainer, 'rwm')).devices);
    }
    return { devices, rules: [{ allow: true, access: 'rwm' }], notes };
  }
  const rules = defaultDeviceRules();
  for (const m of hc.Devices ?? []) {
    const got = await devicesFromPath(m.PathOnHost, m.PathInContainer, m.CgroupPermissions ?? 'rwm');
    devices.push(...got.devices);
    rules.push(...got.rules);
  }
  for (const rule of hc.DeviceCgroupRules ?? []) rules.push(parseDeviceCgroupRule(rule));
  return { devices, rules, notes };
}
