import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetHarness, randomHex, startHttpd } from './network-harness.js';
import { httpGet } from '../helpers/net-client.js';

describe('networking on a host without iptables', () => {
  let h: NetHarness;
  let bin: string;
  const savedPath = process.env.PATH;
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    // A PATH holding every tool Berth uses except iptables (this worker process only).
    bin = mkdtempSync(join(tmpdir(), 'bnoipt-'));
    for (const tool of ['ip', 'nsenter', 'unshare', 'umount', 'busybox', 'timeout', 'sh', 'true']) {
      symlinkSync(execFileSync('which', [tool], { encoding: 'utf8' }).trim(), join(bin, tool));
    }
    process.env.PATH = bin;
    h = await NetHarness.start({ bip: '10.248.0.1/24' });
  });

  afterAll(async () => {
    for (const s of stops.reverse()) await s();
    await h.destroy();
    process.env.PATH = savedPath;
    rmSync(bin, { recursive: true, force: true });
    expect(h.ownedLinks()).toEqual([]);
  });

  it('says so in the warnings and installs no rules', () => {
    expect(h.service.warnings().join('\n')).toMatch(/No iptables/);
    expect(h.service.firewallBackend).toBe('none');
    process.env.PATH = savedPath;
    try {
      expect(h.rules()).not.toContain(h.tag);
    } finally {
      process.env.PATH = bin;
    }
  });

  it('still publishes ports through the userland proxy', async () => {
    const id = randomHex();
    const info = await h.service.createSandbox(id, {
      name: 'noipt', mode: 'default', hostname: 'noipt', filesDir: h.containerDir(id),
      portBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18098' }] },
    });
    stops.push(() => h.service.releaseSandbox(id));
    const httpd = await startHttpd(info.netnsPath!, 80, 'no-iptables');
    stops.push(httpd.stop);
    expect(await httpGet('127.0.0.1', 18098)).toBe('no-iptables');
  });
});
