import { describe, expect, it } from 'vitest';
import { netnsSpec, type EndpointPlumbing } from '../../../src/network/plumbing.js';

const ep: EndpointPlumbing = {
  netnsPath: '/run/berth/netns/x',
  bridge: 'berth0',
  hostIfName: 'bv0123456789a',
  ifName: 'eth0',
  address: '172.19.0.2',
  prefixLen: 16,
  mac: '02:42:ac:13:00:02',
  mtu: 1500,
  defaultGateway: '172.19.0.1',
  owner: 'berth:abc',
  isolated: false,
};

describe('netnsSpec: the endpoints as the native createNetns reads them', () => {
  it('one ep line per endpoint, then its addresses and gateways', () => {
    const spec = netnsSpec([
      { ...ep, extraAddrs: ['fd00::2/64', '169.254.1.1/16'], defaultGateway6: 'fd00::1', isolated: true },
      { ...ep, ifName: 'eth1', hostIfName: 'bv1', address: '10.1.0.5', prefixLen: 24, bridge: 'br-1', defaultGateway: undefined },
    ]);
    expect(spec).toBe(
      [
        'ep eth0 bv0123456789a 02:42:ac:13:00:02 1500 berth0 berth:abc 1',
        'addr 172.19.0.2/16',
        'addr fd00::2/64',
        'addr 169.254.1.1/16',
        'gw 172.19.0.1',
        'gw6 fd00::1',
        'ep eth1 bv1 02:42:ac:13:00:02 1500 br-1 berth:abc 0',
        'addr 10.1.0.5/24',
        '',
      ].join('\n'),
    );
  });

  it('an empty namespace has an empty spec', () => {
    expect(netnsSpec([])).toBe('');
  });

  it('refuses a value that would break the line format', () => {
    expect(() => netnsSpec([{ ...ep, owner: 'berth:a b' }])).toThrow(/invalid network plumbing value/);
    expect(() => netnsSpec([{ ...ep, bridge: '' }])).toThrow(/invalid network plumbing value/);
  });
});
