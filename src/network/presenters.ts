import { createHash } from 'node:crypto';
import type { NetworkState } from './state.js';
import { portMap } from './ports/port-spec.js';
import { endpointIpamConfig, type EndpointRecord, type EndpointRequest, type EndpointSettings, type NetworkRecord, type NetworkSettings, type SandboxInfo, type SandboxRecord } from './types.js';

/** Docker's `Network` object (GET /networks, network inspect). */
export interface NetworkApi {
  Name: string;
  Id: string;
  Created: string;
  Scope: string;
  Driver: string;
  EnableIPv4: boolean;
  EnableIPv6: boolean;
  IPAM: NetworkRecord['IPAM'];
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** A network as the API shows it; `withContainers` for inspect (the list leaves Containers empty). */
export function networkApi(state: NetworkState, n: NetworkRecord, withContainers: boolean): NetworkApi {
  const containers: NetworkApi['Containers'] = {};
  if (withContainers) {
    for (const e of state.endpointsOf(n.Id)) {
      containers[e.containerId] = {
        Name: state.sandboxes.get(e.containerId)?.name ?? '',
        EndpointID: e.endpointId,
        MacAddress: e.mac,
        IPv4Address: e.ip ? `${e.ip}/${e.prefixLen}` : '',
        IPv6Address: e.ip6 ? `${e.ip6}/${e.ip6PrefixLen ?? 64}` : '',
      };
    }
  }
  return {
    Name: n.Name,
    Id: n.Id,
    Created: n.Created,
    Scope: 'local',
    Driver: n.Driver,
    EnableIPv4: true,
    EnableIPv6: n.enableIPv6 === true,
    // The predefined networks have no IPAM options (null, as dockerd; older records kept {}).
    IPAM: n.predefined ? { ...n.IPAM, Options: null } : n.IPAM,
    Internal: n.Internal,
    Attachable: n.Attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: n.Options,
    Labels: n.Labels,
  };
}

function endpointSettings(state: NetworkState, n: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): EndpointSettings {
  const userNet = n.Driver === 'bridge' && !state.isDefaultBridge(n);
  return {
    IPAMConfig: endpointIpamConfig({ ipv4: ep.ipv4Requested, ipv6: ep.ipv6Requested, linkLocal: ep.linkLocalIps }),
    Links: ep.links.length > 0 ? ep.links : null,
    Aliases: ep.aliases.length > 0 ? ep.aliases : null,
    MacAddress: ep.mac,
    DriverOpts: ep.driverOpts ?? null,
    GwPriority: 0,
    NetworkID: n.Id,
    EndpointID: ep.endpointId,
    Gateway: ep.gateway,
    IPAddress: ep.ip,
    IPPrefixLen: ep.prefixLen,
    IPv6Gateway: ep.gateway6 ?? '',
    GlobalIPv6Address: ep.ip6 ?? '',
    GlobalIPv6PrefixLen: ep.ip6PrefixLen ?? 0,
    DNSNames: userNet ? [sb.name, ...ep.aliases, sb.containerId.slice(0, 12)].filter((x, i, a) => x !== '' && a.indexOf(x) === i) : null,
  };
}

/** NetworkSettings of a container whose sandbox exists (inspect while running). */
export function sandboxSettings(state: NetworkState, sb: SandboxRecord): NetworkSettings {
  const networks: Record<string, EndpointSettings> = {};
  let top: EndpointSettings | undefined;
  for (const nid of sb.order) {
    const n = state.networks.get(nid);
    const ep = state.endpoint(nid, sb.containerId);
    if (!n || !ep) continue;
    const es = endpointSettings(state, n, ep, sb);
    networks[n.Name] = es;
    if (state.isDefaultBridge(n)) top = es;
  }
  return {
    Bridge: '',
    SandboxID: sb.netnsPath ? createHash('sha256').update(sb.netnsPath).digest('hex') : '',
    SandboxKey: sb.netnsPath ?? '',
    HairpinMode: false,
    LinkLocalIPv6Address: '',
    LinkLocalIPv6PrefixLen: 0,
    Ports: sb.mode === 'bridge' ? portMap(sb.published, sb.exposed) : {},
    SecondaryIPAddresses: null,
    SecondaryIPv6Addresses: null,
    EndpointID: top?.EndpointID ?? '',
    Gateway: top?.Gateway ?? '',
    GlobalIPv6Address: top?.GlobalIPv6Address ?? '',
    GlobalIPv6PrefixLen: top?.GlobalIPv6PrefixLen ?? 0,
    IPAddress: top?.IPAddress ?? '',
    IPPrefixLen: top?.IPPrefixLen ?? 0,
    IPv6Gateway: top?.IPv6Gateway ?? '',
    MacAddress: top?.MacAddress ?? '',
    Networks: networks,
  };
}

/** NetworkSettings of a container that is not running: its networks with empty addresses. */
export function stoppedSettings(state: NetworkState, endpoints: Record<string, EndpointRequest>, mode: string): NetworkSettings {
  const networks: Record<string, EndpointSettings> = {};
  const refs = Object.keys(endpoints);
  const m = mode === '' || mode === 'default' ? 'bridge' : mode;
  if (!m.startsWith('container:') && !refs.includes(m)) refs.unshift(m);
  for (const ref of refs) {
    let n: NetworkRecord | undefined;
    try {
      n = state.findNetwork(ref);
    } catch {
      continue;
    }
    const cfg = endpoints[ref] ?? {};
    networks[n.Name] = {
      IPAMConfig: endpointIpamConfig({ ipv4: cfg.ipv4Address, ipv6: cfg.ipv6Address, linkLocal: cfg.linkLocalIps }),
      Links: null, Aliases: cfg.aliases && cfg.aliases.length > 0 ? cfg.aliases : null, MacAddress: cfg.macAddress ?? '', DriverOpts: cfg.driverOpts ?? null, GwPriority: 0,
      NetworkID: n.Id, EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '',
      GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
    };
  }
  return {
    Bridge: '', SandboxID: '', SandboxKey: '', HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0,
    Ports: {}, SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '',
    GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '',
    Networks: networks,
  };
}

/** What createSandbox answers: the paths the container needs and its settings. */
export function sandboxInfo(state: NetworkState, sb: SandboxRecord): SandboxInfo {
  return {
    netnsPath: sb.netnsPath,
    hostsPath: sb.hostsPath,
    resolvConfPath: sb.resolvConfPath,
    hostnamePath: sb.hostnamePath,
    settings: sandboxSettings(state, sb),
  };
}
