// A container's NetworkingConfig.EndpointsConfig (what it asks of each network, kept while it is stopped) and
// the endpoint requests the network layer takes from it.

import { endpointIpamConfig, type EndpointRequest } from '../network/types.js';
import type { ContainerRecord, ContainerView } from './types.js';

type NetworkingConfig = ContainerRecord['networkingConfig'];

/** The endpoints a container asks for, by network (from its NetworkingConfig), for the network layer. */
export function endpointsOf(c: ContainerView): Record<string, EndpointRequest> {
  const out: Record<string, EndpointRequest> = {};
  const mode = c.hostConfig.NetworkMode ?? 'bridge';
  for (const [key, ep] of Object.entries(c.networkingConfig.EndpointsConfig ?? {})) {
    // The CLI keys the endpoint of the container's own network "default".
    const net = key === 'default' ? mode : key;
    if (mode === 'none' || mode === 'host' || mode.startsWith('container:')) continue;
    const e = ep as {
      Aliases?: string[] | null; IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] | null } | null;
      MacAddress?: string; Links?: string[] | null; DriverOpts?: Record<string, string> | null;
    };
    out[net] = {
      ...(e.Aliases ? { aliases: e.Aliases } : {}),
      ...(e.IPAMConfig?.IPv4Address ? { ipv4Address: e.IPAMConfig.IPv4Address } : {}),
      ...(e.IPAMConfig?.IPv6Address ? { ipv6Address: e.IPAMConfig.IPv6Address } : {}),
      ...(e.IPAMConfig?.LinkLocalIPs && e.IPAMConfig.LinkLocalIPs.length > 0 ? { linkLocalIps: e.IPAMConfig.LinkLocalIPs } : {}),
      ...(e.MacAddress ? { macAddress: e.MacAddress } : {}),
      ...(e.Links ? { links: e.Links } : {}),
      ...(e.DriverOpts ? { driverOpts: e.DriverOpts } : {}),
    };
  }
  return out;
}

/** `network connect` of a stopped container: its endpoint config for `network` (replacing an earlier one). */
export function withEndpoint(c: ContainerView, network: string, cfg: EndpointRequest): NetworkingConfig {
  const eps = { ...(c.networkingConfig.EndpointsConfig ?? {}) } as Record<string, Record<string, unknown>>;
  for (const key of Object.keys(eps)) if (key === network || (key === 'default' && c.hostConfig.NetworkMode === network)) delete eps[key];
  eps[network] = {
    Aliases: cfg.aliases ?? null,
    IPAMConfig: endpointIpamConfig({ ipv4: cfg.ipv4Address, ipv6: cfg.ipv6Address, linkLocal: cfg.linkLocalIps }),
    Links: cfg.links ?? null,
    ...(cfg.macAddress ? { MacAddress: cfg.macAddress } : {}),
    ...(cfg.driverOpts ? { DriverOpts: cfg.driverOpts } : {}),
  };
  return { ...(c.networkingConfig as NetworkingConfig), EndpointsConfig: eps };
}

/** `network disconnect` of a stopped container: its config without `network`, undefined when it was not attached. */
export function withoutEndpoint(c: ContainerView, network: string): NetworkingConfig | undefined {
  const eps = { ...(c.networkingConfig.EndpointsConfig ?? {}) } as Record<string, Record<string, unknown>>;
  const primary = c.hostConfig.NetworkMode === network;
  let found = primary;
  for (const key of Object.keys(eps)) {
    if (key === network || (key === 'default' && primary)) {
      delete eps[key];
      found = true;
    }
  }
  return found ? { ...(c.networkingConfig as NetworkingConfig), EndpointsConfig: eps } : undefined;
}
