import { describe, expect, it } from 'vitest';
import { collides, parseHostPort, parsePortKey, portAllocatedMessage, portList, portMap, wantedPorts } from '../../../../src/network/ports/port-spec.js';

describe('port specs', () => {
  it('parses port keys and host ports, defaulting to tcp and ephemeral', () => {
    expect(parsePortKey('80')).toEqual({ port: 80, proto: 'tcp' });
    expect(parsePortKey('53/UDP')).toEqual({ port: 53, proto: 'udp' });
    expect(() => parsePortKey('0/tcp')).toThrow(/invalid port/);
    expect(() => parsePortKey('http')).toThrow(/invalid port/);
    expect(parseHostPort('')).toEqual([0, 0]);
    expect(parseHostPort('0')).toEqual([0, 0]);
    expect(parseHostPort('8000-8010')).toEqual([8000, 8010]);
    expect(() => parseHostPort('9-1')).toThrow(/invalid hostPort/);
  });

  it('expands bindings and -P over exposed ports without a binding', () => {
    const w = wantedPorts({ '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }, { HostIp: '127.0.0.1', HostPort: '' }] }, true, ['80/tcp', '53/udp']);
    expect(w).toEqual([
      { proto: 'tcp', containerPort: 80, hostIp: '', hostFirst: 8080, hostLast: 8080 },
      { proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostFirst: 0, hostLast: 0 },
      { proto: 'udp', containerPort: 53, hostIp: '', hostFirst: 0, hostLast: 0 },
    ]);
    expect(() => wantedPorts({ '80/tcp': [{ HostIp: '::1', HostPort: '1' }] }, false, [])).toThrow(/IPv6/);
    expect(() => wantedPorts({ '9/sctp': [{}] }, false, [])).toThrow(/SCTP/);
  });

  it('treats 0.0.0.0 as colliding with every address of the same port and protocol', () => {
    expect(collides({ proto: 'tcp', hostIp: '', hostPort: 80 }, { proto: 'tcp', hostIp: '127.0.0.1', hostPort: 80 })).toBe(true);
    expect(collides({ proto: 'tcp', hostIp: '127.0.0.2', hostPort: 80 }, { proto: 'tcp', hostIp: '127.0.0.1', hostPort: 80 })).toBe(false);
    expect(collides({ proto: 'udp', hostIp: '', hostPort: 80 }, { proto: 'tcp', hostIp: '', hostPort: 80 })).toBe(false);
    expect(portAllocatedMessage('', 18089)).toBe('Bind for 0.0.0.0:18089 failed: port is already allocated');
  });

  it('renders NetworkSettings.Ports and the Ports column like dockerd', () => {
    const pub = [{ proto: 'tcp' as const, containerPort: 80, hostIp: '', hostPort: 32768 }];
    expect(portMap(pub, ['80/tcp', '443/tcp'])).toEqual({ '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '32768' }], '443/tcp': null });
    expect(portList(pub, ['80/tcp', '443/tcp'])).toEqual([
      { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 32768, Type: 'tcp' },
      { PrivatePort: 443, Type: 'tcp' },
    ]);
  });
});
