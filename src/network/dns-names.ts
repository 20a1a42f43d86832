import type { DnsResolver } from './dns-server.js';
import type { NetworkState } from './state.js';

/**
 * The names the embedded DNS answers, from the network records: a network's server serves only that
 * network's containers (by source address), resolves the names (container name, aliases, short ID) of
 * every user network the asker is on, and forwards other names only for askers with a way out.
 */
export function networkNames(state: NetworkState): DnsResolver {
  return {
    serves: (nid, ip) => state.endpointsOf(nid).some((e) => e.ip === ip),
    mayForward: (nid, ip) => {
      const asker = state.endpointsOf(nid).find((e) => e.ip === ip);
      const sb = asker ? state.sandboxes.get(asker.containerId) : undefined;
      return sb !== undefined && state.gatewayEndpoint(sb) !== undefined;
    },
    lookup: (nid, ip, name) => lookup(state, nid, ip, name),
  };
}

function lookup(state: NetworkState, networkId: string, askerIp: string, rawName: string): string[] | undefined {
  const name = rawName.replace(/\.$/, '').toLowerCase();
  if (name === '') return undefined;
  const asker = state.endpointsOf(networkId).find((e) => e.ip === askerIp);
  const nets = [networkId];
  if (asker) {
    const sb = state.sandboxes.get(asker.containerId);
    for (const nid of sb?.order ?? []) {
      const n = state.networks.get(nid);
      if (nid !== networkId && n && n.Driver === 'bridge' && !state.isDefaultBridge(n)) nets.push(nid);
    }
  }
  for (const nid of nets) {
    const linked = asker ? linkTarget(state, nid, asker.containerId, name) : undefined;
    if (linked) return [linked];
    const ips: string[] = [];
    for (const ep of state.endpointsOf(nid)) {
      if (!ep.ip) continue;
      const sb = state.sandboxes.get(ep.containerId);
      if (!sb) continue;
      const names = [sb.name, ...ep.aliases, sb.containerId.slice(0, 12)].map((x) => x.toLowerCase());
      if (names.includes(name) && !ips.includes(ep.ip)) ips.push(ep.ip);
    }
    if (ips.length > 0) return ips;
  }
  return undefined;
}

/**
 * Links given on a user network's endpoint (EndpointSettings.Links, "<container>:<alias>") are names for the
 * linking container only: the alias resolves to the linked container's address on that network, whenever the
 * linked container is there (it may be created after the link).
 */
function linkTarget(state: NetworkState, networkId: string, askerId: string, name: string): string | undefined {
  const own = state.endpoint(networkId, askerId);
  for (const link of own?.links ?? []) {
    const colon = link.lastIndexOf(':');
    const target = (colon < 0 ? link : link.slice(0, colon)).replace(/^\//, '');
    const alias = colon < 0 ? target : link.slice(colon + 1);
    if (alias.toLowerCase() !== name && target.toLowerCase() !== name) continue;
    for (const ep of state.endpointsOf(networkId)) {
      const sb = state.sandboxes.get(ep.containerId);
      if (ep.ip && sb && (sb.name === target || sb.containerId.startsWith(target))) return ep.ip;
    }
  }
  return undefined;
}
