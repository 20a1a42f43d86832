import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { httpGet, refused } from '../helpers/net-client.js';

async function until<T>(fn: () => Promise<T | undefined | false>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function linksOwnedBy(owner: string): string[] {
  const links = JSON.parse(execFileSync('ip', ['-d', '-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string; ifalias?: string }[];
  return links.filter((l) => l.ifalias === owner).map((l) => l.ifname);
}

describe('container networking end to end (docker run, network, port, ps)', () => {
  let d: TestDaemon;
  let owner: string;
  let tag: string;

  beforeAll(async () => {
    d = await startDaemon();
    const info = (await d.request('GET', '/info')).json<{ ID: string }>();
    owner = `berth:${info.ID}`;
    tag = info.ID.replaceAll('-', '').slice(0, 8);
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(load.code, load.stderr).toBe(0);
  });

  afterAll(async () => {
    const ps = await d.docker(['ps', '-aq']);
    const ids = ps.stdout.trim().split('\n').filter((x) => x !== '');
    if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
    await d.docker(['network', 'prune', '-f']);
    await d.stop();
    expect(linksOwnedBy(owner)).toEqual([]);
    const rules = execFileSync('iptables', ['-w', '-S'], { encoding: 'utf8' }) + execFileSync('iptables', ['-w', '-t', 'nat', '-S'], { encoding: 'utf8' });
    expect(rules).not.toContain(tag);
  });

  const run = async (args: string[]): Promise<string> => {
    const r = await d.docker(['run', ...args]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim();
  };

  it('gives a default-bridge container an IPv4 address and default route, reachable from the host', async () => {
    const out = await run(['--rm', 'busybox', 'sh', '-c', 'ip -4 -o addr show eth0; ip route']);
    expect(out).toMatch(/eth0\s+inet \d+\.\d+\.\d+\.\d+\/\d+/);
    expect(out).toMatch(/default via \d+\.\d+\.\d+\.1 dev eth0/);
    await run(['-d', '--name', 'e2e-plain', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
    const ip = (await d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'e2e-plain'])).stdout.trim();
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const hostname = await until(() => httpGet(ip, 80, '/hostname'), 'httpd in e2e-plain');
    expect(hostname.trim()).toMatch(/^[0-9a-f]{12}$/);
    await d.docker(['rm', '-f', 'e2e-plain']);
  });

  it('reaches web by name and alias from its network, not from another network', async () => {
    await d.docker(['network', 'create', 'e2e-front']);
    await d.docker(['network', 'create', 'e2e-back']);
    await run(['-d', '--name', 'web', '--network', 'e2e-front', '--network-alias', 'webalias', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
    for (const name of ['web', 'webalias']) {
      const out = await run(['--rm', '--network', 'e2e-front', 'busybox', 'sh', '-c', `for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -q -O - http://${name}/hostname && exit 0; sleep 0.3; done; exit 1`]);
      expect(out).toMatch(/^[0-9a-f]{12}$/);
    }
    const other = await d.docker(['run', '--rm', '--network', 'e2e-back', 'busybox', 'sh', '-c', 'timeout 3 wget -q -O - http://web/hostname; exit $?']);
    expect(other.code).not.toBe(0);
    const webIp = (await d.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "e2e-front").IPAddress}}', 'web'])).stdout.trim();
    const direct = await d.docker(['run', '--rm', '--network', 'e2e-back', 'busybox', 'sh', '-c', `timeout 3 wget -q -O - http://${webIp}/hostname; exit $?`]);
    expect(direct.code).not.toBe(0);
    const insp = JSON.parse((await d.docker(['network', 'inspect', 'e2e-front'])).stdout) as { Containers: Record<string, { Name: string; IPv4Address: string }> }[];
    expect(Object.values(insp[0]!.Containers)).toEqual([expect.objectContaining({ Name: 'web', IPv4Address: expect.stringMatching(new RegExp(`^${webIp.replaceAll('.', '\\.')}/\\d+$`)) })]);
  });

  it('refuses to remove a network in use', async () => {
    const r = await d.docker(['network', 'rm', 'e2e-front']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('has active endpoints');
  });

  it('connects and disconnects a running container live', async () => {
    await run(['-d', '--name', 'mover', '--network', 'e2e-back', 'busybox', 'sleep', '300']);
    expect((await d.docker(['exec', 'mover', 'ip', '-o', 'link'])).stdout).not.toContain('eth1');
    const c = await d.docker(['network', 'connect', '--alias', 'mv', 'e2e-front', 'mover']);
    expect(c.code, c.stderr).toBe(0);
    expect((await d.docker(['exec', 'mover', 'ip', '-o', 'link'])).stdout).toContain('eth1');
    const got = await d.docker(['exec', 'mover', 'sh', '-c', 'timeout 3 wget -q -O - http://web/hostname; exit $?']);
    expect(got.code, got.stderr).toBe(0);
    const nets = (await d.docker(['inspect', '-f', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}', 'mover'])).stdout.trim();
    expect(nets.split(' ').sort()).toEqual(['e2e-back', 'e2e-front']);
    const dc = await d.docker(['network', 'disconnect', 'e2e-front', 'mover']);
    expect(dc.code, dc.stderr).toBe(0);
    expect((await d.docker(['exec', 'mover', 'ip', '-o', 'link'])).stdout).not.toContain('eth1');
    await d.docker(['rm', '-f', 'mover']);
  });

  it('publishes -p 127.0.0.1:18087:80 and -p 80, shows them in docker port and ps, and closes them on removal', async () => {
    await run(['-d', '--name', 'pub1', '-p', '127.0.0.1:18087:80', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
    await run(['-d', '--name', 'pub2', '-p', '80', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
    expect((await d.docker(['port', 'pub1'])).stdout.trim()).toBe('80/tcp -> 127.0.0.1:18087');
    const port2 = (await d.docker(['port', 'pub2', '80'])).stdout.trim();
    expect(port2).toMatch(/^0\.0\.0\.0:\d+$/);
    const eph = Number(port2.split(':')[1]);
    expect(eph).toBeGreaterThanOrEqual(32768);
    const ps = (await d.docker(['ps', '--format', '{{.Names}} {{.Ports}}'])).stdout;
    expect(ps).toContain('pub1 127.0.0.1:18087->80/tcp');
    expect(ps).toContain(`pub2 0.0.0.0:${eph}->80/tcp`);
    expect((await until(() => httpGet('127.0.0.1', 18087, '/hostname'), 'pub1')).trim()).toMatch(/^[0-9a-f]{12}$/);
    expect((await until(() => httpGet('127.0.0.1', eph, '/hostname'), 'pub2')).trim()).toMatch(/^[0-9a-f]{12}$/);

    const clash = await d.docker(['run', '-d', '--name', 'pub3', '-p', '127.0.0.1:18087:80', 'busybox', 'httpd', '-f', '-p', '80']);
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toContain('Bind for 127.0.0.1:18087 failed: port is already allocated');
    await d.docker(['rm', '-f', 'pub3']);

    await d.docker(['rm', '-f', 'pub1', 'pub2']);
    expect(await refused('127.0.0.1', 18087)).toBe(true);
    expect(await refused('127.0.0.1', eph)).toBe(true);
  });

  it('supports --network none, host and container:<name>', async () => {
    const none = await run(['--rm', '--network', 'none', 'busybox', 'ip', '-o', 'link']);
    expect(none.split('\n')).toHaveLength(1);
    expect(none).toContain('lo:');
    const hostLinks = await run(['--rm', '--network', 'host', 'busybox', 'ip', '-o', 'link']);
    const bridgeDev = JSON.parse((await d.docker(['network', 'inspect', 'bridge'])).stdout)[0].Options['com.docker.network.bridge.name'] as string;
    expect(hostLinks).toContain(`: ${bridgeDev}:`);
    expect(hostLinks).not.toContain('eth0@');
    await run(['-d', '--name', 'netowner', 'busybox', 'sleep', '300']);
    const ownerAddr = (await d.docker(['exec', 'netowner', 'ip', '-4', '-o', 'addr', 'show', 'eth0'])).stdout.trim();
    const joined = await run(['--rm', '--network', 'container:netowner', 'busybox', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    expect(joined.split(/\s+/)[3]).toBe(ownerAddr.split(/\s+/)[3]);
    const hosts = await run(['--rm', '--network', 'container:netowner', 'busybox', 'cat', '/etc/hosts']);
    expect(hosts).toContain((await d.docker(['exec', 'netowner', 'cat', '/etc/hosts'])).stdout.trim().split('\n').at(-1));
    await d.docker(['rm', '-f', 'netowner']);
  });

  it('writes --add-host, --hostname and --dns into the container files', async () => {
    const out = await run(['--rm', '--add-host', 'db.local:10.1.2.3', '--hostname', 'myhost', '--dns', '10.9.9.9', '--dns-search', 'corp.example', 'busybox', 'sh', '-c', 'cat /etc/hosts /etc/resolv.conf; hostname']);
    expect(out).toContain('10.1.2.3\tdb.local');
    expect(out).toMatch(/\tmyhost\n/);
    expect(out).toContain('nameserver 10.9.9.9');
    expect(out).toContain('search corp.example');
    expect(out.trim().split('\n').at(-1)).toBe('myhost');
  });
  it('lets compose services reach each other by service name (docker-compose v1, aliases via NetworkingConfig)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bncompose-'));
    const file = join(dir, 'docker-compose.yml');
    writeFileSync(file, 'version: "3"\nservices:\n  web:\n    image: busybox\n    command: httpd -f -p 80 -h /etc\n  client:\n    image: busybox\n    command: sleep 300\n');
    const compose = (args: string[]) => runCommand('docker-compose', ['-f', file, '-p', 'bncmp', ...args], { env: d.env, timeoutMs: 120_000 });
    try {
      const up = await compose(['up', '-d']);
      expect(up.code, up.stderr).toBe(0);
      const got = await compose(['exec', '-T', 'client', 'sh', '-c', 'for i in 1 2 3 4 5; do timeout 2 wget -q -O - http://web/hostname && exit 0; sleep 0.3; done; exit 1']);
      expect(got.code, got.stderr).toBe(0);
      expect(got.stdout.trim()).toMatch(/^[0-9a-f]{12}$/);
      const aliases = (await d.docker(['inspect', '-f', '{{json (index .NetworkSettings.Networks "bncmp_default").Aliases}}', 'bncmp_web_1'])).stdout;
      expect(aliases).toContain('"web"');
    } finally {
      const down = await compose(['down', '-t', '0']);
      expect(down.code, down.stderr).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
    expect((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout).not.toContain('bncmp_default');
  });
  it('adds legacy --link entries to /etc/hosts on the default bridge', async () => {
    await run(['-d', '--name', 'linked', 'busybox', 'sleep', '300']);
    const ip = (await d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'linked'])).stdout.trim();
    const hosts = await run(['--rm', '--link', 'linked:lk', 'busybox', 'cat', '/etc/hosts']);
    expect(hosts).toMatch(new RegExp(`${ip.replaceAll('.', '\\.')}\tlk [0-9a-f]{12} linked`));
    await d.docker(['rm', '-f', 'linked']);
  });

  it('keeps a running container reachable on its published port across a daemon restart', async () => {
    await run(['-d', '--name', 'survivor', '-p', '127.0.0.1:18088:80', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
    const before = await until(() => httpGet('127.0.0.1', 18088, '/hostname'), 'survivor before restart');
    await d.signal('SIGTERM');
    expect(await refused('127.0.0.1', 18088)).toBe(true);
    await d.launch();
    const after = await until(() => httpGet('127.0.0.1', 18088, '/hostname'), 'survivor after restart');
    expect(after).toBe(before);
    expect((await d.docker(['port', 'survivor'])).stdout.trim()).toBe('80/tcp -> 127.0.0.1:18088');
    await d.docker(['rm', '-f', 'survivor']);
    expect(await refused('127.0.0.1', 18088)).toBe(true);
  });
});
