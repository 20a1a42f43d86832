import { execFileSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { httpGet } from '../helpers/net-client.js';
import { waitFor } from '../helpers/wait.js';
import { buildResponse, parseQuery } from '../../src/network/dns-codec.js';
import { inNetns, passIptablesForward, startHttpd } from './network-harness.js';

/**
 * The network attacks of the security review, performed against a real berthd through the docker CLI,
 * once per firewall backend. A "LAN neighbour" is a network namespace of the test's own, joined to the
 * host by a veth pair, that routes the container subnets via the host (as anyone on the host's LAN
 * can). A fake upstream resolver on the host side of that veth answers every name with OUTSIDE_IP, so
 * a forwarded answer is recognisable.
 */

const OUTSIDE_IP = '203.0.113.9';

interface Neighbour {
  netns: string;
  path: string;
  hostIf: string;
  hostIp: string;
  ip: string;
  remove(): Promise<void>;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A /30 in 198.18.0.0/15 (benchmarking range) that no route on the host touches. */
function freeSlash30(): { base: string; host: string; peer: string } {
  const routes = sh('ip', ['-4', 'route', 'show', 'table', 'all']);
  for (;;) {
    const b = Math.floor(Math.random() * 256);
    const c = Math.floor(Math.random() * 64) * 4;
    const base = `198.18.${b}.`;
    if (routes.includes(base)) continue;
    return { base: `${base}${c}`, host: `${base}${c + 1}`, peer: `${base}${c + 2}` };
  }
}

async function makeNeighbour(): Promise<Neighbour> {
  const tag = Math.random().toString(16).slice(2, 8);
  const netns = `snl-${tag}`;
  const hostIf = `snh${tag}`;
  const peerIf = `snn${tag}`;
  const net = freeSlash30();
  const remove = async (): Promise<void> => {
    await runCommand('ip', ['netns', 'del', netns]);
    await runCommand('ip', ['link', 'del', hostIf]);
  };
  try {
    sh('ip', ['netns', 'add', netns]);
    sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf, 'netns', netns]);
    sh('ip', ['addr', 'add', `${net.host}/30`, 'dev', hostIf]);
    sh('ip', ['link', 'set', hostIf, 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${net.peer}/30`, 'dev', peerIf]);
    sh('ip', ['-n', netns, 'link', 'set', peerIf, 'up']);
    sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    await remove();
    throw e;
  }
  return { netns, path: `/run/netns/${netns}`, hostIf, hostIp: net.host, ip: net.peer, remove };
}

/** A resolver on ip:53 that answers every A question with OUTSIDE_IP and records the names asked. */
async function fakeUpstream(ip: string): Promise<{ queries: string[]; close(): Promise<void> }> {
  const sock: UdpSocket = createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (m, r) => {
    const q = parseQuery(m);
    queries.push(q.questions[0]?.name ?? '');
    sock.send(buildResponse(q, 0, [{ address: OUTSIDE_IP, ttl: 5 }]), r.port, r.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(53, ip, () => resolve());
  });
  return { queries, close: () => new Promise<void>((r) => sock.close(() => r())) };
}

/** A directory whose `iptables*` fail, put first on the daemon's PATH: berthd then uses nftables. */
function noIptablesPath(): { path: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'bsn-'));
  for (const tool of ['iptables', 'iptables-restore', 'iptables-save']) {
    writeFileSync(join(dir, tool), '#!/bin/sh\necho "iptables: not available on this host" >&2\nexit 1\n');
    chmodSync(join(dir, tool), 0o755);
  }
  return { dir, path: `${dir}:${process.env.PATH ?? ''}` };
}

export function securityNetworkSuite(backend: 'iptables' | 'nft'): void {
  describe(`network isolation against attackers (${backend} backend)`, () => {
    let d: TestDaemon;
    let lan: Neighbour;
    let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
    let tag = '';
    let fakeBin: string | undefined;
    let lanWeb: { stop(): Promise<void> } | undefined;
    let unpass: (() => void) | undefined;
    const nets: Record<string, { subnet: string; gateway: string }> = {};

    const docker = async (args: string[]): Promise<string> => {
      const r = await d.docker(args);
      expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout.trim();
    };
    /** Runs a shell script in a throwaway container on `network`; its output and exit code. */
    const inContainer = async (network: string, script: string): Promise<{ code: number; out: string }> => {
      const r = await d.docker(['run', '--rm', '--network', network, 'busybox', 'sh', '-c', script]);
      return { code: r.code, out: r.stdout + r.stderr };
    };
    const ipOf = async (name: string, network: string): Promise<string> =>
      docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name]);
    const hostPort = async (name: string, port: string): Promise<number> => Number((await docker(['port', name, port])).split('\n')[0]!.split(':').pop());
    /**
     * What container `name` of this daemon serves: its name and the daemon's tag. The iptables and nft suites run
     * at the same time with the same container names, and a host port one daemon gives back can be published by
     * the other's container next: a page with the name alone could come from the other daemon's container.
     */
    const page = (name: string): string => `${name}@${tag}`;
    /** A detached busybox httpd answering page(name) on each of `ports`, up before this returns. */
    const web = async (name: string, args: string[], ports: number[], network: string): Promise<string> => {
      const script = `echo ${page(name)} > /tmp/index.html; ${ports.map((p) => `httpd -p ${p} -h /tmp;`).join(' ')} exec sleep 600`;
      await docker(['run', '-d', '--init', '--name', name, '--network', network, ...args, 'busybox', 'sh', '-c', script]);
      const ip = await ipOf(name, network);
      // The host reaches every container address directly (not forwarded): proof the server is up.
      for (const p of ports) await waitFor(async () => (await httpGet(ip, p).catch(() => '')).trim() === page(name), 40_000);
      return ip;
    };
    const lanGet = (url: string): Promise<{ code: number; out: string }> => inNetns(lan.path, ['busybox', 'wget', '-q', '-O', '-', url], 3);
    const lookup = (server: string, name: string): Promise<{ code: number; out: string }> =>
      inNetns(lan.path, ['busybox', 'nslookup', name, server], 4);

    beforeAll(async () => {
      lan = await makeNeighbour();
      upstream = await fakeUpstream(lan.hostIp);
      // The neighbour serves something of its own: the "outside" an internal network must not reach.
      lanWeb = await startHttpd(lan.path, 8000, 'lan-side');
      const savedPath = process.env.PATH;
      if (backend === 'nft') {
        const p = noIptablesPath();
        fakeBin = p.dir;
        process.env.PATH = p.path;
      }
      try {
        d = await startDaemon({ config: { dns: [lan.hostIp] } });
      } finally {
        process.env.PATH = savedPath;
      }
      const info = (await d.request('GET', '/info')).json<{ ID: string }>();
      tag = info.ID.replaceAll('-', '').slice(0, 8);
      if (backend === 'nft') expect(sh('nft', ['list', 'tables'])).toContain(`berth_${tag}`);
      else expect(sh('iptables', ['-w', '-S'])).toContain(`BERTH-FORWARD-${tag}`);
      const load = await d.docker(['load', '-i', await busyboxImageTar()]);
      expect(load.code, load.stderr).toBe(0);
      await docker(['network', 'create', '--internal', 'sn-int']);
      await docker(['network', 'create', 'sn-ext']);
      await docker(['network', 'create', 'sn-a']);
      for (const n of ['bridge', 'sn-int', 'sn-ext', 'sn-a']) {
        const [subnet = '', gateway = ''] = (await docker(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}', n])).split(' ');
        nets[n] = { subnet, gateway };
        // The neighbour adds a route to every container subnet via the host.
        sh('ip', ['-n', lan.netns, 'route', 'add', subnet, 'via', lan.hostIp]);
      }
      if (backend === 'nft') {
        const bridges = (await docker(['network', 'inspect', '-f', '{{.Id}} {{index .Options "com.docker.network.bridge.name"}}', 'bridge', 'sn-int', 'sn-ext', 'sn-a']))
          .split('\n')
          .map((l) => l.split(' ')[1] || `br-${l.slice(0, 12)}`);
        unpass = passIptablesForward(bridges);
      }
    });

    afterAll(async () => {
      if (d) {
        const ids = (await d.docker(['ps', '-aq'])).stdout.trim().split('\n').filter((x) => x !== '');
        if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
        await d.docker(['network', 'prune', '-f']);
        await d.stop();
      }
      unpass?.();
      await lanWeb?.stop();
      await upstream?.close();
      await lan?.remove();
      if (fakeBin) rmSync(fakeBin, { recursive: true, force: true });
      expect(sh('ip', ['netns', 'list'])).not.toContain(lan.netns);
      expect(sh('ip', ['-o', 'link', 'show'])).not.toContain(lan.hostIf);
      if (tag !== '') {
        expect(sh('nft', ['list', 'tables'])).not.toContain(`berth_${tag}`);
        expect(sh('iptables', ['-w', '-S']) + sh('iptables', ['-w', '-t', 'nat', '-S'])).not.toContain(tag);
      }
    });

    it('gives containers on an internal network no default route and no way to the outside', async () => {
      const internal = await inContainer('sn-int', `ip route; timeout 2 wget -q -O - http://${lan.ip}:8000/; echo "rc=$?"`);
      expect(internal.out).not.toMatch(/^default/m);
      expect(internal.out).not.toContain('lan-side');
      // The same request from a network with a way out does reach the neighbour.
      const external = await inContainer('sn-ext', `ip route; timeout 3 wget -q -O - http://${lan.ip}:8000/`);
      expect(external.out).toMatch(/^default via /m);
      expect(external.out).toContain('lan-side');
    });

    it('forwards no DNS query of an internal network, through its own server or another network\'s', async () => {
      // A network with a way out forwards names it does not know (the fake upstream answers them).
      const ext = await inContainer('sn-ext', `timeout 4 nslookup outside.test ${nets['sn-ext']!.gateway}`);
      expect(ext.out).toContain(OUTSIDE_IP);
      const asked = upstream.queries.length;
      for (const server of [nets['sn-int']!.gateway, nets['sn-ext']!.gateway, nets['sn-a']!.gateway]) {
        const r = await inContainer('sn-int', `timeout 4 nslookup egress.test ${server}; echo "rc=$?"`);
        expect(r.out, `asking ${server}`).not.toContain(OUTSIDE_IP);
      }
      expect(upstream.queries.slice(asked)).not.toContain('egress.test');
    });

    it('does not let an internal network reach, or be reached through, published ports', async () => {
      // Out: a published port of a container on another network, through every host address it could use.
      const extIp = await web('sn-pub-ext', ['-p', '80'], [80], 'sn-ext');
      const pubPort = await hostPort('sn-pub-ext', '80/tcp');
      expect((await lanGet(`http://${lan.hostIp}:${pubPort}/`)).out.trim()).toBe(page('sn-pub-ext'));
      for (const host of [nets['sn-int']!.gateway, nets['sn-ext']!.gateway, lan.hostIp]) {
        const r = await inContainer('sn-int', `timeout 2 wget -q -O - http://${host}:${pubPort}/; echo "rc=$?"`);
        expect(r.out, `via ${host}`).not.toContain(page('sn-pub-ext'));
      }
      expect(extIp).not.toBe('');
      // In: a port "published" by a container on the internal network is not published at all.
      await web('sn-pub-int', ['-p', '80'], [80], 'sn-int');
      const ports = await d.docker(['port', 'sn-pub-int']);
      expect(ports.stdout.trim()).toBe('');
      const state = JSON.parse(await docker(['inspect', '-f', '{{json .NetworkSettings.Ports}}', 'sn-pub-int'])) as Record<string, unknown>;
      expect(state).toEqual({ '80/tcp': null });
    });

    it('gives an internal-only container a route and its ports once connected to a network with a way out, and takes them back', async () => {
      await web('sn-mover', ['-p', '80'], [80], 'sn-int');
      const route = async (): Promise<string> => docker(['exec', 'sn-mover', 'ip', 'route']);
      expect(await route()).not.toMatch(/^default/m);
      expect((await d.docker(['port', 'sn-mover'])).stdout.trim()).toBe('');
      await docker(['network', 'connect', 'sn-ext', 'sn-mover']);
      expect(await route()).toContain(`default via ${nets['sn-ext']!.gateway}`);
      const port = await hostPort('sn-mover', '80/tcp');
      expect((await lanGet(`http://${lan.hostIp}:${port}/`)).out.trim()).toBe(page('sn-mover'));
      await docker(['network', 'disconnect', 'sn-ext', 'sn-mover']);
      expect(await route()).not.toMatch(/^default/m);
      expect((await d.docker(['port', 'sn-mover'])).stdout.trim()).toBe('');
      expect((await lanGet(`http://${lan.hostIp}:${port}/`)).out).not.toContain(page('sn-mover'));
    });

    it('answers a network\'s names to its own containers only, and is no resolver for anyone else', async () => {
      await docker(['run', '-d', '--name', 'sn-secret', '--network', 'sn-ext', 'busybox', 'sleep', '600']);
      const secretIp = await ipOf('sn-secret', 'sn-ext');
      const own = await inContainer('sn-ext', `timeout 4 nslookup sn-secret ${nets['sn-ext']!.gateway}`);
      expect(own.out).toContain(secretIp);
      // A container of network A asks B's server (at B's gateway, an address of the host) for B's names.
      const other = await inContainer('sn-a', `timeout 4 nslookup sn-secret ${nets['sn-ext']!.gateway}; timeout 4 nslookup sn-secret; echo "rc=$?"`);
      expect(other.out).not.toContain(secretIp);
      // The LAN neighbour asks the same server for that name and for an outside name: no answer at all.
      const asked = upstream.queries.length;
      const byName = await lookup(nets['sn-ext']!.gateway, 'sn-secret');
      expect(byName.out).not.toContain(secretIp);
      const open = await lookup(nets['sn-ext']!.gateway, 'open-resolver.test');
      expect(open.out).not.toContain(OUTSIDE_IP);
      expect(upstream.queries.slice(asked)).not.toContain('open-resolver.test');
    });

    it('keeps a LAN neighbour that routes via the host out of unpublished ports, and lets it use published ones', async () => {
      for (const network of ['bridge', 'sn-ext']) {
        const name = `sn-lan-${network}`;
        // 80 unpublished; 8080 published on an ephemeral host port.
        const ip = await web(name, ['-p', '8080'], [80, 8080], network);
        const published = await hostPort(name, '8080/tcp');
        expect((await lanGet(`http://${lan.hostIp}:${published}/`)).out.trim(), `${network}: published port`).toBe(page(name));
        const direct = await lanGet(`http://${ip}:80/`);
        expect(direct.out, `${network}: unpublished port by container address`).not.toContain(page(name));
        // The published container port, addressed directly instead of through the host port, is not open either.
        const around = await lanGet(`http://${ip}:8080/`);
        expect(around.out, `${network}: published container port by container address`).not.toContain(page(name));
      }
    });
  });
}
