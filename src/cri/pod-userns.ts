// Pods in a user namespace (NamespaceOption.userns_options, mode POD): the kubelet's id maps checked, and the
// holder's network namespace put at the sandbox's netns path. See docs/cri.md ("User namespaces").

import { readFileSync } from 'node:fs';
import { release as osRelease } from 'node:os';
import { InvalidParameterError } from '../errors.js';
import type { DeepReadonly, PodUserns } from '../containers/types.js';
import { MNT_DETACH, MS_BIND, nativeAddon } from '../native.js';
import type { OciIdMapping } from '../runtime/oci-spec.js';
import type { Logger } from '../util/logger.js';
import { runTool } from '../util/run-tool.js';
import { msg, msgList, num, str, type Msg } from './messages.js';

const MAX_ID = 2 ** 32 - 1;

/**
 * Whether pods can have user namespaces here: user namespaces allowed (user.max_user_namespaces), and a kernel whose
 * overlayfs takes idmapped layers (5.19).
 */
export function userNamespacesSupported(release = osRelease(), maxUserNamespaces = readMaxUserNamespaces()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  const major = Number(m?.[1] ?? 0);
  const minor = Number(m?.[2] ?? 0);
  return maxUserNamespaces > 0 && (major > 5 || (major === 5 && minor >= 19));
}

function readMaxUserNamespaces(): number {
  try {
    return Number(readFileSync('/proc/sys/user/max_user_namespaces', 'utf8').trim());
  } catch {
    return 0;
  }
}

function mapping(kind: 'uid' | 'gid', list: unknown): OciIdMapping[] {
  const l = msgList(list);
  // as containerd: one range that maps the container's root (the kubelet allocates exactly that)
  if (l.length !== 1) throw new InvalidParameterError(`user namespace mode POD needs exactly one ${kind} mapping, got ${l.length}`);
  const m = l[0] ?? {};
  const containerID = num(m.container_id);
  const hostID = num(m.host_id);
  const size = num(m.length);
  if (containerID !== 0) throw new InvalidParameterError(`user namespace ${kind} mapping must map container ID 0, got ${containerID}`);
  if (!Number.isInteger(hostID) || !Number.isInteger(size) || size < 1 || hostID < 0 || hostID + size > MAX_ID) {
    throw new InvalidParameterError(`invalid user namespace ${kind} mapping: host ID ${hostID}, length ${size}`);
  }
  if (hostID === 0) throw new InvalidParameterError(`user namespace ${kind} mapping must not map the host's root (host ID 0)`);
  return [{ containerID, hostID, size }];
}

/**
 * The pod's user namespace from its NamespaceOption: undefined for NODE (or no userns_options: the host's, as
 * before); POD with the kubelet's maps; CONTAINER and TARGET do not exist for user namespaces.
 */
export function podUserns(nso: unknown, supported = userNamespacesSupported()): Omit<PodUserns, 'join'> | undefined {
  const o = msg(nso);
  if (o.userns_options === null || o.userns_options === undefined) return undefined;
  const u = msg(o.userns_options);
  const mode = str(u.mode) || 'POD';
  if (mode === 'NODE') return undefined;
  if (mode !== 'POD') throw new InvalidParameterError(`unsupported user namespace mode: ${mode}`);
  if (!supported) throw new InvalidParameterError('user namespaces are not supported on this host (user.max_user_namespaces is 0, or Linux is older than 5.19)');
  for (const [ns, m] of [['network', o.network], ['pid', o.pid], ['ipc', o.ipc]] as const) {
    if (m === 'NODE') throw new InvalidParameterError(`a pod in a user namespace cannot use the host's ${ns} namespace`);
  }
  return { uidMappings: mapping('uid', u.uids), gidMappings: mapping('gid', u.gids) };
}

/**
 * The container paths of a CreateContainer's mounts the kubelet asks idmapped (Mount.uidMappings/gidMappings, set on
 * every mount of a pod in a user namespace): the pod's own maps only (an idmapping is a user namespace; Berth has the
 * pod's), and not on image volumes (an overlay cannot be idmapped; they are read-only).
 */
export function idmappedMounts(mounts: readonly Msg[], userns: DeepReadonly<PodUserns> | undefined): string[] {
  const out: string[] = [];
  for (const m of mounts) {
    const uids = msgList(m.uidMappings);
    const gids = msgList(m.gidMappings);
    if (uids.length === 0 && gids.length === 0) continue;
    const dst = str(m.container_path);
    if (!userns) throw new InvalidParameterError(`mount ${dst}: an idmapped mount needs a pod in a user namespace`);
    const same = (l: Msg[], maps: DeepReadonly<OciIdMapping[]>): boolean =>
      l.length === maps.length && l.every((x, i) => num(x.container_id) === maps[i]?.containerID && num(x.host_id) === maps[i]?.hostID && num(x.length) === maps[i]?.size);
    if (!same(uids, userns.uidMappings) || !same(gids, userns.gidMappings)) {
      throw new InvalidParameterError(`mount ${dst}: idmapped mounts with other mappings than the pod's user namespace are not supported`);
    }
    if (!m.image) out.push(dst);
  }
  return out;
}

/**
 * Puts the network namespace of the holder `pid` (made inside the pod's user namespace) at `netnsPath`, the
 * sandbox's path, in place of the one the network service made there, and brings its lo up; CNI then runs against
 * that path, and the network service removes it as any other when the holder's run ends.
 */
export async function bindHolderNetns(netnsPath: string, pid: number, log: Logger): Promise<void> {
  const addon = nativeAddon();
  addon.umount2(netnsPath, MNT_DETACH);
  addon.mount(`/proc/${pid}/ns/net`, netnsPath, '', MS_BIND, '');
  await runTool(log, 'nsenter', [`--net=${netnsPath}`, 'ip', 'link', 'set', 'dev', 'lo', 'up']);
}
