import { describe, expect, it } from 'vitest';
import { chainNames, renderNft, renderNftPortAdd, renderPortAppend, renderRules, renderRules6, type FirewallPort } from '../../../src/network/firewall.js';

describe('firewall rules', () => {
  const c = chainNames('abcd1234');
  const rules = renderRules(c, {
    bridges: [
      { name: 'berth0', subnet: '172.17.0.0/16', internal: false, masquerade: true },
      { name: 'br-int', subnet: '10.9.0.0/24', internal: true, masquerade: true },
    ],
    ports: [{ bridge: 'berth0', proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80 }],
  });
  const lines = rules.split('\n');

  it('declares (and so flushes) only Berth chains tagged with the daemon', () => {
    expect(lines.filter((l) => l.startsWith(':'))).toEqual([
      ':BERTH-FORWARD-abcd1234 - [0:0]',
      ':BERTH-ISOLATION-abcd1234 - [0:0]',
      ':BERTH-PORTS-abcd1234 - [0:0]',
      ':BERTH-POSTROUTING-abcd1234 - [0:0]',
      ':BERTH-DNAT-abcd1234 - [0:0]',
    ]);
    expect(lines.filter((l) => l.startsWith('-A')).every((l) => l.includes('-abcd1234'))).toBe(true);
  });

  it('isolates bridges from each other and internal networks from everything', () => {
    expect(lines).toContain('-A BERTH-ISOLATION-abcd1234 -i berth0 -o br-int -j DROP');
    expect(lines).toContain('-A BERTH-ISOLATION-abcd1234 -i br-int -o berth0 -j DROP');
    expect(lines).toContain('-A BERTH-ISOLATION-abcd1234 -i br-int ! -o br-int -j DROP');
    // ...except connections to published ports, which were DNATed: but never into or out of an internal one.
    const dnat = lines.indexOf('-A BERTH-ISOLATION-abcd1234 -m conntrack --ctstate DNAT -j RETURN');
    expect(dnat).toBeLessThan(lines.indexOf('-A BERTH-ISOLATION-abcd1234 -i berth0 -o br-int -j DROP'));
    expect(dnat).toBeGreaterThan(lines.indexOf('-A BERTH-ISOLATION-abcd1234 -i br-int ! -o br-int -j DROP'));
    expect(dnat).toBeGreaterThan(lines.indexOf('-A BERTH-ISOLATION-abcd1234 -o br-int ! -i br-int -j DROP'));
    expect(lines.indexOf('-A BERTH-FORWARD-abcd1234 -j BERTH-ISOLATION-abcd1234')).toBeLessThan(
      lines.indexOf('-A BERTH-FORWARD-abcd1234 -i berth0 ! -o berth0 -j ACCEPT'),
    );
  });

  it('accepts intra-bridge, return and egress traffic so a FORWARD DROP policy does not break containers', () => {
    expect(lines).toContain('-A BERTH-FORWARD-abcd1234 -i berth0 -o berth0 -j ACCEPT');
    expect(lines).toContain('-A BERTH-FORWARD-abcd1234 -o berth0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
    expect(lines).toContain('-A BERTH-FORWARD-abcd1234 -i berth0 ! -o berth0 -j ACCEPT');
    expect(lines).not.toContain('-A BERTH-FORWARD-abcd1234 -i br-int ! -o br-int -j ACCEPT');
  });

  it('lets nothing into a bridge from outside but return traffic and DNATed published ports', () => {
    const drop = lines.indexOf('-A BERTH-FORWARD-abcd1234 ! -i berth0 -o berth0 -j DROP');
    expect(drop).toBeGreaterThan(lines.indexOf('-A BERTH-FORWARD-abcd1234 -o berth0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'));
    expect(drop).toBeGreaterThan(lines.indexOf('-A BERTH-FORWARD-abcd1234 -j BERTH-PORTS-abcd1234'));
    expect(lines).toContain('-A BERTH-FORWARD-abcd1234 ! -i br-int -o br-int -j DROP');
    expect(lines.filter((l) => l.includes('-j DROP') && l.startsWith('-A BERTH-FORWARD')).at(-1)).toBe(lines.filter((l) => l.startsWith('-A BERTH-FORWARD')).at(-1));
  });

  it('masquerades non-internal subnets and DNATs published ports (not loopback ones)', () => {
    expect(lines).toContain('-A BERTH-POSTROUTING-abcd1234 -s 172.17.0.0/16 ! -o berth0 -j MASQUERADE');
    expect(rules).not.toContain('-s 10.9.0.0/24 ! -o br-int -j MASQUERADE');
    expect(lines).toContain('-A BERTH-DNAT-abcd1234 ! -i berth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80');
    expect(lines).toContain('-A BERTH-PORTS-abcd1234 -d 172.17.0.2/32 ! -i berth0 -o berth0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT');
    const loop = renderRules(c, { bridges: [], ports: [{ bridge: 'berth0', proto: 'udp', hostIp: '127.0.0.1', hostPort: 53, containerIp: '172.17.0.3', containerPort: 53 }] });
    expect(loop).not.toContain('-j DNAT');
    const bound = renderRules(c, { bridges: [], ports: [{ bridge: 'berth0', proto: 'udp', hostIp: '192.0.2.2', hostPort: 53, containerIp: '172.17.0.3', containerPort: 53 }] });
    expect(bound).toContain('-A BERTH-DNAT-abcd1234 -d 192.0.2.2/32 ! -i berth0 -p udp -m udp --dport 53 -j DNAT --to-destination 172.17.0.3:53');
  });

  it('does not masquerade when enable_ip_masquerade is false', () => {
    const r = renderRules(c, { bridges: [{ name: 'br-x', subnet: '10.1.0.0/24', internal: false, masquerade: false }], ports: [] });
    expect(r).not.toContain('MASQUERADE');
  });
});

describe('nftables rules (hosts without iptables)', () => {
  const text = renderNft('berth_abcd1234', {
    bridges: [
      { name: 'berth0', subnet: '172.17.0.0/16', internal: false, masquerade: true },
      { name: 'br-int', subnet: '10.9.0.0/24', internal: true, masquerade: true },
    ],
    ports: [
      { bridge: 'berth0', proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80 },
      { bridge: 'berth0', proto: 'tcp', hostIp: '127.0.0.1', hostPort: 8081, containerIp: '172.17.0.2', containerPort: 81 },
    ],
  });

  it('replaces its own table atomically (create, delete, define in one script)', () => {
    expect(text.startsWith('table ip berth_abcd1234 {}\ndelete table ip berth_abcd1234\ntable ip berth_abcd1234 {\n')).toBe(true);
  });

  it('isolates bridges, masquerades egress and DNATs non-loopback published ports', () => {
    expect(text).toContain('iifname "berth0" oifname "br-int" drop');
    expect(text).toContain('iifname "br-int" oifname != "br-int" drop');
    expect(text).toContain('ip saddr 172.17.0.0/16 oifname != "berth0" masquerade');
    expect(text).not.toContain('ip saddr 10.9.0.0/24 oifname');
    expect(text).toContain('iifname != "berth0" tcp dport 8080 counter dnat to 172.17.0.2:80');
    expect(text).not.toContain('dport 8081');
    // Internal bridges are cut before DNATed connections pass; other isolation and the final drops come after.
    expect(text.indexOf('ct status dnat accept')).toBeGreaterThan(text.indexOf('oifname "br-int" iifname != "br-int" drop'));
    expect(text.indexOf('ct status dnat accept')).toBeLessThan(text.indexOf('iifname "berth0" oifname "br-int" drop'));
    expect(text.indexOf('oifname "berth0" ct state established,related accept')).toBeLessThan(text.indexOf('oifname "berth0" iifname != "berth0" drop'));
  });
});

describe('appending published ports without rebuilding the chains', () => {
  const c = chainNames('abcd1234');
  const bridges = [{ name: 'berth0', subnet: '172.17.0.0/16', internal: false, masquerade: true }];
  const p1: FirewallPort = { bridge: 'berth0', proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80 };
  const p2: FirewallPort = { bridge: 'berth0', proto: 'udp', hostIp: '127.0.0.1', hostPort: 5353, containerIp: '172.17.0.3', containerPort: 53 };
  const ruleLines = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('-A')).sort();

  it('appends exactly the rules a full rebuild has for the new ports, flushing no chain', () => {
    const append = renderPortAppend(c, [p2]);
    expect(append.split('\n').filter((l) => l.startsWith(':'))).toEqual([]);
    expect(append).toMatch(/^\*filter\n[^*]*COMMIT\n\*nat\n[^*]*COMMIT\n$/);
    const before = renderRules(c, { bridges, ports: [p1] });
    const after = renderRules(c, { bridges, ports: [p1, p2] });
    expect([...ruleLines(before), ...ruleLines(append)].sort()).toEqual(ruleLines(after));
  });

  it('adds the same rules to the nft table as a full replace has', () => {
    const add = renderNftPortAdd('berth_abcd1234', [p1]);
    expect(add.trim().split('\n')).toEqual([
      'add rule ip berth_abcd1234 postrouting ip saddr 172.17.0.2 ip daddr 172.17.0.2 tcp dport 80 masquerade',
      'add rule ip berth_abcd1234 ports iifname != "berth0" tcp dport 8080 counter dnat to 172.17.0.2:80',
    ]);
    const full = renderNft('berth_abcd1234', { bridges, ports: [p1] });
    for (const l of add.trim().split('\n')) expect(full).toContain(l.replace(/^add rule ip berth_abcd1234 \w+ /, ''));
  });
});

describe('IPv6 forwarding rules (networks with EnableIPv6)', () => {
  const c = chainNames('abcd1234');
  it('covers only IPv6 bridges: isolation, return traffic, inside the bridge, egress unless internal, nothing else in', () => {
    const out = renderRules6(c, [
      { name: 'br-v4', subnet: '10.1.0.0/24', internal: false, masquerade: true },
      { name: 'br-a', subnet: '10.2.0.0/24', internal: false, masquerade: true, ipv6: true },
      { name: 'br-int', subnet: '10.3.0.0/24', internal: true, masquerade: true, ipv6: true },
    ]);
    expect(out).toBe(
      [
        '*filter',
        ':BERTH-FORWARD-abcd1234 - [0:0]',
        '-A BERTH-FORWARD-abcd1234 -i br-a -o br-int -j DROP',
        '-A BERTH-FORWARD-abcd1234 -i br-int ! -o br-int -j DROP',
        '-A BERTH-FORWARD-abcd1234 -o br-int ! -i br-int -j DROP',
        '-A BERTH-FORWARD-abcd1234 -i br-int -o br-a -j DROP',
        '-A BERTH-FORWARD-abcd1234 -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-A BERTH-FORWARD-abcd1234 -i br-a -o br-a -j ACCEPT',
        '-A BERTH-FORWARD-abcd1234 -o br-int -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-A BERTH-FORWARD-abcd1234 -i br-int -o br-int -j ACCEPT',
        '-A BERTH-FORWARD-abcd1234 -i br-a ! -o br-a -j ACCEPT',
        '-A BERTH-FORWARD-abcd1234 ! -i br-a -o br-a -j DROP',
        '-A BERTH-FORWARD-abcd1234 ! -i br-int -o br-int -j DROP',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(renderRules6(c, [])).toBe('*filter\n:BERTH-FORWARD-abcd1234 - [0:0]\nCOMMIT\n');
  });
});
