import { describe, expect, it } from 'vitest';
import { allocateAddress6, cidr6Overlaps, ip6ToString, parseCidr6, parseIp6, planSubnet6 } from '../../../src/network/ipam6.js';

describe('IPv6 IPAM', () => {
  it('parses and prints addresses as RFC 5952 text', () => {
    for (const [text, canon] of [
      ['2001:389::f00d', '2001:389::f00d'],
      ['2001:0389:0000:0000:0000:0000:0000:F00D', '2001:389::f00d'],
      ['::', '::'],
      ['::1', '::1'],
      ['fe80::', 'fe80::'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ] as const) {
      expect(ip6ToString(parseIp6(text)!)).toBe(canon);
    }
    for (const bad of ['', ':', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', 'g::1', '1:2:3:4:5:6:7', '10.0.0.1']) {
      expect(parseIp6(bad)).toBeUndefined();
    }
  });

  it('plans a subnet as dockerd: first address as gateway, host bits and outside gateways refused', () => {
    const p = planSubnet6('2001:389::/64');
    expect(ip6ToString(p.gateway)).toBe('2001:389::1');
    expect(ip6ToString(planSubnet6('2001:389::/64', '2001:389::ffff', '2001:389::0/96').gateway)).toBe('2001:389::ffff');
    expect(() => planSubnet6('2001:389::1/64')).toThrow('invalid subnet 2001:389::1/64: it should be 2001:389::/64');
    expect(() => planSubnet6('2001:389::/64', '2001:390::1')).toThrow('no matching subnet for gateway 2001:390::1');
    expect(() => planSubnet6('nonsense/64')).toThrow('invalid CIDR address');
  });

  it('allocates the requested address or the lowest free one, never the gateway or a taken one', () => {
    const p = planSubnet6('2001:389::/64', '2001:389::ffff', '2001:389::0/96');
    expect(ip6ToString(allocateAddress6(p, new Set(), '2001:389::f00d'))).toBe('2001:389::f00d');
    expect(ip6ToString(allocateAddress6(p, new Set()))).toBe('2001:389::1');
    expect(ip6ToString(allocateAddress6(p, new Set([parseIp6('2001:389::1')!])))).toBe('2001:389::2');
    expect(() => allocateAddress6(p, new Set(), '2001:389::ffff')).toThrow('Address already in use');
    expect(() => allocateAddress6(p, new Set(), '2001:400::1')).toThrow('no configured subnet or ip-range contain the IP address 2001:400::1');
    const q = planSubnet6('fd00:1::/64');
    expect(ip6ToString(allocateAddress6(q, new Set()))).toBe('fd00:1::2');
  });

  it('overlap', () => {
    expect(cidr6Overlaps(parseCidr6('2001:389::/64')!, parseCidr6('2001:389::/96')!)).toBe(true);
    expect(cidr6Overlaps(parseCidr6('2001:389::/64')!, parseCidr6('2001:38a::/64')!)).toBe(false);
  });
});
