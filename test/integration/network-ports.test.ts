import { execFileSync, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetHarness, inNetns, randomHex, startHttpd, waitFor, wgetFrom } from './network-harness.js';
import { httpGet, refused } from '../helpers/net-client.js';

function dnatPackets(chain: string): number {
  const out = execFileSync('iptables', ['-w', '-t', 'nat', '-L', chain, '-v', '-n', '-x'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((cols) => cols[2] === 'DNAT')
    .reduce((sum, cols) => sum + Number(cols[0]), 0);
}

describe('published ports (userland proxy and DNAT) and the FORWARD policy', () => {
  let h: NetHarness;
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    h = await NetHarness.start({ bip: '10.242.0.1/24' });
    await h.service.create({ Name: 'pt-net', IPAM: { Config: [{ Subnet: '10.243.0.0/24' }] } });
  });

  afterAll(async () => {
    for (const s of stops.reverse()) await s();
    await h.destroy();
    expect(h.ownedLinks()).toEqual([]);
    expect(h.rules()).not.toContain(h.tag);
  });

  async function sandbox(mode: string, extra: Record<string, unknown> = {}) {
    const id = randomHex();
    const info = await h.service.createSandbox(id, { name: `pt-${id.slice(0, 6)}`, mode, hostname: id.slice(0, 12), filesDir: h.containerDir(id), ...extra });
    let released = false;
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      await h.service.releaseSandbox(id);
    };
    stops.push(release);
    return { id, info, release };
  }

  it('serves -p 127.0.0.1:18089:80 through the userland proxy, shows it in Ports, and closes it on release', async () => {
    const web = await sandbox('default', { portBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18089' }] }, exposedPorts: ['80/tcp'] });
    const httpd = await startHttpd(web.info.netnsPath!, 80, 'proxied');
    stops.push(httpd.stop);
    expect(web.info.settings.Ports).toEqual({ '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18089' }] });
    expect(h.service.portList(web.id)).toEqual([{ IP: '127.0.0.1', PrivatePort: 80, PublicPort: 18089, Type: 'tcp' }]);
    expect(await httpGet('127.0.0.1', 18089)).toBe('proxied');
    await web.release();
    expect(await refused('127.0.0.1', 18089)).toBe(true);
  });

  it('gives -p 80 and -P ephemeral host ports from 32768-60999', async () => {
    const web = await sandbox('default', { portBindings: { '80/tcp': [{ HostIp: '', HostPort: '' }] }, publishAll: true, exposedPorts: ['80/tcp', '81/tcp'] });
    const httpd = await startHttpd(web.info.netnsPath!, 80, 'ephemeral');
    stops.push(httpd.stop);
    const ports = web.info.settings.Ports;
    const p80 = Number(ports['80/tcp']![0]!.HostPort);
    const p81 = Number(ports['81/tcp']![0]!.HostPort);
    for (const p of [p80, p81]) {
      expect(p).toBeGreaterThanOrEqual(32768);
      expect(p).toBeLessThanOrEqual(60999);
    }
    expect(ports['80/tcp']![0]!.HostIp).toBe('0.0.0.0');
    expect(await httpGet('127.0.0.1', p80)).toBe('ephemeral');
  });

  it('hands out ephemeral host ports after the last one given, as dockerd does: a port just given back is not reused at once', async () => {
    const first = await sandbox('default', { portBindings: { '80/tcp': [{ HostIp: '', HostPort: '' }] }, exposedPorts: ['80/tcp'] });
    const p1 = Number(first.info.settings.Ports['80/tcp']![0]!.HostPort);
    await first.release();
    const second = await sandbox('default', { portBindings: { '80/tcp': [{ HostIp: '', HostPort: '' }] }, exposedPorts: ['80/tcp'] });
    const p2 = Number(second.info.settings.Ports['80/tcp']![0]!.HostPort);
    expect(p2).not.toBe(p1);
    expect(p2).toBeGreaterThanOrEqual(32768);
  });

  it("refuses a second container on the same port with dockerd's error and leaves nothing behind", async () => {
    await sandbox('default', { portBindings: { '80/tcp': [{ HostPort: '18090' }] } });
    // the veths of sandboxes released by earlier tests go in the background: count once they are gone
    await h.service.settled();
    const before = h.ownedLinks().length;
    const id = randomHex();
    await expect(
      h.service.createSandbox(id, { name: 'second', mode: 'default', hostname: 'x', filesDir: h.containerDir(id), portBindings: { '80/tcp': [{ HostPort: '18090' }] } }),
    ).rejects.toThrow('Bind for 0.0.0.0:18090 failed: port is already allocated');
    expect(h.ownedLinks().length).toBe(before);
    expect(h.service.settings(id)).toBeUndefined();
    // A port held by something else on the host: the userland proxy's bind error.
    const blocker = await new Promise<Server>((resolve) => {
      const srv = createServer();
      srv.listen(18091, '127.0.0.1', () => resolve(srv));
    });
    try {
      const id2 = randomHex();
      await expect(
        h.service.createSandbox(id2, { name: 'third', mode: 'default', hostname: 'x', filesDir: h.containerDir(id2), portBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18091' }] } }),
      ).rejects.toThrow('Error starting userland proxy: listen tcp4 127.0.0.1:18091: bind: address already in use');
    } finally {
      blocker.close();
    }
  });

  it('takes the first free port of a host port range', async () => {
    await sandbox('default', { portBindings: { '80/tcp': [{ HostPort: '18092' }] } });
    const web = await sandbox('default', { portBindings: { '80/tcp': [{ HostPort: '18092-18094' }] } });
    expect(web.info.settings.Ports['80/tcp']).toEqual([{ HostIp: '0.0.0.0', HostPort: '18093' }]);
  });

  it('forwards UDP through the proxy', async () => {
    const srv = await sandbox('default', { portBindings: { '5353/udp': [{ HostIp: '127.0.0.1', HostPort: '18095' }] } });
    // A UDP server answering each datagram with "pong".
    const echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5353))\nwhile True:\n d,a=s.recvfrom(2048)\n s.sendto(b'pong '+d,a)\n";
    const child = spawn('nsenter', [`--net=${srv.info.netnsPath}`, 'python3', '-c', echo], { stdio: 'ignore' });
    stops.push(async () => {
      child.kill('SIGKILL');
    });
    const sock = createSocket('udp4');
    try {
      const reply = await waitFor(
        () =>
          new Promise<string | undefined>((resolve) => {
            const t = setTimeout(() => resolve(undefined), 300);
            sock.once('message', (m) => {
              clearTimeout(t);
              resolve(m.toString());
            });
            sock.send('ping\n', 18095, '127.0.0.1');
          }),
        'a UDP reply through the proxy',
      );
      expect(reply).toContain('pong');
    } finally {
      sock.close();
    }
  });

  it('installs DNAT for published ports: host traffic to the bridge address is rewritten to the container', async () => {
    const web = await sandbox('pt-net', { portBindings: { '80/tcp': [{ HostPort: '18096' }] } });
    const httpd = await startHttpd(web.info.netnsPath!, 80, 'dnat');
    stops.push(httpd.stop);
    const rules = execFileSync('iptables', ['-w', '-t', 'nat', '-S', h.service.chains.dnat], { encoding: 'utf8' });
    expect(rules).toContain(`--dport 18096 -j DNAT --to-destination ${web.info.settings.Networks['pt-net']!.IPAddress}:80`);
    const before = dnatPackets(h.service.chains.dnat);
    expect(await httpGet('10.243.0.1', 18096)).toBe('dnat');
    expect(dnatPackets(h.service.chains.dnat)).toBeGreaterThan(before);
    await web.release();
    await h.service.settled();
    expect(execFileSync('iptables', ['-w', '-t', 'nat', '-S', h.service.chains.dnat], { encoding: 'utf8' })).not.toContain('18096');
  });

  it('lets a container on another network reach a published port through its own gateway (DNAT across bridges)', async () => {
    const web = await sandbox('pt-net', { portBindings: { '80/tcp': [{ HostPort: '18099' }] } });
    const httpd = await startHttpd(web.info.netnsPath!, 80, 'across');
    stops.push(httpd.stop);
    const client = await sandbox('default');
    const before = dnatPackets(h.service.chains.dnat);
    expect((await wgetFrom(client.info.netnsPath!, 'http://10.242.0.1:18099/')).out).toBe('across');
    expect(dnatPackets(h.service.chains.dnat)).toBeGreaterThan(before);
    // The container address itself stays unreachable from the other network.
    const ip = web.info.settings.Networks['pt-net']!.IPAddress;
    expect((await wgetFrom(client.info.netnsPath!, `http://${ip}/`, 2)).code).not.toBe(0);
  });

  it('keeps containers talking to each other and to the host with a FORWARD policy of DROP', async () => {
    await h.service.create({ Name: 'pt-drop', IPAM: { Config: [{ Subnet: '10.244.0.0/24' }] } });
    const a = await sandbox('pt-drop');
    const b = await sandbox('pt-drop');
    const other = await sandbox('default');
    const httpd = await startHttpd(a.info.netnsPath!, 80, 'through-drop');
    stops.push(httpd.stop);
    // The policy DROP as it applies to this test's bridges: a DROP at the end of FORWARD for what enters or leaves
    // them (after the daemon's jump, which is first). Setting the policy itself would drop the forwarded traffic of
    // the test files running meanwhile too (an nft-backend daemon's, CNI pods'), which nothing of theirs accepts.
    const bridgeOf = (net: string): string => {
      const n = h.service.inspect(net);
      return n.Options['com.docker.network.bridge.name'] ?? `br-${n.Id.slice(0, 12)}`;
    };
    const drops = [bridgeOf('pt-drop'), bridgeOf('bridge')].flatMap((br) => [['-i', br, '-j', 'DROP'], ['-o', br, '-j', 'DROP']]);
    for (const rule of drops) execFileSync('iptables', ['-w', '-A', 'FORWARD', ...rule]);
    try {
      const aIp = a.info.settings.Networks['pt-drop']!.IPAddress;
      expect((await wgetFrom(b.info.netnsPath!, `http://${aIp}/`)).out).toBe('through-drop');
      expect(await httpGet(aIp, 80)).toBe('through-drop');
      expect((await inNetns(other.info.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '2', '10.242.0.1'])).code).toBe(0);
      // Isolation still holds between bridges.
      expect((await wgetFrom(other.info.netnsPath!, `http://${aIp}/`, 2)).code).not.toBe(0);
    } finally {
      for (const rule of drops) execFileSync('iptables', ['-w', '-D', 'FORWARD', ...rule]);
    }
  });
});
