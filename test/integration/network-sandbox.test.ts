import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetHarness, dnsQuery, fakeUpstream, inNetns, randomHex, startHttpd, wgetFrom } from './network-harness.js';
import { createSocket } from 'node:dgram';
import { buildQuery, RCODE_SERVFAIL, TYPE_AAAA } from '../../src/network/dns-codec.js';
import { httpGet } from '../helpers/net-client.js';

/** A query from the host's own namespace: resolves with the reply, rejects when none comes within 1.5 s. */
function hostQuery(server: string, name: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no answer'));
    }, 1500);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(buildQuery(1, name), 53, server);
  });
}

describe('network sandboxes (netns, veth, bridge, DNS, files) through NetworkService', () => {
  let h: NetHarness;
  let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    upstream = await fakeUpstream('203.0.113.77');
    h = await NetHarness.start({ bip: '10.231.0.1/24', dnsUpstreams: () => [{ host: '127.0.0.1', port: upstream.port }] });
  });

  afterAll(async () => {
    for (const s of stops) await s();
    await h.destroy();
    await upstream.close();
    expect(h.ownedLinks()).toEqual([]);
    expect(h.rules()).not.toContain(h.tag);
  });

  async function sandbox(name: string, mode: string, extra: Record<string, unknown> = {}) {
    const id = randomHex();
    const info = await h.service.createSandbox(id, { name, mode, hostname: id.slice(0, 12), filesDir: h.containerDir(id), ...extra });
    stops.push(() => h.service.releaseSandbox(id));
    return { id, info };
  }

  it('gives a default-bridge sandbox an address, MAC, default route and a reachable server from the host', async () => {
    const { id, info } = await sandbox('plain', 'default');
    const ep = info.settings.Networks.bridge!;
    expect(ep.IPAddress).toMatch(/^10\.231\.0\.\d+$/);
    expect(ep.Gateway).toBe('10.231.0.1');
    expect(ep.IPPrefixLen).toBe(24);
    expect(info.settings.IPAddress).toBe(ep.IPAddress);
    expect(info.settings.SandboxKey).toBe(info.netnsPath);
    const addr = (await inNetns(info.netnsPath!, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']));
    expect(addr.out).toContain(`${ep.IPAddress}/24`);
    expect((await inNetns(info.netnsPath!, ['ip', 'link', 'show', 'dev', 'eth0'])).out).toContain(ep.MacAddress);
    expect((await inNetns(info.netnsPath!, ['ip', 'route', 'show', 'default'])).out).toContain('default via 10.231.0.1 dev eth0');
    expect((await inNetns(info.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '2', '10.231.0.1'])).code).toBe(0);
    const httpd = await startHttpd(info.netnsPath!, 8080, 'hello-from-plain');
    stops.push(httpd.stop);
    expect(await httpGet(ep.IPAddress, 8080)).toBe('hello-from-plain');
    // The default bridge has no embedded DNS: resolv.conf carries the host's (non-loopback) servers.
    expect(readFileSync(info.resolvConfPath, 'utf8')).not.toContain('10.231.0.1');
    const hosts = readFileSync(info.hostsPath, 'utf8');
    expect(hosts).toContain(`${ep.IPAddress}\t${id.slice(0, 12)}`);
    expect(readFileSync(info.hostnamePath, 'utf8')).toBe(`${id.slice(0, 12)}\n`);
    const net = h.service.inspect('bridge');
    expect(net.Containers[id]).toEqual({ Name: 'plain', EndpointID: ep.EndpointID, MacAddress: ep.MacAddress, IPv4Address: `${ep.IPAddress}/24`, IPv6Address: '' });
  });

  it('reaches a container by name and alias on a user network, and not from another network', async () => {
    await h.service.create({ Name: 'sb-front', IPAM: { Config: [{ Subnet: '10.232.0.0/24' }] } });
    await h.service.create({ Name: 'sb-other', IPAM: { Config: [{ Subnet: '10.233.0.0/24' }] } });
    const web = await sandbox('web', 'sb-front', { endpoints: { 'sb-front': { aliases: ['webalias'] } } });
    const client = await sandbox('client', 'sb-front');
    const outsider = await sandbox('outsider', 'sb-other');
    const webIp = web.info.settings.Networks['sb-front']!.IPAddress;
    expect(web.info.settings.Networks['sb-front']!.DNSNames).toEqual(['web', 'webalias', web.id.slice(0, 12)]);
    expect(web.info.settings.IPAddress).toBe('');
    const httpd = await startHttpd(web.info.netnsPath!, 80, 'web-page');
    stops.push(httpd.stop);

    expect(readFileSync(client.info.resolvConfPath, 'utf8')).toContain('nameserver 10.232.0.1');
    for (const name of ['web', 'webalias', web.id.slice(0, 12)]) {
      const r = (await wgetFrom(client.info.netnsPath!, `http://${name}/`, 3, client.info.resolvConfPath));
      expect(r.out, name).toBe('web-page');
    }
    // Another network: neither the name resolves there nor the address is reachable.
    expect((await wgetFrom(outsider.info.netnsPath!, 'http://web/', 3, outsider.info.resolvConfPath)).code).not.toBe(0);
    expect((await wgetFrom(outsider.info.netnsPath!, `http://${webIp}/`, 3)).code).not.toBe(0);
  });

  it('answers A queries of the embedded DNS, NODATA for AAAA, and forwards unknown names upstream', async () => {
    await h.service.create({ Name: 'sb-dns', IPAM: { Config: [{ Subnet: '10.234.0.0/24' }] } });
    const db = await sandbox('db', 'sb-dns', { endpoints: { 'sb-dns': { aliases: ['database'] } } });
    const ip = db.info.settings.Networks['sb-dns']!.IPAddress;
    const ns = db.info.netnsPath!;
    const a = await dnsQuery(ns, '10.234.0.1', 53, 'database');
    expect(a.answers.map((x) => x.address)).toEqual([ip]);
    const aaaa = await dnsQuery(ns, '10.234.0.1', 53, 'db', TYPE_AAAA);
    expect(aaaa.rcode).toBe(0);
    expect(aaaa.answers).toEqual([]);
    const fwd = await dnsQuery(ns, '10.234.0.1', 53, 'example.test');
    expect(fwd.answers.map((x) => x.address)).toEqual(['203.0.113.77']);
    expect(upstream.queries).toContain('example.test');
    // From inside the container, through its resolv.conf.
    const look = (await inNetns(db.info.netnsPath!, ['busybox', 'nslookup', 'database', '10.234.0.1']));
    expect(look.out).toContain(ip);
    // Internal networks never forward (SERVFAIL, as dockerd); the host itself is not served at all.
    await h.service.create({ Name: 'sb-int', Internal: true, IPAM: { Config: [{ Subnet: '10.235.0.0/24' }] } });
    const inside = await sandbox('inside', 'sb-int');
    const nx = await dnsQuery(inside.info.netnsPath!, '10.235.0.1', 53, 'example.test');
    expect(nx.rcode).toBe(RCODE_SERVFAIL);
    expect((await inNetns(inside.info.netnsPath!, ['ip', 'route'])).out).not.toContain('default');
    await expect(hostQuery('10.234.0.1', 'database')).rejects.toThrow(/no answer/);
  });

  it('resolves names of every network the asker shares with the target', async () => {
    await h.service.create({ Name: 'sb-m1', IPAM: { Config: [{ Subnet: '10.236.0.0/24' }] } });
    await h.service.create({ Name: 'sb-m2', IPAM: { Config: [{ Subnet: '10.237.0.0/24' }] } });
    const multi = await sandbox('multi', 'sb-m1', { endpoints: { 'sb-m1': {}, 'sb-m2': {} } });
    const only2 = await sandbox('only2', 'sb-m2');
    expect(Object.keys(multi.info.settings.Networks)).toEqual(['sb-m1', 'sb-m2']);
    expect((await inNetns(multi.info.netnsPath!, ['ip', '-o', '-4', 'addr'])).out).toContain('eth1');
    // multi asks its primary network's server (10.236.0.1) for a container reachable only via sb-m2.
    const look = (await inNetns(multi.info.netnsPath!, ['busybox', 'nslookup', 'only2', '10.236.0.1']));
    expect(look.out).toContain(only2.info.settings.Networks['sb-m2']!.IPAddress);
  });

  it('honours a static IP and MAC, refuses a taken address, and allocates within the ip-range', async () => {
    await h.service.create({ Name: 'sb-static', IPAM: { Config: [{ Subnet: '10.238.0.0/24', IPRange: '10.238.0.64/26' }] } });
    const fixed = await sandbox('fixed', 'sb-static', { endpoints: { 'sb-static': { ipv4Address: '10.238.0.10', macAddress: '02:42:0a:ee:00:99' } } });
    const ep = fixed.info.settings.Networks['sb-static']!;
    expect(ep.IPAddress).toBe('10.238.0.10');
    expect(ep.MacAddress).toBe('02:42:0a:ee:00:99');
    expect(ep.IPAMConfig).toEqual({ IPv4Address: '10.238.0.10' });
    // the veths of sandboxes released by earlier tests go in the background: count once they are gone
    await h.service.settled();
    const vethsBefore = h.ownedLinks().filter((l) => l.startsWith('bv')).length;
    await expect(sandbox('clash', 'sb-static', { endpoints: { 'sb-static': { ipv4Address: '10.238.0.10' } } })).rejects.toThrow(/Address already in use/);
    const dyn = await sandbox('dyn', 'sb-static');
    expect(dyn.info.settings.Networks['sb-static']!.IPAddress).toBe('10.238.0.64');
    await expect(sandbox('bad', 'default', { endpoints: { bridge: { ipv4Address: '10.231.0.50' } } })).rejects.toThrow(/user defined networks only/);
    // Refused sandboxes leave no veth behind (dyn added exactly one).
    expect(h.ownedLinks().filter((l) => l.startsWith('bv')).length).toBe(vethsBefore + 1);
  });

  it('refuses to remove a network in use, then removes it once the sandbox is released', async () => {
    await h.service.create({ Name: 'sb-busy', IPAM: { Config: [{ Subnet: '10.239.0.0/24' }] } });
    const id = randomHex();
    await h.service.createSandbox(id, { name: 'busy', mode: 'sb-busy', hostname: 'busy', filesDir: h.containerDir(id) });
    await expect(h.service.remove('sb-busy')).rejects.toThrow(/has active endpoints/);
    await h.service.releaseSandbox(id);
    await h.service.remove('sb-busy');
    expect(() => h.service.inspect('sb-busy')).toThrow(/not found/);
  });

  it('writes --hostname, --add-host, --dns, --dns-search and --dns-option into the files', async () => {
    const { info } = await sandbox('files', 'default', {
      hostname: 'myhost', domainname: 'example.org', extraHosts: ['db.local:10.1.2.3', 'gw:host-gateway'],
      dns: ['10.9.9.9'], dnsSearch: ['corp.example'], dnsOptions: ['timeout:2'],
    });
    const hosts = readFileSync(info.hostsPath, 'utf8');
    expect(hosts).toContain('10.1.2.3\tdb.local');
    expect(hosts).toContain('10.231.0.1\tgw');
    expect(hosts).toMatch(/\tmyhost\.example\.org myhost\n/);
    expect(readFileSync(info.resolvConfPath, 'utf8')).toBe('search corp.example\nnameserver 10.9.9.9\noptions timeout:2\n');
    expect(readFileSync(info.hostnamePath, 'utf8')).toBe('myhost\n');
  });

  it('supports none, host and container:<id> modes', async () => {
    // More none sandboxes than spare namespaces are kept ready: each gets its own namespace with lo up only.
    const nones = [];
    for (let i = 0; i < 4; i++) nones.push(await sandbox(`nonet${i}`, 'none'));
    expect(new Set(nones.map((n) => n.info.netnsPath)).size).toBe(nones.length);
    for (const none of nones) {
      const links = (await inNetns(none.info.netnsPath!, ['ip', '-o', 'link'])).out.trim().split('\n');
      expect(links.length).toBe(1);
      expect(links[0]).toContain('lo:');
      expect(links[0]).toContain('UP');
      expect(none.info.settings.SandboxKey).toBe(none.info.netnsPath);
      expect(Object.keys(none.info.settings.Networks)).toEqual(['none']);
    }

    const host = await sandbox('hostnet', 'host', { hostname: 'ignored' });
    expect(host.info.netnsPath).toBeUndefined();
    expect(readFileSync(host.info.resolvConfPath, 'utf8')).toBe(readFileSync('/etc/resolv.conf', 'utf8'));
    expect(readFileSync(host.info.hostsPath, 'utf8')).toContain(readFileSync('/etc/hosts', 'utf8').trim());
    expect(h.service.inspect('host').Containers[host.id]?.Name).toBe('hostnet');

    const owner = await sandbox('owner', 'default');
    const joined = await sandbox('joined', `container:${owner.id}`);
    expect(joined.info.netnsPath).toBe(owner.info.netnsPath);
    expect(joined.info.hostsPath).toBe(owner.info.hostsPath);
    const byName = await sandbox('joined2', 'container:owner');
    expect(byName.info.resolvConfPath).toBe(owner.info.resolvConfPath);
    await expect(sandbox('x', 'container:nosuch')).rejects.toThrow(/No such container: nosuch/);
  });

  it('connects and disconnects a running sandbox live', async () => {
    await h.service.create({ Name: 'sb-live1', IPAM: { Config: [{ Subnet: '10.240.0.0/24' }] } });
    await h.service.create({ Name: 'sb-live2', IPAM: { Config: [{ Subnet: '10.241.0.0/24' }] } });
    const server = await sandbox('live-server', 'sb-live2', { endpoints: { 'sb-live2': { aliases: ['srv'] } } });
    const httpd = await startHttpd(server.info.netnsPath!, 80, 'live');
    stops.push(httpd.stop);
    const mover = await sandbox('mover', 'sb-live1');
    expect((await wgetFrom(mover.info.netnsPath!, 'http://10.241.0.2/', 2)).code).not.toBe(0);

    await h.service.connect('mover', 'sb-live2', { aliases: ['mv'] });
    const after = h.service.settings(mover.id)!;
    expect(Object.keys(after.Networks)).toEqual(['sb-live1', 'sb-live2']);
    expect((await inNetns(mover.info.netnsPath!, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth1'])).out).toContain(after.Networks['sb-live2']!.IPAddress);
    expect((await wgetFrom(mover.info.netnsPath!, 'http://srv/', 3, mover.info.resolvConfPath)).out).toBe('live');
    expect(readFileSync(mover.info.hostsPath, 'utf8')).toContain(after.Networks['sb-live2']!.IPAddress);
    await expect(h.service.connect('mover', 'sb-live2')).rejects.toThrow(/already exists in network sb-live2/);

    await h.service.disconnect(mover.id, 'sb-live2');
    expect(Object.keys(h.service.settings(mover.id)!.Networks)).toEqual(['sb-live1']);
    expect((await inNetns(mover.info.netnsPath!, ['ip', '-o', 'link'])).out).not.toContain('eth1');
    expect((await wgetFrom(mover.info.netnsPath!, 'http://10.241.0.2/', 2)).code).not.toBe(0);
    await expect(h.service.disconnect(mover.id, 'sb-live2')).rejects.toThrow(/is not connected to network sb-live2/);
  });

  it('frees the endpoint on release at once and removes veth and netns in the background', async () => {
    const id = randomHex();
    const info = await h.service.createSandbox(id, { name: 'gone', mode: 'default', hostname: 'gone', filesDir: h.containerDir(id) });
    await h.service.settled(); // earlier tests' released veths: not counted below
    const veths = h.ownedLinks().filter((l) => l.startsWith('bv'));
    await h.service.releaseSandbox(id);
    expect(h.service.inspect('bridge').Containers[id]).toBeUndefined();
    expect(h.service.settings(id)).toBeUndefined();
    await h.service.settled();
    expect(existsSync(info.netnsPath!)).toBe(false);
    expect(h.ownedLinks().filter((l) => l.startsWith('bv')).length).toBe(veths.length - 1);
    // Releasing twice is harmless.
    await h.service.releaseSandbox(id);
    expect(execFileSync('ls', [`${h.dir}/run/netns`], { encoding: 'utf8' })).not.toContain(id);
  });

  it('makes sandboxes started together side by side, and a live connect issued meanwhile lands in a made namespace', async () => {
    await h.service.create({ Name: 'sb-par', IPAM: { Config: [{ Subnet: '10.228.0.0/24' }] } });
    await h.service.create({ Name: 'sb-par2', IPAM: { Config: [{ Subnet: '10.229.0.0/24' }] } });
    const ids = Array.from({ length: 5 }, () => randomHex());
    const made = ids.map((id, i) => h.service.createSandbox(id, { name: `par${i}`, mode: 'sb-par', hostname: `par${i}`, filesDir: h.containerDir(id) }));
    for (const id of ids) stops.push(() => h.service.releaseSandbox(id));
    // queued behind the first steps of the five: the first sandbox's records exist, its namespace may still be made
    const connected = h.service.connect(ids[0]!, 'sb-par2');
    const infos = await Promise.all(made);
    await connected;
    const ips = infos.map((info) => info.settings.Networks['sb-par']!.IPAddress);
    expect(new Set(ips).size).toBe(5);
    for (const [i, info] of infos.entries()) {
      expect((await inNetns(info.netnsPath!, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).out).toContain(`${ips[i]}/24`);
      expect(readFileSync(info.hostsPath, 'utf8')).toContain(`${ips[i]}\tpar${i}`);
    }
    const second = h.service.settings(ids[0]!)!.Networks['sb-par2']!.IPAddress;
    expect(second).toMatch(/^10\.229\.0\.\d+$/);
    expect((await inNetns(infos[0]!.netnsPath!, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth1'])).out).toContain(`${second}/24`);
    expect((await inNetns(infos[0]!.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '2', '10.229.0.1'])).code).toBe(0);
  });

  it('plumbs a sandbox that reuses a just-released address, name and namespace path only after the old devices are gone', async () => {
    await h.service.create({ Name: 'sb-reuse', IPAM: { Config: [{ Subnet: '10.247.0.0/24' }] } });
    const bridge = h.service.inspect('sb-reuse').Options['com.docker.network.bridge.name'] ?? `br-${h.service.inspect('sb-reuse').Id.slice(0, 12)}`;
    const ports = (): string[] => execFileSync('ip', ['-o', 'link', 'show', 'master', bridge], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    const id = randomHex();
    const first = await h.service.createSandbox(id, { name: 'again', mode: 'sb-reuse', hostname: 'again', filesDir: h.containerDir(id) });
    const ip = first.settings.Networks['sb-reuse']!.IPAddress;
    // Released and at once recreated (a restart): same container, name, address and namespace path.
    await h.service.releaseSandbox(id);
    const second = await h.service.createSandbox(id, { name: 'again', mode: 'sb-reuse', hostname: 'again', filesDir: h.containerDir(id) });
    stops.push(() => h.service.releaseSandbox(id));
    expect(second.settings.Networks['sb-reuse']!.IPAddress).toBe(ip);
    expect(second.netnsPath).toBe(first.netnsPath);
    expect(ports().length).toBe(1);
    expect((await inNetns(second.netnsPath!, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).out).toContain(`${ip}/24`);
    expect((await inNetns(second.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '2', '10.247.0.1'])).code).toBe(0);
    // Another container asks for the freed address right after a release: plumbed once the old veth is gone.
    await h.service.releaseSandbox(id);
    const other = await sandbox('other', 'sb-reuse', { endpoints: { 'sb-reuse': { ipv4Address: ip } } });
    expect(other.info.settings.Networks['sb-reuse']!.IPAddress).toBe(ip);
    expect(ports().length).toBe(1);
    expect((await inNetns(other.info.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '2', '10.247.0.1'])).code).toBe(0);
    // One that takes any address right after a release gets a working one (the freed one once its veth is gone,
    // another while it is still being deleted), and the bridge ends with one port per sandbox.
    await h.service.releaseSandbox(other.id);
    const any = await sandbox('any', 'sb-reuse');
    expect((await inNetns(any.info.netnsPath!, ['busybox', 'ping', '-c', '1', '-W', '2', '10.247.0.1'])).code).toBe(0);
    await h.service.settled();
    expect(ports().length).toBe(1);
  });
});
