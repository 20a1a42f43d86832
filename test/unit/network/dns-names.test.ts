import { describe, expect, it } from 'vitest';
import type { NetworkRepo } from '../../../src/metadata/network-repo.js';
import { networkNames } from '../../../src/network/dns-names.js';
import { NetworkState, newSandboxRecord } from '../../../src/network/state.js';
import type { EndpointRecord, NetworkRecord } from '../../../src/network/types.js';

/** A store that keeps nothing: the state's maps are what the names are read from. */
const nullRepo = {
  listNetworks: () => [], listEndpoints: () => [], listSandboxes: () => [],
  insertNetwork: () => undefined, updateNetwork: () => undefined, deleteNetwork: () => undefined,
  insertEndpoint: () => undefined, deleteEndpoint: () => undefined, putSandbox: () => undefined, deleteSandbox: () => undefined,
} as unknown as NetworkRepo;

function network(id: string, internal = false): NetworkRecord {
  return {
    Id: id, Name: id, Created: '', Driver: 'bridge', Internal: internal, Attachable: false, Options: {}, Labels: {},
    IPAM: { Driver: 'default', Options: {}, Config: [] }, mtu: 1500, predefined: false, autoSubnet: false, masquerade: true,
  };
}

describe('what the embedded DNS answers, and to whom', () => {
  const state = new NetworkState(nullRepo);
  for (const n of [network('front'), network('back'), network('sealed', true)]) state.saveNetwork(n, true);
  const ips: Record<string, string> = {};
  let next = 2;
  const container = (name: string, nets: string[], aliases: string[] = [], links: string[] = []): void => {
    const sb = newSandboxRecord(`${name}-id`.padEnd(64, '0'), { name, mode: nets[0]!, hostname: name, filesDir: '/nonexistent' });
    for (const nid of nets) {
      const ip = `10.0.0.${next++}`;
      ips[`${name}@${nid}`] = ip;
      const ep: EndpointRecord = {
        networkId: nid, containerId: sb.containerId, endpointId: nid, ifName: 'eth0', hostIfName: '', ip, prefixLen: 24,
        gateway: '10.0.0.1', mac: '', aliases, links,
      };
      state.addEndpoint(ep);
      sb.order.push(nid);
    }
    state.putSandbox(sb);
  };
  container('web', ['front'], ['www']);
  container('db', ['back']);
  container('vault', ['sealed']);
  container('bridge-both', ['sealed', 'front']);
  // docker-py test_create_with_links: a link to a container that does not exist yet, given on a user network.
  container('linker', ['front'], [], ['later:bar']);
  const dns = networkNames(state);

  it('serves only the containers of its own network', () => {
    expect(dns.serves('front', ips['web@front']!)).toBe(true);
    expect(dns.serves('front', ips['db@back']!)).toBe(false);
    expect(dns.serves('front', '10.0.0.1')).toBe(false); // the host itself
    expect(dns.serves('back', ips['web@front']!)).toBe(false);
  });

  it('resolves names of the asker\'s networks only', () => {
    expect(dns.lookup('front', ips['web@front']!, 'WWW.')).toEqual([ips['web@front']]);
    expect(dns.lookup('front', ips['web@front']!, 'db')).toBeUndefined();
    expect(dns.lookup('sealed', ips['bridge-both@sealed']!, 'web')).toEqual([ips['web@front']]);
  });

  it("resolves a user-network link's alias (and target name) for the linking container only, once the target is there", () => {
    expect(dns.lookup('front', ips['linker@front']!, 'bar')).toBeUndefined();
    container('later', ['front']);
    expect(dns.lookup('front', ips['linker@front']!, 'bar')).toEqual([ips['later@front']]);
    expect(dns.lookup('front', ips['linker@front']!, 'later')).toEqual([ips['later@front']]);
    expect(dns.lookup('front', ips['web@front']!, 'bar')).toBeUndefined();
  });

  it('forwards only for askers with a network that is not internal', () => {
    expect(dns.mayForward('front', ips['web@front']!)).toBe(true);
    expect(dns.mayForward('sealed', ips['vault@sealed']!)).toBe(false);
    expect(dns.mayForward('sealed', ips['bridge-both@sealed']!)).toBe(true);
    expect(dns.mayForward('front', '192.0.2.1')).toBe(false);
  });

  it('routes a sandbox through its first network with a way out', () => {
    const both = state.findSandbox('bridge-both')!;
    expect(state.primaryEndpoint(both)?.networkId).toBe('sealed');
    expect(state.gatewayEndpoint(both)?.networkId).toBe('front');
    expect(state.gatewayEndpoint(state.findSandbox('vault')!)).toBeUndefined();
  });
});
