import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { httpGet } from '../helpers/net-client.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Bridge driver options (com.docker.network.bridge.*), endpoint MAC and DriverOpts, and legacy links, all
 * through the docker CLI and checked inside the containers or on the host.
 */
describe('bridge options, MAC addresses, endpoint driver options and legacy links', () => {
  let d: TestDaemon;
  let tag = '';

  beforeAll(async () => {
    d = await startDaemon();
    tag = (await d.request('GET', '/info')).json<{ ID: string }>().ID.replaceAll('-', '').slice(0, 8);
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(load.code, load.stderr).toBe(0);
  });

  afterAll(async () => {
    const ids = (await d.docker(['ps', '-aq'])).stdout.trim().split('\n').filter((x) => x !== '');
    if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
    await d.docker(['network', 'prune', '-f']);
    await d.stop();
    expect(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })).not.toContain('bt-opt0');
  });

  const docker = async (args: string[]): Promise<string> => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  const ipOf = (name: string, network: string): Promise<string> =>
    docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name]);

  it('blocks traffic between the containers of a network with enable_icc=false, and not on others', async () => {
    await docker(['network', 'create', '-o', 'com.docker.network.bridge.enable_icc=false', 'opt-noicc']);
    await docker(['network', 'create', 'opt-icc']);
    for (const net of ['opt-noicc', 'opt-icc']) await docker(['run', '-d', '--name', `${net}-target`, '--network', net, 'busybox', 'sleep', '600']);
    const ping = async (net: string): Promise<{ code: number; out: string }> => {
      const ip = await ipOf(`${net}-target`, net);
      const r = await d.docker(['run', '--rm', '--network', net, 'busybox', 'sh', '-c',
        `gw=$(ip route | awk '/default/ {print $3}'); ping -c 1 -W 2 "$gw" >/dev/null && echo gateway-ok; ping -c 1 -W 2 ${ip}`]);
      return { code: r.code, out: r.stdout + r.stderr };
    };
    const off = await ping('opt-noicc');
    expect(off.out).toContain('gateway-ok'); // the host and the outside stay reachable
    expect(off.code).not.toBe(0);
    expect(off.out).toContain('100% packet loss');
    const on = await ping('opt-icc');
    expect(on.out).toContain('gateway-ok');
    expect(on.code, on.out).toBe(0);
    expect(on.out).toContain(' 0% packet loss');
    const opts = JSON.parse(await docker(['network', 'inspect', '-f', '{{json .Options}}', 'opt-noicc'])) as Record<string, string>;
    expect(opts['com.docker.network.bridge.enable_icc']).toBe('false');
  });

  it('refuses bridge option values dockerd cannot parse, with its messages', async () => {
    const cases: [string, string][] = [
      ['com.docker.network.bridge.enable_icc=maybe', 'failed to parse com.docker.network.bridge.enable_icc value: maybe (strconv.ParseBool: parsing "maybe": invalid syntax)'],
      ['com.docker.network.bridge.enable_ip_masquerade=sometimes', 'failed to parse com.docker.network.bridge.enable_ip_masquerade value: sometimes (strconv.ParseBool: parsing "sometimes": invalid syntax)'],
      ['com.docker.network.driver.mtu=big', 'failed to parse com.docker.network.driver.mtu value: big (strconv.Atoi: parsing "big": invalid syntax)'],
      ['com.docker.network.bridge.host_binding_ipv4=nowhere', 'failed to parse com.docker.network.bridge.host_binding_ipv4 value: nowhere (nil ip)'],
    ];
    for (const [opt, message] of cases) {
      const r = await d.docker(['network', 'create', '-o', opt, 'opt-bad']);
      expect(r.code, opt).not.toBe(0);
      expect(r.stderr).toContain(message);
    }
    expect((await d.docker(['network', 'inspect', 'opt-bad'])).code).not.toBe(0);
  });

  it('honours the bridge name, MTU, host binding address and masquerade options', async () => {
    await docker(['network', 'create',
      '-o', 'com.docker.network.bridge.name=bt-opt0',
      '-o', 'com.docker.network.driver.mtu=1400',
      '-o', 'com.docker.network.bridge.host_binding_ipv4=127.0.0.1',
      '-o', 'com.docker.network.bridge.enable_ip_masquerade=false',
      'opt-misc']);
    const subnet = await docker(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', 'opt-misc']);
    expect(execFileSync('ip', ['-o', 'link', 'show', 'dev', 'bt-opt0'], { encoding: 'utf8' })).toContain('mtu 1400');
    expect(await docker(['run', '--rm', '--network', 'opt-misc', 'busybox', 'cat', '/sys/class/net/eth0/mtu'])).toBe('1400');
    // A port published without a host address binds to the network's host_binding_ipv4.
    await docker(['run', '-d', '--name', 'opt-bound', '--network', 'opt-misc', '-p', '80', 'busybox', 'sh', '-c', 'echo bound > /tmp/index.html; exec httpd -f -p 80 -h /tmp']);
    const port = await docker(['port', 'opt-bound', '80/tcp']);
    expect(port).toMatch(/^127\.0\.0\.1:\d+$/);
    const hostPort = Number(port.split(':')[1]);
    await waitFor(async () => (await httpGet('127.0.0.1', hostPort).catch(() => '')).trim() === 'bound', 20_000);
    const nat = execFileSync('iptables', ['-w', '-t', 'nat', '-S', `BERTH-POSTROUTING-${tag}`], { encoding: 'utf8' });
    expect(nat).not.toContain(`-s ${subnet}`);
    expect(nat).toContain('MASQUERADE'); // the default bridge still masquerades
  });

  it('applies a requested MAC address inside the container and keeps endpoint driver options', async () => {
    const mac = '02:42:ac:11:00:99';
    const link = await docker(['run', '--rm', '--mac-address', mac, 'busybox', 'cat', '/sys/class/net/eth0/address']);
    expect(link).toBe(mac);
    await docker(['run', '-d', '--name', 'opt-mac', '--mac-address', mac, 'busybox', 'sleep', '600']);
    expect(await docker(['inspect', '-f', '{{.NetworkSettings.Networks.bridge.MacAddress}}', 'opt-mac'])).toBe(mac);
    await docker(['network', 'connect', '--driver-opt', 'com.example.opt=1', 'opt-icc', 'opt-mac']);
    const eps = JSON.parse(await docker(['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'opt-mac'])) as Record<string, { DriverOpts: unknown }>;
    expect(eps['opt-icc']!.DriverOpts).toEqual({ 'com.example.opt': '1' });
    expect(eps.bridge!.DriverOpts).toBeNull();
  });

  it('gives a legacy --link its hosts entry and dockerd\'s variables, and docker rm --link removes it', async () => {
    await docker(['run', '-d', '--name', 'opt-db', '--hostname', 'dbhost', '-e', 'SECRET=s3', '--expose', '5432', '--expose', '5433', '--expose', '53/udp', 'busybox', 'sleep', '600']);
    const dbIp = await ipOf('opt-db', 'bridge');
    await docker(['run', '-d', '--name', 'opt-app', '-e', 'DB_ENV_SECRET=mine', '--link', 'opt-db:db', 'busybox', 'sleep', '600']);
    const env = (await docker(['exec', 'opt-app', 'env'])).split('\n');
    for (const v of [
      `DB_PORT=tcp://${dbIp}:5432`,
      `DB_PORT_5432_TCP=tcp://${dbIp}:5432`,
      `DB_PORT_5432_TCP_ADDR=${dbIp}`,
      'DB_PORT_5432_TCP_PORT=5432',
      'DB_PORT_5432_TCP_PROTO=tcp',
      `DB_PORT_5432_TCP_START=tcp://${dbIp}:5432`,
      `DB_PORT_5432_TCP_END=tcp://${dbIp}:5433`,
      `DB_PORT_53_UDP=udp://${dbIp}:53`,
      'DB_NAME=/opt-app/db',
      // The container's own value wins over the link's.
      'DB_ENV_SECRET=mine',
    ]) expect(env).toContain(v);
    expect(env.some((e) => e.startsWith('DB_ENV_PATH='))).toBe(false);
    const hosts = await docker(['exec', 'opt-app', 'cat', '/etc/hosts']);
    expect(hosts).toContain(`${dbIp}\tdb dbhost opt-db`);

    const rm = await d.docker(['rm', '--link', '/opt-app/db']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout.trim()).toBe('/opt-app/db');
    expect(await docker(['exec', 'opt-app', 'cat', '/etc/hosts'])).not.toContain('dbhost');
    expect(await docker(['inspect', '-f', '{{json .HostConfig.Links}}', 'opt-app'])).toMatch(/^(null|\[\])$/);
    const again = await d.docker(['rm', '--link', '/opt-app/db']);
    expect(again.stderr).toContain('No such container: opt-app/db');
    const own = await d.docker(['rm', '--link', '/opt-db']);
    expect(own.stderr).toContain('Conflict, cannot remove the default link name of the container');
    // The linked container itself was never touched.
    expect(await docker(['inspect', '-f', '{{.State.Running}}', 'opt-db'])).toBe('true');
  });
});

describe('daemon.json icc and ip on the default bridge', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    d = await startDaemon({ config: { icc: false, ip: '127.0.0.1' } });
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(load.code, load.stderr).toBe(0);
  });

  afterAll(async () => {
    const ids = (await d.docker(['ps', '-aq'])).stdout.trim().split('\n').filter((x) => x !== '');
    if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
    await d.stop();
  });

  it('isolates default-bridge containers from each other and binds unaddressed ports to the given address', async () => {
    const opts = JSON.parse((await d.docker(['network', 'inspect', '-f', '{{json .Options}}', 'bridge'])).stdout) as Record<string, string>;
    expect(opts['com.docker.network.bridge.enable_icc']).toBe('false');
    expect(opts['com.docker.network.bridge.host_binding_ipv4']).toBe('127.0.0.1');
    const run = await d.docker(['run', '-d', '--name', 'dj-web', '-p', '80', 'busybox', 'sh', '-c', 'echo dj > /tmp/index.html; exec httpd -f -p 80 -h /tmp']);
    expect(run.code, run.stderr).toBe(0);
    const ip = (await d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'dj-web'])).stdout.trim();
    const port = (await d.docker(['port', 'dj-web', '80/tcp'])).stdout.trim();
    expect(port).toMatch(/^127\.0\.0\.1:\d+$/);
    await waitFor(async () => (await httpGet('127.0.0.1', Number(port.split(':')[1])).catch(() => '')).trim() === 'dj', 20_000);
    const r = await d.docker(['run', '--rm', 'busybox', 'sh', '-c',
      `gw=$(ip route | awk '/default/ {print $3}'); ping -c 1 -W 2 "$gw" >/dev/null && echo gateway-ok; timeout 3 wget -q -O - http://${ip}/`]);
    expect(r.stdout).toContain('gateway-ok');
    expect(r.stdout).not.toContain('dj');
    expect(r.code).not.toBe(0);
  });
});
