import { describe, expect, it } from 'vitest';
import { buildHostsFile, buildResolvConf, ownHostNames, parseExtraHost, upstreamsFrom } from '../../../src/network/etc-files.js';

const HOST = '# generated\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver fe80::1\noptions edns0\n';

describe('etc files', () => {
  it('writes the localhost block, --add-host entries and the container entry', () => {
    const text = buildHostsFile(
      [{ ip: '172.18.0.2', names: ownHostNames('web', 'example.org', ['webalias']) }],
      [parseExtraHost('db:10.0.0.5', undefined), parseExtraHost('gw:host-gateway', '172.18.0.1')],
    );
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('127.0.0.1\tlocalhost');
    expect(lines).toContain('10.0.0.5\tdb');
    expect(lines).toContain('172.18.0.1\tgw');
    expect(lines.at(-1)).toBe('172.18.0.2\tweb.example.org web webalias');
  });

  it('refuses --add-host without an IP', () => {
    expect(() => parseExtraHost('nocolon', undefined)).toThrow(/invalid extra host/);
    expect(() => parseExtraHost('a:notanip', undefined)).toThrow(/invalid IP/);
  });

  it('points user-network containers at the embedded resolver with ndots:0', () => {
    const r = buildResolvConf({ host: HOST, embedded: '172.18.0.1', dns: ['9.9.9.9'], dnsSearch: [], dnsOptions: [], hostMode: false });
    expect(r).toBe('search corp.example\nnameserver 172.18.0.1\noptions edns0 ndots:0\n');
  });

  it('gives the default bridge the host resolvers minus loopback and IPv6 ones', () => {
    const r = buildResolvConf({ host: HOST, embedded: undefined, dns: [], dnsSearch: [], dnsOptions: [], hostMode: false });
    expect(r).toBe('search corp.example\nnameserver 10.255.255.53\noptions edns0\n');
    const onlyLoop = buildResolvConf({ host: 'nameserver 127.0.0.53\n', embedded: undefined, dns: [], dnsSearch: [], dnsOptions: [], hostMode: false });
    expect(onlyLoop).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  });

  it('applies --dns, --dns-search and --dns-option', () => {
    const r = buildResolvConf({ host: HOST, embedded: undefined, dns: ['1.1.1.1'], dnsSearch: ['a.example'], dnsOptions: ['timeout:1'], hostMode: false });
    expect(r).toBe('search a.example\nnameserver 1.1.1.1\noptions timeout:1\n');
  });

  it('copies the host file for host networking', () => {
    expect(buildResolvConf({ host: HOST, embedded: undefined, dns: [], dnsSearch: [], dnsOptions: [], hostMode: true })).toBe(HOST);
  });

  it('forwards to --dns or the host resolvers, loopback included', () => {
    expect(upstreamsFrom(HOST, [])).toEqual(['127.0.0.53', '10.255.255.53']);
    expect(upstreamsFrom(HOST, ['1.1.1.1'])).toEqual(['1.1.1.1']);
  });
});
