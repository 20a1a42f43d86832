import { InvalidParameterError } from '../../errors.js';
import { parseIp } from '../ipam.js';

/** Docker's port-binding shapes: `"80/tcp": [{HostIp, HostPort}]`, ephemeral ports, host port ranges. */

export const EPHEMERAL_FIRST = 32768;
export const EPHEMERAL_LAST = 60999;

export type Proto = 'tcp' | 'udp';

export interface PortBindingSpec {
  HostIp?: string;
  HostPort?: string;
}

export type PortBindingMap = Record<string, PortBindingSpec[] | null | undefined>;

/** One published port after allocation. */
export interface PublishedPort {
  proto: Proto;
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

export interface WantedPort {
  proto: Proto;
  containerPort: number;
  hostIp: string;
  /** inclusive host port range; [0,0] means any ephemeral port */
  hostFirst: number;
  hostLast: number;
}

export function parsePortKey(key: string): { port: number; proto: Proto | 'sctp' } {
  const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/i.exec(key.trim());
  if (!m) throw new InvalidParameterError(`invalid port specification: "${key}"`);
  const port = Number(m[1]);
  if (port < 1 || port > 65535) throw new InvalidParameterError(`invalid port specification: "${key}"`);
  return { port, proto: (m[2]?.toLowerCase() ?? 'tcp') as Proto | 'sctp' };
}

export function parseHostPort(s: string | undefined): [number, number] {
  const v = (s ?? '').trim();
  if (v === '' || v === '0') return [0, 0];
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  if (!m) throw new InvalidParameterError(`invalid hostPort: ${v}`);
  const a = Number(m[1]);
  const b = m[2] !== undefined ? Number(m[2]) : a;
  if (a < 1 || b > 65535 || b < a) throw new InvalidParameterError(`invalid hostPort: ${v}`);
  return [a, b];
}

/**
 * What a container asks to publish: explicit bindings, plus with publishAll every exposed port
 * without a binding gets an ephemeral host port. SCTP is refused (no proxy for it).
 */
export function wantedPorts(bindings: PortBindingMap | undefined, publishAll: boolean, exposed: readonly string[]): WantedPort[] {
  const out: WantedPort[] = [];
  const keys = new Set<string>();
  for (const [key, list] of Object.entries(bindings ?? {})) {
    const { port, proto } = parsePortKey(key);
    if (proto === 'sctp') throw new InvalidParameterError('publishing SCTP ports is not supported by Berth');
    keys.add(`${port}/${proto}`);
    for (const b of list ?? []) {
      const hostIp = (b.HostIp ?? '').trim();
      if (hostIp !== '' && parseIp(hostIp) === undefined) {
        throw new InvalidParameterError(`invalid host IP address: ${hostIp} (IPv6 bindings are not supported)`);
      }
      const [first, last] = parseHostPort(b.HostPort);
      out.push({ proto, containerPort: port, hostIp: hostIp === '0.0.0.0' ? '' : hostIp, hostFirst: first, hostLast: last });
    }
  }
  if (publishAll) {
    for (const key of exposed) {
      const { port, proto } = parsePortKey(key);
      if (proto === 'sctp' || keys.has(`${port}/${proto}`)) continue;
      keys.add(`${port}/${proto}`);
      out.push({ proto, containerPort: port, hostIp: '', hostFirst: 0, hostLast: 0 });
    }
  }
  return out;
}

/** Two bindings collide when protocols and ports match and either listens on all addresses or both on the same. */
export function collides(a: { proto: Proto; hostIp: string; hostPort: number }, b: { proto: Proto; hostIp: string; hostPort: number }): boolean {
  return a.proto === b.proto && a.hostPort === b.hostPort && (a.hostIp === '' || b.hostIp === '' || a.hostIp === b.hostIp);
}

/** dockerd's message for a port another container already holds. */
export function portAllocatedMessage(hostIp: string, hostPort: number): string {
  return `Bind for ${hostIp === '' ? '0.0.0.0' : hostIp}:${hostPort} failed: port is already allocated`;
}

/** NetworkSettings.Ports for inspect: every exposed or bound port, null when not published. */
export function portMap(published: readonly PublishedPort[], exposed: readonly string[]): Record<string, { HostIp: string; HostPort: string }[] | null> {
  const map: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const key of exposed) {
    const { port, proto } = parsePortKey(key);
    map[`${port}/${proto}`] = null;
  }
  for (const p of published) {
    const key = `${p.containerPort}/${p.proto}`;
    const list = map[key] ?? [];
    list.push({ HostIp: p.hostIp === '' ? '0.0.0.0' : p.hostIp, HostPort: String(p.hostPort) });
    map[key] = list;
  }
  return map;
}

/** One entry of a container's Ports in docker ps. */
export interface PortListEntry {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}

/** The `Ports` array of GET /containers/json. */
export function portList(published: readonly PublishedPort[], exposed: readonly string[]): PortListEntry[] {
  const out: PortListEntry[] = [];
  const seen = new Set<string>();
  for (const p of published) {
    seen.add(`${p.containerPort}/${p.proto}`);
    out.push({ IP: p.hostIp === '' ? '0.0.0.0' : p.hostIp, PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.proto });
  }
  for (const key of exposed) {
    const { port, proto } = parsePortKey(key);
    if (!seen.has(`${port}/${proto}`)) out.push({ PrivatePort: port, Type: proto });
  }
  return out;
}
