import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { NetworkRepo } from '../metadata/network-repo.js';
import { InvalidParameterError, NotFoundError } from '../errors.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord, SandboxRequest } from './types.js';

/**
 * The network layer's records (networks, endpoints, sandboxes): the in-memory maps and their rows in the
 * store, written together and only here. Every part of the network service reads and changes them through
 * this one object, under the service's lock.
 */
export class NetworkState {
  readonly networks = new Map<string, NetworkRecord>();
  private readonly endpoints = new Map<string, EndpointRecord>();
  readonly sandboxes = new Map<string, SandboxRecord>();

  constructor(private readonly repo: NetworkRepo) {}

  /** Loads every record from the store (daemon start). */
  load(): void {
    for (const row of this.repo.listNetworks()) this.networks.set(row.id, JSON.parse(row.body) as NetworkRecord);
    for (const row of this.repo.listEndpoints()) {
      const ep = JSON.parse(row.body) as EndpointRecord;
      this.endpoints.set(`${ep.networkId}/${ep.containerId}`, ep);
    }
    for (const row of this.repo.listSandboxes()) this.sandboxes.set(row.container_id, JSON.parse(row.body) as SandboxRecord);
  }

  // ── networks ──

  saveNetwork(n: NetworkRecord, insert: boolean): void {
    if (insert) this.repo.insertNetwork(n.Id, n.Name, JSON.stringify(n));
    else this.repo.updateNetwork(n.Id, n.Name, JSON.stringify(n));
    this.networks.set(n.Id, n);
  }

  deleteNetwork(id: string): void {
    this.repo.deleteNetwork(id);
    this.networks.delete(id);
  }

  /** Full ID, then name, then unique ID prefix (dockerd's order). */
  findNetwork(ref: string): NetworkRecord {
    const all = [...this.networks.values()];
    const byId = this.networks.get(ref);
    if (byId) return byId;
    const byName = all.find((n) => n.Name === ref);
    if (byName) return byName;
    const prefixed = ref.length > 0 ? all.filter((n) => n.Id.startsWith(ref)) : [];
    if (prefixed.length === 1) return prefixed[0]!;
    if (prefixed.length > 1) throw new InvalidParameterError(`network ${ref} is ambiguous (${prefixed.length} matches found based on ID prefix)`);
    throw new NotFoundError(`network ${ref} not found`);
  }

  isDefaultBridge(n: NetworkRecord): boolean {
    return n.Name === 'bridge' && n.predefined;
  }

  // ── endpoints ──

  endpoint(networkId: string, containerId: string): EndpointRecord | undefined {
    return this.endpoints.get(`${networkId}/${containerId}`);
  }

  allEndpoints(): EndpointRecord[] {
    return [...this.endpoints.values()];
  }

  endpointsOf(networkId: string): EndpointRecord[] {
    return [...this.endpoints.values()].filter((e) => e.networkId === networkId);
  }

  addEndpoint(ep: EndpointRecord): void {
    this.repo.insertEndpoint(ep.networkId, ep.containerId, ep.ip, JSON.stringify(ep));
    this.endpoints.set(`${ep.networkId}/${ep.containerId}`, ep);
  }

  dropEndpoint(ep: EndpointRecord): void {
    this.repo.deleteEndpoint(ep.networkId, ep.containerId);
    this.endpoints.delete(`${ep.networkId}/${ep.containerId}`);
  }

  /** An endpoint with no address (host and none modes). */
  blankEndpoint(n: NetworkRecord, containerId: string): EndpointRecord {
    return {
      networkId: n.Id, containerId, endpointId: randomId(), ifName: '', hostIfName: '', ip: '', prefixLen: 0,
      gateway: '', mac: '', aliases: [], links: [],
    };
  }

  /** The first endpoint of the sandbox that has an address (hosts entries, links). */
  primaryEndpoint(sb: SandboxRecord): EndpointRecord | undefined {
    for (const nid of sb.order) {
      const ep = this.endpoint(nid, sb.containerId);
      if (ep && ep.ip) return ep;
    }
    return undefined;
  }

  /**
   * The endpoint that carries the default route and the published ports: the first one on a network
   * that is not internal (dockerd's gateway endpoint). None when every network is internal: such a
   * container has no route out and publishes nothing.
   */
  gatewayEndpoint(sb: SandboxRecord): EndpointRecord | undefined {
    for (const nid of sb.order) {
      const ep = this.endpoint(nid, sb.containerId);
      if (ep && ep.ip && this.networks.get(nid)?.Internal === false) return ep;
    }
    return undefined;
  }

  // ── sandboxes ──

  putSandbox(sb: SandboxRecord): void {
    this.repo.putSandbox(sb.containerId, JSON.stringify(sb));
    this.sandboxes.set(sb.containerId, sb);
  }

  deleteSandbox(containerId: string): void {
    this.repo.deleteSandbox(containerId);
    this.sandboxes.delete(containerId);
  }

  /** By container ID, name (with or without '/') or unique ID prefix. */
  findSandbox(ref: string): SandboxRecord | undefined {
    const direct = this.sandboxes.get(ref);
    if (direct) return direct;
    const all = [...this.sandboxes.values()];
    const byName = all.find((s) => s.name === ref || `/${s.name}` === ref);
    if (byName) return byName;
    const prefixed = all.filter((s) => s.containerId.startsWith(ref));
    return prefixed.length === 1 ? prefixed[0] : undefined;
  }
}

export function randomId(): string {
  return randomBytes(32).toString('hex');
}

export function nowRfc3339(): string {
  return new Date().toISOString().replace('Z', '000000Z');
}

/** A new sandbox record for `req` in bridge mode with nothing attached (the modes adjust it). */
export function newSandboxRecord(containerId: string, req: SandboxRequest): SandboxRecord {
  return {
    containerId,
    name: req.name.replace(/^\//, ''),
    mode: 'bridge',
    hostsPath: join(req.filesDir, 'hosts'),
    resolvConfPath: join(req.filesDir, 'resolv.conf'),
    hostnamePath: join(req.filesDir, 'hostname'),
    hostname: req.hostname,
    domainname: req.domainname ?? '',
    dns: req.dns ?? [],
    dnsSearch: req.dnsSearch ?? [],
    dnsOptions: req.dnsOptions ?? [],
    extraHosts: req.extraHosts ?? [],
    links: (req.links ?? []).map((l) => {
      const [name = '', alias] = l.split(':');
      return { name: name.replace(/^\//, ''), alias: (alias ?? name).replace(/^.*\//, '') };
    }),
    exposed: req.exposedPorts ?? [],
    wanted: [],
    published: [],
    order: [],
    nextIf: 0,
  };
}
