import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetHarness, dnsQuery, randomHex, startHttpd } from './network-harness.js';
import { httpGet, refused } from '../helpers/net-client.js';
import { processStartTime } from '../../src/daemon-lock.js';
import { Firewall, firewallTag } from '../../src/network/firewall.js';

describe('network state across daemon restarts and crashes', () => {
  let h: NetHarness;
  let stopHttpd: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    // A bridge name of its own: a daemon of a concurrent test file must not take it while this one is down.
    h = await NetHarness.start({ bip: '10.245.0.1/24', defaultBridgeName: `brs${randomHex(8)}` });
  });

  afterAll(async () => {
    await stopHttpd?.();
    await h.destroy();
    expect(h.ownedLinks()).toEqual([]);
    expect(h.rules()).not.toContain(h.tag);
  });

  it('keeps running sandboxes through a restart and rebuilds their proxies, rules and DNS; releases the dead ones', async () => {
    await h.service.create({ Name: 'rs-net', IPAM: { Config: [{ Subnet: '10.246.0.0/24' }] } });
    const live = randomHex();
    const dead = randomHex();
    const liveInfo = await h.service.createSandbox(live, {
      name: 'survivor', mode: 'rs-net', hostname: 'survivor', filesDir: h.containerDir(live),
      portBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18097' }] },
    });
    const deadInfo = await h.service.createSandbox(dead, { name: 'victim', mode: 'rs-net', hostname: 'victim', filesDir: h.containerDir(dead) });
    const httpd = await startHttpd(liveInfo.netnsPath!, 80, 'still-here');
    stopHttpd = httpd.stop;
    expect(await httpGet('127.0.0.1', 18097)).toBe('still-here');
    const vethsBefore = h.ownedLinks().filter((l) => l.startsWith('bv'));
    expect(vethsBefore.length).toBe(2);

    await h.close();
    // Daemon down: listeners and rules are gone, the sandboxes (netns, veths, bridge) are not; no
    // pre-made spare namespace is left behind.
    expect(readdirSync(join(h.dir, 'run', 'netns')).sort()).toEqual([live, dead].sort());
    expect(await refused('127.0.0.1', 18097)).toBe(true);
    expect(h.rules()).not.toContain(h.tag);
    expect(h.ownedLinks().filter((l) => l.startsWith('bv')).sort()).toEqual(vethsBefore.sort());

    await h.open();
    await h.service.restore([live]);
    expect(await httpGet('127.0.0.1', 18097)).toBe('still-here');
    expect(h.rules()).toContain(`BERTH-FORWARD-${h.tag}`);
    const ip = liveInfo.settings.Networks['rs-net']!.IPAddress;
    expect((await dnsQuery(liveInfo.netnsPath!, '10.246.0.1', 53, 'survivor')).answers.map((a) => a.address)).toEqual([ip]);
    expect(existsSync(deadInfo.netnsPath!)).toBe(false);
    expect(h.ownedLinks().filter((l) => l.startsWith('bv')).length).toBe(1);
    expect(Object.keys(h.service.inspect('rs-net').Containers)).toEqual([live]);
    // The dead container's address is free again.
    const again = randomHex();
    const reused = await h.service.createSandbox(again, { name: 'reuse', mode: 'rs-net', hostname: 'r', filesDir: h.containerDir(again) });
    expect(reused.settings.Networks['rs-net']!.IPAddress).toBe(deadInfo.settings.Networks['rs-net']!.IPAddress);
    await h.service.releaseSandbox(again);
    await h.service.releaseSandbox(live);
    await h.service.remove('rs-net');
  });

  it('removes leftovers of a crash at start: tagged links and namespaces nobody owns', async () => {
    await h.close();
    execFileSync('ip', ['link', 'add', 'bvleftover01', 'type', 'veth', 'peer', 'name', 'bvleftover01p']);
    execFileSync('ip', ['link', 'set', 'dev', 'bvleftover01', 'alias', h.owner]);
    const nsDir = join(h.dir, 'run', 'netns');
    mkdirSync(nsDir, { recursive: true });
    const stale = join(nsDir, randomHex());
    closeSync(openSync(stale, 'w'));
    execFileSync('unshare', [`--net=${stale}`, 'true']);
    await h.open();
    await h.service.restore([]);
    expect(h.ownedLinks()).not.toContain('bvleftover01');
    expect(execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })).not.toContain('bvleftover01');
    const deadline = Date.now() + 5000;
    while (existsSync(stale) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(stale)).toBe(false);
  });

  it('keeps the default bridge subnet across restarts', async () => {
    const before = h.service.inspect('bridge').IPAM.Config[0];
    await h.close();
    await h.open();
    await h.service.restore([]);
    expect(h.service.inspect('bridge').IPAM.Config[0]).toEqual(before);
  });
  it("never takes over another daemon's bridge device: the default bridge moves to a free name", async () => {
    const name = h.service.inspect('bridge').Options['com.docker.network.bridge.name']!;
    await h.close();
    // Meanwhile another daemon created a device of that name.
    execFileSync('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
    execFileSync('ip', ['link', 'set', 'dev', name, 'alias', 'berth:someone-else']);
    try {
      await h.open();
      await h.service.restore([]);
      const now = h.service.inspect('bridge').Options['com.docker.network.bridge.name']!;
      expect(now).not.toBe(name);
      expect(h.ownedLinks()).toContain(now);
      expect(execFileSync('ip', ['-d', '-o', 'link', 'show', 'dev', name], { encoding: 'utf8' })).toContain('berth:someone-else');
    } finally {
      execFileSync('ip', ['link', 'del', 'dev', name]);
    }
  });

  it("never deletes at stop a bridge device that is no longer its own (another daemon took the name after a kill)", async () => {
    const name = h.service.inspect('bridge').Options['com.docker.network.bridge.name']!;
    // While this daemon runs (as after its kill and restart), another daemon judged it dead, removed its bridge and
    // made its own device of that name.
    execFileSync('ip', ['link', 'del', 'dev', name]);
    execFileSync('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
    execFileSync('ip', ['link', 'set', 'dev', name, 'alias', 'berth:someone-else']);
    try {
      await h.close();
      expect(execFileSync('ip', ['-d', '-o', 'link', 'show', 'dev', name], { encoding: 'utf8' })).toContain('berth:someone-else');
      await h.open();
      await h.service.restore([]);
    } finally {
      execFileSync('ip', ['link', 'del', 'dev', name]);
    }
  });
});

describe('leftovers of daemons that are gone, and daemons side by side', () => {
  // A records directory of this test's own, so that no other daemon on the host sees (and cleans) its fake dead daemons.
  const daemons = join(tmpdir(), `bdaemons-${randomHex(8)}`);
  afterAll(() => rmSync(daemons, { recursive: true, force: true }));

  /** What a daemon killed mid-run leaves: its record, a bridge with its alias, its chains jumping from FORWARD. */
  async function killedDaemon(h: NetHarness, record: string, withPort: boolean): Promise<{ id: string; bridge: string; tag: string; veth: string }> {
    const id = randomUUID();
    const tag = firewallTag(id);
    const bridge = `bkd${randomHex(8)}`;
    const veth = `bkv${randomHex(8)}`;
    mkdirSync(daemons, { recursive: true });
    writeFileSync(join(daemons, id), record);
    execFileSync('ip', ['link', 'add', 'name', bridge, 'type', 'bridge']);
    execFileSync('ip', ['link', 'set', 'dev', bridge, 'alias', `berth:${id}`]);
    if (withPort) {
      execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
      execFileSync('ip', ['link', 'set', 'dev', veth, 'alias', `berth:${id}`, 'master', bridge]);
    }
    const fw = new Firewall(h.log, tag, true);
    await fw.start();
    await fw.apply({ bridges: [{ name: bridge, subnet: '10.221.0.0/24', internal: false, masquerade: true }], ports: [] });
    return { id, bridge, tag, veth };
  }

  function linkExists(name: string): boolean {
    try {
      execFileSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  }

  async function removeFake(h: NetHarness, k: { id: string; bridge: string; tag: string; veth: string }): Promise<void> {
    const fw = new Firewall(h.log, k.tag, true);
    await fw.start();
    await fw.stop();
    for (const l of [k.veth, k.bridge]) if (linkExists(l)) execFileSync('ip', ['link', 'del', 'dev', l]);
    rmSync(join(daemons, k.id), { force: true });
  }

  it('a start removes the bridges, chains and record of a daemon proven dead, so a reused bridge name meets no stale DROP', async () => {
    const h = await NetHarness.start({ bip: '10.222.0.1/24', defaultBridgeName: `brs${randomHex(8)}`, daemonsDir: daemons });
    const dead = await killedDaemon(h, '999999999 12345\n', false);
    const busy = await killedDaemon(h, '999999999 12345\n', true);
    const live = await killedDaemon(h, `${process.pid} ${processStartTime(process.pid)}\n`, false);
    try {
      expect(h.rules()).toContain(`-A BERTH-FORWARD-${dead.tag} ! -i ${dead.bridge} -o ${dead.bridge} -j DROP`);
      expect(execFileSync('ip6tables', ['-w', '-S'], { encoding: 'utf8' })).toContain(`-A FORWARD -j BERTH-FORWARD-${dead.tag}`);
      await h.close();
      await h.open();
      // Dead, nothing attached: everything of it is gone.
      expect(linkExists(dead.bridge)).toBe(false);
      expect(h.rules()).not.toContain(dead.tag);
      expect(execFileSync('ip6tables', ['-w', '-S'], { encoding: 'utf8' })).not.toContain(dead.tag);
      expect(existsSync(join(daemons, dead.id))).toBe(false);
      // Dead but a port is still on its bridge (containers that may be taken back): untouched.
      expect(linkExists(busy.bridge)).toBe(true);
      expect(linkExists(busy.veth)).toBe(true);
      expect(h.rules()).toContain(`BERTH-FORWARD-${busy.tag}`);
      expect(existsSync(join(daemons, busy.id))).toBe(true);
      // Alive: untouched.
      expect(linkExists(live.bridge)).toBe(true);
      expect(h.rules()).toContain(`BERTH-FORWARD-${live.tag}`);
      // This daemon's own record is there while it runs, and gone after a clean stop.
      expect(existsSync(join(daemons, h.daemonId))).toBe(true);
    } finally {
      for (const k of [dead, busy, live]) await removeFake(h, k);
      await h.destroy();
    }
    expect(existsSync(join(daemons, h.daemonId))).toBe(false);
  });

  it('IPv6 networks get forwarding rules in ip6tables (nothing enters their bridge from outside), removed with the network and at stop', async () => {
    const h = await NetHarness.start({ bip: '10.223.0.1/24', defaultBridgeName: `brs${randomHex(8)}` });
    const rules6 = (): string => execFileSync('ip6tables', ['-w', '-S'], { encoding: 'utf8' });
    try {
      expect(rules6()).toContain(`-A FORWARD -j BERTH-FORWARD-${h.tag}`);
      const name = `v6-${randomHex(6)}`;
      await h.service.create({ Name: name, EnableIPv6: true, IPAM: { Config: [{ Subnet: `fd00:${randomHex(4)}::/64` }] } });
      const bridge = h.service.inspect(name).Options['com.docker.network.bridge.name'] ?? `br-${h.service.inspect(name).Id.slice(0, 12)}`;
      expect(rules6()).toContain(`-A BERTH-FORWARD-${h.tag} ! -i ${bridge} -o ${bridge} -j DROP`);
      await h.service.remove(name);
      expect(rules6()).not.toContain(bridge);
    } finally {
      await h.destroy();
    }
    expect(rules6()).not.toContain(h.tag);
  });

  it('two daemons creating networks at the same moment never pick the same subnet', async () => {
    const a = await NetHarness.start({ bip: '10.224.0.1/24', defaultBridgeName: `brs${randomHex(8)}` });
    const b = await NetHarness.start({ bip: '10.225.0.1/24', defaultBridgeName: `brs${randomHex(8)}` });
    const names = [0, 1, 2].map((i) => `side-${i}-${randomHex(6)}`);
    try {
      await Promise.all(names.flatMap((n) => [a.service.create({ Name: n }), b.service.create({ Name: n })]));
      const subnets = names.flatMap((n) => [a, b].map((h) => h.service.inspect(n).IPAM.Config[0]!.Subnet));
      expect(new Set(subnets).size).toBe(6);
    } finally {
      for (const h of [a, b]) {
        for (const n of names) await h.service.remove(n).catch(() => undefined);
        await h.destroy();
      }
    }
    expect(a.ownedLinks()).toEqual([]);
    expect(b.ownedLinks()).toEqual([]);
  });
});
