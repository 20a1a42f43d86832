import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

interface Net {
  Name: string;
  Id: string;
  Driver: string;
  Internal: boolean;
  IPAM: { Config: { Subnet: string; Gateway: string; IPRange?: string }[] };
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

function linksOwnedBy(owner: string): string[] {
  const links = JSON.parse(execFileSync('ip', ['-d', '-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string; ifalias?: string }[];
  return links.filter((l) => l.ifalias === owner).map((l) => l.ifname);
}

function iptablesRules(): string {
  return execFileSync('iptables', ['-w', '-S'], { encoding: 'utf8' }) + execFileSync('iptables', ['-w', '-t', 'nat', '-S'], { encoding: 'utf8' });
}

describe('network API through the docker CLI', () => {
  let d: TestDaemon;
  let owner: string;
  let tag: string;

  beforeAll(async () => {
    d = await startDaemon();
    const info = (await d.request('GET', '/info')).json<{ ID: string }>();
    owner = `berth:${info.ID}`;
    tag = info.ID.replaceAll('-', '').slice(0, 8);
  });

  afterAll(async () => {
    await d.stop();
    // Nothing of this daemon outlives it: no bridge, no veth, no chain.
    expect(linksOwnedBy(owner)).toEqual([]);
    expect(iptablesRules()).not.toContain(tag);
  });

  it('lists the predefined bridge, host and none networks like dockerd', async () => {
    const r = await d.docker(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['bridge bridge local', 'host host local', 'none null local']);
  });

  it('gives the default bridge a gateway in IPAM and a berth bridge device carrying it', async () => {
    const r = await d.docker(['network', 'inspect', 'bridge']);
    const [net] = JSON.parse(r.stdout) as Net[];
    const cfg = net!.IPAM.Config[0]!;
    expect(cfg.Gateway).toMatch(/^\d+\.\d+\.\d+\.1$/);
    const dev = net!.Options['com.docker.network.bridge.name']!;
    expect(dev).toMatch(/^berth\d+$/);
    const addr = execFileSync('ip', ['-o', '-4', 'addr', 'show', 'dev', dev], { encoding: 'utf8' });
    expect(addr).toContain(`${cfg.Gateway}/${cfg.Subnet.split('/')[1]}`);
  });

  it('creates a user network with subnet, gateway, ip-range, label, internal flag and bridge name', async () => {
    const r = await d.docker([
      'network', 'create', '--subnet', '10.213.0.0/24', '--gateway', '10.213.0.254', '--ip-range', '10.213.0.128/25',
      '--label', 'team=net', '--internal', '-o', 'com.docker.network.bridge.name=bt-api0', '-o', 'com.docker.network.driver.mtu=1400', 'api-net1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const [net] = JSON.parse((await d.docker(['network', 'inspect', 'api-net1'])).stdout) as Net[];
    expect(net!.Id).toBe(id);
    expect(net!.Internal).toBe(true);
    expect(net!.Labels).toEqual({ team: 'net' });
    expect(net!.IPAM.Config).toEqual([{ Subnet: '10.213.0.0/24', Gateway: '10.213.0.254', IPRange: '10.213.0.128/25' }]);
    const link = execFileSync('ip', ['-o', 'link', 'show', 'dev', 'bt-api0'], { encoding: 'utf8' });
    expect(link).toContain('mtu 1400');
    expect(execFileSync('ip', ['-o', '-4', 'addr', 'show', 'dev', 'bt-api0'], { encoding: 'utf8' })).toContain('10.213.0.254/24');
    const rm = await d.docker(['network', 'rm', 'api-net1']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })).not.toContain('bt-api0');
  });

  it('refuses a duplicate name with 409 and a predefined name with 403', async () => {
    expect((await d.docker(['network', 'create', 'api-dup'])).code).toBe(0);
    const again = await d.docker(['network', 'create', 'api-dup']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('network with name api-dup already exists');
    const raw = await d.request('POST', '/v1.43/networks/create', { body: { Name: 'api-dup', CheckDuplicate: true } });
    expect(raw.status).toBe(409);
    const pre = await d.request('POST', '/networks/create', { body: { Name: 'bridge' } });
    expect(pre.status).toBe(403);
    expect((await d.docker(['network', 'rm', 'api-dup'])).code).toBe(0);
  });

  it('refuses a subnet overlapping another network and bad subnets', async () => {
    expect((await d.docker(['network', 'create', '--subnet', '10.214.0.0/16', 'api-ov1'])).code).toBe(0);
    const ov = await d.docker(['network', 'create', '--subnet', '10.214.5.0/24', 'api-ov2']);
    expect(ov.stderr).toContain('Pool overlaps with other one on this address space');
    const bad = await d.request('POST', '/networks/create', { body: { Name: 'api-bad', IPAM: { Config: [{ Subnet: '10.215.0.7/24' }] } } });
    expect(bad.status).toBe(400);
    expect(bad.json<{ message: string }>().message).toContain('10.215.0.0/24');
    const gw = await d.request('POST', '/networks/create', { body: { Name: 'api-bad', IPAM: { Config: [{ Subnet: '10.215.0.0/24', Gateway: '10.216.0.1' }] } } });
    expect(gw.status).toBe(400);
    expect((await d.docker(['network', 'rm', 'api-ov1'])).code).toBe(0);
  });

  it('refuses unknown drivers with 404 and removing predefined networks with 403', async () => {
    const drv = await d.request('POST', '/networks/create', { body: { Name: 'api-ovl', Driver: 'overlay' } });
    expect(drv.status).toBe(404);
    expect(drv.json<{ message: string }>().message).toBe('plugin "overlay" not found');
    const rm = await d.docker(['network', 'rm', 'bridge']);
    expect(rm.stderr).toContain('bridge is a pre-defined network and cannot be removed');
    const missing = await d.docker(['network', 'rm', 'api-nope']);
    expect(missing.stderr).toContain('network api-nope not found');
    const insp = await d.request('GET', '/networks/api-nope');
    expect(insp.status).toBe(404);
  });

  it('filters the list by name, id, label, driver, type and dangling', async () => {
    const id = (await d.docker(['network', 'create', '--label', 'f=1', 'api-fa'])).stdout.trim();
    expect((await d.docker(['network', 'create', '--label', 'f=2', 'api-fb'])).code).toBe(0);
    const names = async (...filters: string[]): Promise<string[]> => {
      const r = await d.docker(['network', 'ls', '--format', '{{.Name}}', ...filters.flatMap((f) => ['--filter', f])]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split('\n').filter((x) => x !== '');
    };
    expect(await names('name=api-f')).toEqual(['api-fa', 'api-fb']);
    expect(await names(`id=${id.slice(0, 10)}`)).toEqual(['api-fa']);
    expect(await names('label=f=2')).toEqual(['api-fb']);
    expect(await names('label=f')).toEqual(['api-fa', 'api-fb']);
    expect(await names('driver=null')).toEqual(['none']);
    expect(await names('type=builtin')).toEqual(['bridge', 'host', 'none']);
    expect(await names('type=custom', 'name=api-f')).toEqual(['api-fa', 'api-fb']);
    expect(await names('dangling=true', 'name=api-f')).toEqual(['api-fa', 'api-fb']);
    expect(await names('dangling=false', 'name=api-f')).toEqual([]);
    const bad = await d.request('GET', `/networks?filters=${encodeURIComponent('{"bogus":{"x":true}}')}`);
    expect(bad.status).toBe(400);
    expect((await d.docker(['network', 'rm', 'api-fa', 'api-fb'])).code).toBe(0);
  });

  it('prunes unused user networks (honouring label filters) and keeps the predefined ones', async () => {
    expect((await d.docker(['network', 'create', '--label', 'keep=yes', 'api-p1'])).code).toBe(0);
    expect((await d.docker(['network', 'create', 'api-p2'])).code).toBe(0);
    const r = await d.docker(['network', 'prune', '-f', '--filter', 'label!=keep']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('api-p2');
    expect(r.stdout).not.toContain('api-p1');
    const all = await d.request('POST', '/networks/prune');
    expect(all.json()).toEqual({ NetworksDeleted: ['api-p1'] });
    const none = await d.request('POST', '/networks/prune');
    expect(none.json()).toEqual({ NetworksDeleted: null });
    const ls = await d.docker(['network', 'ls', '--format', '{{.Name}}']);
    expect(ls.stdout.trim().split('\n')).toEqual(['bridge', 'host', 'none']);
  });

  it('emits network create and destroy events', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = (await d.docker(['network', 'create', 'api-ev'])).stdout.trim();
    expect((await d.docker(['network', 'rm', 'api-ev'])).code).toBe(0);
    const until = Math.floor(Date.now() / 1000) + 1;
    const r = await d.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'type=network', '--filter', 'network=api-ev', '--format', '{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "name"}}']);
    expect(r.stdout.trim().split('\n')).toEqual([`create ${id} api-ev`, `destroy ${id} api-ev`]);
  });
});
