import { describe, expect, it } from 'vitest';
import {
  allocateAddress,
  allocateSubnet,
  cidrToString,
  DOCKER_DEFAULT_POOLS,
  ipToString,
  macForIp,
  parseCidr,
  parseIp,
  parseSubnet,
  planSubnet,
  routesToCidrs,
} from '../../../src/network/ipam.js';

describe('ipam', () => {
  it('parses and prints IPv4 addresses and refuses malformed ones', () => {
    expect(ipToString(parseIp('172.17.0.2')!)).toBe('172.17.0.2');
    expect(parseIp('255.255.255.255')).toBe(0xffffffff);
    expect(parseIp('256.1.1.1')).toBeUndefined();
    expect(parseIp('1.2.3')).toBeUndefined();
    expect(parseIp('01.2.3.4')).toBeUndefined();
  });

  it('clears host bits of CIDRs but refuses them in --subnet', () => {
    expect(cidrToString(parseCidr('10.1.2.3/8')!)).toBe('10.0.0.0/8');
    expect(() => parseSubnet('10.1.2.3/8')).toThrow(/it should be 10.0.0.0\/8/);
    expect(() => parseSubnet('nonsense')).toThrow(/invalid CIDR/);
    expect(cidrToString(parseSubnet('192.168.50.0/24'))).toBe('192.168.50.0/24');
  });

  it('gives the default bridge the first free /16 of 172.17-31, skipping subnets taken by routes or networks', () => {
    expect(cidrToString(allocateSubnet(DOCKER_DEFAULT_POOLS, []))).toBe('172.17.0.0/16');
    const taken = [parseCidr('172.17.0.0/16')!, parseCidr('172.18.5.0/24')!];
    expect(cidrToString(allocateSubnet(DOCKER_DEFAULT_POOLS, taken))).toBe('172.19.0.0/16');
    const all172 = [parseCidr('172.16.0.0/12')!];
    expect(cidrToString(allocateSubnet(DOCKER_DEFAULT_POOLS, all172))).toBe('192.168.0.0/20');
  });

  it('carves configured default-address-pools by their size and fails when exhausted', () => {
    const pools = [{ base: '10.10.0.0/16', size: 24 }];
    expect(cidrToString(allocateSubnet(pools, [parseCidr('10.10.0.0/24')!]))).toBe('10.10.1.0/24');
    expect(() => allocateSubnet(pools, [parseCidr('10.10.0.0/16')!])).toThrow(/fully subnetted/);
  });

  it('reads host routes from ip -j route and ignores the default route', () => {
    const json = JSON.stringify([{ dst: 'default', gateway: '192.0.2.1' }, { dst: '192.0.2.0/24' }, { dst: '10.9.9.9' }]);
    expect(routesToCidrs(json).map(cidrToString)).toEqual(['192.0.2.0/24', '10.9.9.9/32']);
  });

  it('puts the gateway on the first address unless given, and checks it lies in the subnet', () => {
    const plan = planSubnet(parseSubnet('10.20.0.0/24'));
    expect(ipToString(plan.gateway)).toBe('10.20.0.1');
    expect(ipToString(planSubnet(parseSubnet('10.20.0.0/24'), '10.20.0.254').gateway)).toBe('10.20.0.254');
    expect(() => planSubnet(parseSubnet('10.20.0.0/24'), '10.21.0.1')).toThrow(/no matching subnet for gateway/);
    expect(() => planSubnet(parseSubnet('10.20.0.0/24'), undefined, '10.30.0.0/25')).toThrow(/no matching subnet for range/);
  });

  it('allocates the lowest free address, skipping gateway and used ones, within the ip-range', () => {
    const plan = planSubnet(parseSubnet('10.20.0.0/24'));
    const used = new Set<number>();
    const a = allocateAddress(plan, used);
    expect(ipToString(a)).toBe('10.20.0.2');
    used.add(a);
    expect(ipToString(allocateAddress(plan, used))).toBe('10.20.0.3');
    const ranged = planSubnet(parseSubnet('10.20.0.0/24'), undefined, '10.20.0.128/25');
    expect(ipToString(allocateAddress(ranged, used))).toBe('10.20.0.128');
  });

  it('honours a static address and refuses one in use, the gateway, or outside the subnet', () => {
    const plan = planSubnet(parseSubnet('10.20.0.0/24'));
    const used = new Set([parseIp('10.20.0.7')!]);
    expect(ipToString(allocateAddress(plan, used, '10.20.0.9'))).toBe('10.20.0.9');
    expect(() => allocateAddress(plan, used, '10.20.0.7')).toThrow(/Address already in use/);
    expect(() => allocateAddress(plan, used, '10.20.0.1')).toThrow(/Address already in use/);
    expect(() => allocateAddress(plan, used, '10.99.0.9')).toThrow(/no configured subnet or ip-range contain the IP address 10.99.0.9/);
  });

  it('reports exhaustion of a small subnet', () => {
    const plan = planSubnet(parseSubnet('10.20.0.0/30'));
    const used = new Set([parseIp('10.20.0.2')!]);
    expect(() => allocateAddress(plan, used)).toThrow(/no available IPv4 addresses/);
  });

  it('derives MAC addresses 02:42:<ip bytes>', () => {
    expect(macForIp(parseIp('172.17.0.2')!)).toBe('02:42:ac:11:00:02');
  });
});
