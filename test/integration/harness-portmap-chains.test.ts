import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { removalScript } from '../helpers/portmap-chains.js';

// What the CNI portmap plugin (1.1.1) leaves in the nat table after a pod with a host port, as `iptables -S` prints it.
const SHARED = [
  '-N CNI-HOSTPORT-DNAT',
  '-N CNI-HOSTPORT-MASQ',
  '-N CNI-HOSTPORT-SETMARK',
  '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
  '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
  '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
  '-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE',
  '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
];
// ...and while that pod lives.
const POD = [
  '-N CNI-DN-b38e74f75ac866a6e37df',
  '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"test-1\\" id: \\"f4c7\\"" -m multiport --dports 20526 -j CNI-DN-b38e74f75ac866a6e37df',
  '-A CNI-DN-b38e74f75ac866a6e37df -s 192.0.2.0/24 -p tcp -m tcp --dport 20526 -j CNI-HOSTPORT-SETMARK',
  '-A CNI-DN-b38e74f75ac866a6e37df -p tcp -m tcp --dport 20526 -j DNAT --to-destination 192.0.2.4:8080',
];
const ALL = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK'];
const S = (rules: string[]): string[] => ['-P PREROUTING ACCEPT', '-P INPUT ACCEPT', '-P OUTPUT ACCEPT', '-P POSTROUTING ACCEPT', ...rules];

/** Runs a shell script in a network namespace of its own (its nat table is empty and nobody else's). */
const inFreshNetns = (script: string): string => execFileSync('unshare', ['-n', 'sh', '-ec', script], { encoding: 'utf8' });

describe('test harness: removing the CNI portmap chains a test session created', () => {
  it('deletes the jumps, portmap fixed rules and the chains, in one transaction', () => {
    expect(removalScript(S(SHARED), ALL)).toBe(
      [
        '*nat',
        '-D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
        '-D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
        '-D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
        '-D CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE',
        '-D CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
        '-X CNI-HOSTPORT-DNAT',
        '-X CNI-HOSTPORT-MASQ',
        '-X CNI-HOSTPORT-SETMARK',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('leaves chains alone while a pod rule is in them, and chains that were there before', () => {
    expect(removalScript(S([...SHARED, ...POD]), ALL)).toBeUndefined();
    expect(removalScript(S(SHARED), [])).toBeUndefined();
    // only the chain the session created goes; the jump to one that was there stays
    expect(removalScript(S(SHARED), ['CNI-HOSTPORT-MASQ'])).toBe(
      '*nat\n-D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ\n-D CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE\n-X CNI-HOSTPORT-MASQ\nCOMMIT\n',
    );
  });

  it('empties the table with iptables-restore, and changes nothing when a rule appeared after the look', () => {
    const setup = (rules: string[]): string => `printf '%s\\n' '*nat' ${rules.map((r) => `'${r.replace(/'/g, `'\\''`)}'`).join(' ')} COMMIT | iptables-restore -w --noflush`;
    const script = removalScript(S(SHARED), ALL) as string;
    const quoted = `'${script.replace(/'/g, `'\\''`)}'`;
    // the whole sequence as the plugin left it: removed
    expect(inFreshNetns(`${setup(SHARED)}; printf %s ${quoted} | iptables-restore -w --noflush; iptables -w -t nat -S`).trim().split('\n')).toEqual(S([]));
    // a pod arrived between the look and the removal: the transaction fails as a whole, nothing is lost
    const raced = inFreshNetns(`${setup([...SHARED, ...POD])}; printf %s ${quoted} | iptables-restore -w --noflush 2>/dev/null || echo refused; iptables -w -t nat -S`);
    expect(raced).toContain('refused');
    for (const r of [...SHARED, ...POD]) expect(raced).toContain(r);
  });
});
