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
