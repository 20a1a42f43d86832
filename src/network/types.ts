import type { PublishedPort, WantedPort, PortBindingMap } from './ports/port-spec.js';
import type { Logger } from '../util/logger.js';
import type { EventBus } from '../events/event-bus.js';
import type { AddressPool } from './ipam.js';
import type { Upstream } from './dns-server.js';
import type { NetworkState } from './state.js';
import type { Plumbing } from './plumbing.js';

/** Shapes of the network service: persisted records and the Docker API objects built from them. */

export interface IpamConfigEntry {
  Subnet: string;
  Gateway: string;
  IPRange?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

/** A network as persisted (the Docker `Network` object minus Containers, plus Berth's driver state). */
export interface NetworkRecord {
  Id: string;
  Name: string;
  Created: string;
  Driver: 'bridge' | 'host' | 'null';
  Internal: boolean;
  Attachable: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamConfigEntry[] };
  /** Linux bridge device (bridge driver only). */
  bridge?: string;
  mtu: number;
  /** bridge, host and none: created by the daemon, never removed. */
  predefined: boolean;
  /** EnableIPv6: IPAM.Config holds an IPv6 entry after the IPv4 one. */
  enableIPv6?: boolean;
  /** The subnet was picked from the pools (it may be re-picked when it collides at start). */
  autoSubnet: boolean;
  /** false when com.docker.network.bridge.enable_ip_masquerade=false */
  masquerade: boolean;
  /** false when com.docker.network.bridge.enable_icc=false: containers of the network cannot talk to each other */
  icc?: boolean;
  /** com.docker.network.bridge.host_binding_ipv4: the host address of ports published without one */
  hostBinding?: string;
}

export interface EndpointRecord {
  networkId: string;
  containerId: string;
  endpointId: string;
  /** interface name inside the sandbox (eth0...), '' for host/none endpoints */
  ifName: string;
  /** host side of the veth pair */
  hostIfName: string;
  ip: string;
  prefixLen: number;
  gateway: string;
  mac: string;
  aliases: string[];
  /** IPAMConfig as requested (static addresses, link-local addresses). */
  ipv4Requested?: string;
  ipv6Requested?: string;
  linkLocalIps?: string[];
  /** IPv6 address, prefix length and gateway on a network with EnableIPv6. */
  ip6?: string;
  ip6PrefixLen?: number;
  gateway6?: string;
  links: string[];
  /** EndpointSettings.DriverOpts as given */
  driverOpts?: Record<string, string>;
}

export type SandboxMode = 'bridge' | 'none' | 'host' | 'container';

export interface SandboxRecord {
  containerId: string;
  /** container name without the leading '/' */
  name: string;
  mode: SandboxMode;
  /** container: mode — the container whose namespace and files are shared */
  sharedWith?: string;
  netnsPath?: string;
  hostsPath: string;
  resolvConfPath: string;
  hostnamePath: string;
  hostname: string;
  domainname: string;
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  extraHosts: string[];
  links: { name: string; alias: string }[];
  exposed: string[];
  wanted: WantedPort[];
  published: PublishedPort[];
  /** network IDs in attachment order; the first carries the default route and the published ports */
  order: string[];
  nextIf: number;
}

/** What the containers service asks for one container (see container-network.ts). */
export interface EndpointRequest {
  aliases?: string[];
  ipv4Address?: string;
  ipv6Address?: string;
  /** EndpointIPAMConfig.LinkLocalIPs: extra addresses put on the interface. */
  linkLocalIps?: string[];
  macAddress?: string;
  links?: string[];
  /** EndpointSettings.DriverOpts: kept and shown by inspect (the bridge driver reads none of them). */
  driverOpts?: Record<string, string>;
}

export interface SandboxRequest {
  /** container name without the leading '/' */
  name: string;
  /** HostConfig.NetworkMode: 'default' | 'bridge' | 'none' | 'host' | 'container:<id|name>' | '<network name or id>' */
  mode: string;
  hostname: string;
  domainname?: string;
  /** NetworkingConfig.EndpointsConfig, keyed by network name or ID */
  endpoints?: Record<string, EndpointRequest>;
  portBindings?: PortBindingMap;
  publishAll?: boolean;
  /** Config.ExposedPorts keys, e.g. '80/tcp' */
  exposedPorts?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** HostConfig.ExtraHosts, 'name:ip' */
  extraHosts?: string[];
  /** HostConfig.Links, 'name:alias' (legacy, default bridge) */
  links?: string[];

  /** Directory (the container's dir) where hosts, resolv.conf and hostname are written. */
  filesDir: string;
}

/** EndpointIPAMConfig: only the fields that were given (dockerd's omitempty). */
export interface EndpointIpamConfig {
  IPv4Address?: string;
  IPv6Address?: string;
  LinkLocalIPs?: string[];
}

/** The IPAMConfig shown for what was requested; null when nothing was. */
export function endpointIpamConfig(r: { ipv4?: string | undefined; ipv6?: string | undefined; linkLocal?: string[] | undefined }): EndpointIpamConfig | null {
  const out: EndpointIpamConfig = {};
  if (r.ipv4) out.IPv4Address = r.ipv4;
  if (r.ipv6) out.IPv6Address = r.ipv6;
  if (r.linkLocal && r.linkLocal.length > 0) out.LinkLocalIPs = r.linkLocal;
  return Object.keys(out).length > 0 ? out : null;
}

export interface EndpointSettings {
  IPAMConfig: EndpointIpamConfig | null;
  Links: string[] | null;
  Aliases: string[] | null;
  MacAddress: string;
  DriverOpts: Record<string, string> | null;
  GwPriority: number;
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  DNSNames: string[] | null;
}

export interface NetworkSettings {
  Bridge: string;
  SandboxID: string;
  SandboxKey: string;
  HairpinMode: boolean;
  LinkLocalIPv6Address: string;
  LinkLocalIPv6PrefixLen: number;
  Ports: Record<string, { HostIp: string; HostPort: string }[] | null>;
  SecondaryIPAddresses: null;
  SecondaryIPv6Addresses: null;
  EndpointID: string;
  Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  MacAddress: string;
  Networks: Record<string, EndpointSettings>;
}

export interface SandboxInfo {
  /** For the shim to setns into; undefined in host mode (stay in the host's namespace). */
  netnsPath: string | undefined;
  hostsPath: string;
  resolvConfPath: string;
  hostnamePath: string;
  settings: NetworkSettings;
  /** Environment of legacy links (--link on the default bridge), to put before the container's own. */
  linkEnv?: string[];
}

/** The containers service's answers about containers (wired by daemon.ts when it exists). */
export interface ContainerDirectory {
  /** ID, name (no '/') and running state for an ID, unique ID prefix or name; undefined when unknown. */
  find(ref: string): { id: string; name: string; running: boolean; env?: string[] } | undefined;
  /** Records an attachment for a stopped container, applied at its next start (network connect). */
  attachStopped?(containerId: string, networkName: string, config: EndpointRequest): void;
  /** Forgets an attachment of a stopped container (network disconnect). */
  detachStopped?(containerId: string, networkName: string): boolean;
}

export interface NetworkServiceOptions {
  execRoot: string;
  /** daemon.json bip, e.g. "172.20.0.1/16" */
  bip?: string;
  defaultAddressPools?: AddressPool[];
  /** daemon.json iptables (default true) */
  iptables: boolean;
  /** daemon.json icc: false isolates the default bridge's containers from each other. */
  icc?: boolean;
  /** daemon.json ip: host address of ports published on the default bridge without one. */
  defaultBindIp?: string;
  /** daemon.json dns: upstreams of the embedded DNS and default-bridge resolv.conf */
  dns?: string[];
  /** Tags Berth's links (ifalias) and firewall chains; one per daemon data root. */
  daemonId: string;
  /** The host's resolv.conf path (tests point it elsewhere). */
  hostResolvConf?: string;
  /** Embedded DNS upstreams; default: the host's resolvers on port 53. Tests inject a fake server. */
  dnsUpstreams?: () => Upstream[];
  /** Embedded DNS port (53). */
  dnsPort?: number;
  /** Preferred name of the default bridge device. */
  defaultBridgeName?: string;
  /** Where running daemons are recorded host-wide (DaemonRegistry; tests point it elsewhere). */
  daemonsDir?: string;
}

/** What the parts of the network service share (built once by NetworkService). */
export interface NetworkContext {
  state: NetworkState;
  plumbing: Plumbing;
  events: EventBus;
  log: Logger;
  opts: NetworkServiceOptions;
  /** ifalias that marks links as this daemon's */
  owner: string;
  /** Resolves once no released sandbox has devices left: plumbing waits for it. */
  settled(): Promise<void>;
  /** Resolves once no released sandbox that could collide with this one (same namespace path, or one of the
   * "<network id> <ip>" addresses) has devices left. */
  settledFor(containerId: string, addresses: readonly string[]): Promise<void>;
  /** Addresses of a network still held by the devices of another container's released sandbox. */
  cooling(networkId: string, containerId: string): ReadonlySet<string>;
}
