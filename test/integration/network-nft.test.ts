import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetHarness, passIptablesForward, randomHex, startHttpd, wgetFrom } from './network-harness.js';
import { httpGet } from '../helpers/net-client.js';

const NFT = '/usr/sbin/nft';

function nftList(table: string): string {
  try {
    return execFileSync(NFT, ['list', 'table', 'ip', table], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
}

function dnatCount(table: string): number {
  return [...nftList(table).matchAll(/counter packets (\d+) bytes \d+ dnat/g)].reduce((s, m) => s + Number(m[1]), 0);
}

describe('firewall on an nftables-only host (no iptables tool)', () => {
  let h: NetHarness;
  let bin: string;
  const savedPath = process.env.PATH;
  const stops: (() => Promise<void>)[] = [];
  let unpass = (): void => undefined;

  beforeAll(async () => {
    bin = mkdtempSync(join(tmpdir(), 'bnnft-'));
    for (const tool of ['ip', 'nsenter', 'unshare', 'umount', 'busybox', 'timeout', 'sh', 'true', 'nft', 'mount']) {
      symlinkSync(execFileSync('which', [tool], { encoding: 'utf8' }).trim(), join(bin, tool));
    }
    process.env.PATH = bin;
    h = await NetHarness.start({ bip: '10.249.0.1/24' });
    await h.service.create({ Name: 'nft-a', IPAM: { Config: [{ Subnet: '10.250.0.0/24' }] } });
    const bridgeOf = (net: string): string => {
      const n = h.service.inspect(net);
      return n.Options['com.docker.network.bridge.name'] ?? `br-${n.Id.slice(0, 12)}`;
    };
    stops.push(async () => unpass());
    unpass = passIptablesForward([bridgeOf('bridge'), bridgeOf('nft-a')]);
  });

  afterAll(async () => {
    for (const s of stops.reverse()) await s();
    await h.destroy();
    process.env.PATH = savedPath;
    rmSync(bin, { recursive: true, force: true });
    expect(h.ownedLinks()).toEqual([]);
    expect(nftList(h.service.nftTable)).toBe('');
  });

  it('uses a table of its own with masquerade and isolation, and no warning', () => {
    expect(h.service.firewallBackend).toBe('nft');
    expect(h.service.warnings()).toEqual([]);
    const t = nftList(h.service.nftTable);
    expect(t).toContain('ip saddr 10.250.0.0/24 oifname != ');
    expect(t).toContain('masquerade');
    expect(t).toMatch(/iifname "berth\d+" oifname "br-[0-9a-f]{12}" drop/);
  });

  it('DNATs published ports and keeps networks isolated', async () => {
    const id = randomHex();
    const web = await h.service.createSandbox(id, {
      name: 'nftweb', mode: 'nft-a', hostname: 'nftweb', filesDir: h.containerDir(id),
      portBindings: { '80/tcp': [{ HostPort: '18100' }] },
    });
    stops.push(() => h.service.releaseSandbox(id));
    const httpd = await startHttpd(web.netnsPath!, 80, 'nft-dnat');
    stops.push(httpd.stop);
    const before = dnatCount(h.service.nftTable);
    expect(await httpGet('10.250.0.1', 18100)).toBe('nft-dnat');
    expect(dnatCount(h.service.nftTable)).toBeGreaterThan(before);

    const otherId = randomHex();
    const other = await h.service.createSandbox(otherId, { name: 'nftother', mode: 'default', hostname: 'o', filesDir: h.containerDir(otherId) });
    stops.push(() => h.service.releaseSandbox(otherId));
    const ip = web.settings.Networks['nft-a']!.IPAddress;
    expect((await wgetFrom(other.netnsPath!, `http://${ip}/`, 2)).code).not.toBe(0);
    // ...but the published port is reachable through its own gateway.
    expect((await wgetFrom(other.netnsPath!, 'http://10.249.0.1:18100/')).out).toBe('nft-dnat');
  });
});
