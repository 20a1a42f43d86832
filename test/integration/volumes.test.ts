import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

interface Volume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string> | null;
  Options: Record<string, string> | null;
  Scope: string;
  UsageData?: { Size: number; RefCount: number };
}

describe('volumes through the docker CLI', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d?.stop();
  });

  const names = async (...args: string[]): Promise<string[]> => {
    const r = await d.docker(['volume', 'ls', '-q', ...args]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.split('\n').filter(Boolean).sort();
  };

  it('creates, lists, inspects and removes a volume with labels', async () => {
    const c = await d.docker(['volume', 'create', '--label', 'app=web', '--label', 'tier', 'web-data']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout.trim()).toBe('web-data');
    expect(await names()).toContain('web-data');

    const i = await d.docker(['volume', 'inspect', 'web-data']);
    expect(i.code, i.stderr).toBe(0);
    const [v] = JSON.parse(i.stdout) as Volume[];
    expect(v).toMatchObject({
      Name: 'web-data',
      Driver: 'local',
      Labels: { app: 'web', tier: '' },
      Options: {},
      Scope: 'local',
      Mountpoint: join(d.dataRoot, 'volumes', 'web-data', '_data'),
    });
    expect(v?.CreatedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/);
    expect(existsSync(v?.Mountpoint ?? '')).toBe(true);

    const fmt = await d.docker(['volume', 'inspect', '-f', '{{.Name}} {{.Driver}} {{index .Labels "app"}}', 'web-data']);
    expect(fmt.stdout.trim()).toBe('web-data local web');

    const rm = await d.docker(['volume', 'rm', 'web-data']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout.trim()).toBe('web-data');
    expect(existsSync(join(d.dataRoot, 'volumes', 'web-data'))).toBe(false);
  });

  it('answers create idempotently for the same name (201 both times, same volume)', async () => {
    const a = await d.request('POST', '/v1.50/volumes/create', { body: { Name: 'idem', Labels: { x: '1' } } });
    const b = await d.request('POST', '/v1.50/volumes/create', { body: { Name: 'idem', Driver: 'local' } });
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(b.json<Volume>()).toEqual(a.json<Volume>());
    expect(a.headers['content-type']).toBe('application/json');
    expect((await d.docker(['volume', 'create', 'idem'])).code).toBe(0);
    await d.docker(['volume', 'rm', 'idem']);
  });

  it("refuses invalid names with dockerd's 400 message", async () => {
    const r = await d.docker(['volume', 'create', 'a/b']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'Error response from daemon: create a/b: "a/b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
    );
    const res = await d.request('POST', '/volumes/create', { body: { Name: '../escape' } });
    expect(res.status).toBe(400);
    expect(res.json<{ message: string }>().message).toMatch(/^create \.\.\/escape: "\.\.\/escape" includes invalid characters/);
    expect(existsSync(join(d.dataRoot, 'escape'))).toBe(false);
    const short = await d.request('POST', '/volumes/create', { body: { Name: 'x' } });
    expect(short.status).toBe(400);
    const opt = await d.request('POST', '/volumes/create', { body: { Name: 'opt1', DriverOpts: { bogus: '1' } } });
    expect([opt.status, opt.json<{ message: string }>().message]).toEqual([400, 'create opt1: invalid option: "bogus"']);
  });

  it("answers 404 'get X: no such volume' for inspect and rm, and rm -f of a missing volume succeeds", async () => {
    const i = await d.request('GET', '/volumes/nope');
    expect([i.status, i.json<{ message: string }>().message]).toEqual([404, 'get nope: no such volume']);
    const rm = await d.docker(['volume', 'rm', 'nope']);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain('get nope: no such volume');
    expect((await d.docker(['volume', 'rm', '-f', 'nope'])).code).toBe(0);
    const del = await d.request('DELETE', '/volumes/..%2F..%2Fetc');
    expect(del.status).toBe(404);
    const ins = await d.docker(['inspect', 'nope']);
    expect(ins.stderr).toContain('No such object: nope');
  });

  it('filters volume ls by name, label, driver and dangling', async () => {
    for (const args of [['--label', 'tier=db', 'f-db'], ['--label', 'tier=web', 'f-web'], ['f-plain']]) {
      expect((await d.docker(['volume', 'create', ...args])).code).toBe(0);
    }
    expect(await names('--filter', 'name=f-')).toEqual(['f-db', 'f-plain', 'f-web']);
    expect(await names('--filter', 'label=tier')).toEqual(['f-db', 'f-web']);
    expect(await names('--filter', 'label=tier=db')).toEqual(['f-db']);
    expect(await names('--filter', 'name=f-', '--filter', 'driver=local')).toEqual(['f-db', 'f-plain', 'f-web']);
    expect(await names('--filter', 'name=f-', '--filter', 'dangling=true')).toEqual(['f-db', 'f-plain', 'f-web']);
    expect(await names('--filter', 'name=f-', '--filter', 'dangling=false')).toEqual([]);
    const bad = await d.docker(['volume', 'ls', '--filter', 'bogus=1']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("invalid filter 'bogus'");
    const list = await d.request('GET', '/volumes');
    expect(list.json<{ Warnings: unknown }>().Warnings).toBeNull();
    await d.docker(['volume', 'rm', 'f-db', 'f-web', 'f-plain']);
  });

  it('prunes anonymous volumes only by default, named ones too with --all, and reports the space', async () => {
    const anon = (await d.request('POST', '/volumes/create', { body: {} })).json<Volume>();
    expect(anon.Name).toMatch(/^[0-9a-f]{64}$/);
    expect(anon.Labels).toEqual({ 'com.docker.volume.anonymous': '' });
    writeFileSync(join(anon.Mountpoint, 'blob'), Buffer.alloc(2048));
    expect((await d.docker(['volume', 'create', 'p-named'])).code).toBe(0);

    const p1 = await d.docker(['volume', 'prune', '-f']);
    expect(p1.code, p1.stderr).toBe(0);
    expect(p1.stdout).toContain(anon.Name);
    expect(p1.stdout).not.toContain('p-named');
    expect(p1.stdout).toContain('Total reclaimed space: 2.048kB');
    expect(await names()).toContain('p-named');

    const p2 = await d.docker(['volume', 'prune', '-f', '--all', '--filter', 'label!=keep']);
    expect(p2.code, p2.stderr).toBe(0);
    expect(p2.stdout).toContain('p-named');
    expect(await names()).not.toContain('p-named');

    // Before API 1.42 prune considered every volume.
    expect((await d.docker(['volume', 'create', 'old-api'])).code).toBe(0);
    const old = await d.request('POST', '/v1.41/volumes/prune');
    expect(old.json<{ VolumesDeleted: string[] }>().VolumesDeleted).toEqual(['old-api']);
    const empty = await d.request('POST', '/volumes/prune');
    expect(empty.json()).toEqual({ VolumesDeleted: [], SpaceReclaimed: 0 });
  });

  it('shows volumes in docker system df and df -v', async () => {
    expect((await d.docker(['volume', 'create', 'df-vol'])).code).toBe(0);
    writeFileSync(join(d.dataRoot, 'volumes', 'df-vol', '_data', 'f'), Buffer.alloc(5000));
    const df = await d.docker(['system', 'df']);
    expect(df.code, df.stderr).toBe(0);
    expect(df.stdout).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE/);
    expect(df.stdout).toMatch(/Images\s+0\s+0\s+0B\s+0B/);
    expect(df.stdout).toMatch(/Containers\s+0\s+0\s+0B\s+0B/);
    expect(df.stdout).toMatch(/Local Volumes\s+1\s+0\s+5kB\s+5kB \(100%\)/);
    expect(df.stdout).toMatch(/Build Cache\s+0\s+0\s+0B\s+0B/);
    const dfv = await d.docker(['system', 'df', '-v']);
    expect(dfv.code, dfv.stderr).toBe(0);
    expect(dfv.stdout).toMatch(/Local Volumes space usage:\s+VOLUME NAME\s+LINKS\s+SIZE\s+df-vol\s+0\s+5kB/);
    const raw = await d.request('GET', '/v1.50/system/df');
    expect(raw.json()).toMatchObject({ LayersSize: 0, Images: [], Containers: [], BuildCache: [], BuilderSize: 0 });
    expect(raw.json<{ Volumes: Volume[] }>().Volumes[0]).toMatchObject({ Name: 'df-vol', UsageData: { Size: 5000, RefCount: 0 } });
    const typed = await d.request('GET', '/v1.50/system/df?type=volume');
    expect(Object.keys(typed.json<object>()).sort()).toEqual(['BuilderSize', 'Volumes']);
    expect((await d.request('GET', '/v1.50/system/df?type=bogus')).status).toBe(400);
    await d.docker(['volume', 'rm', 'df-vol']);
  });

  it('publishes create and destroy events', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await d.docker(['volume', 'create', 'ev-vol']);
    await d.docker(['volume', 'rm', 'ev-vol']);
    const ev = await d.docker(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'type=volume', '--format', '{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "driver"}}']);
    expect(ev.stdout.split('\n').filter((l) => l.includes('ev-vol'))).toEqual(['create ev-vol local', 'destroy ev-vol local']);
  });

  it('keeps volumes across a daemon restart', async () => {
    await d.docker(['volume', 'create', '--label', 'k=v', 'persist']);
    const before = JSON.parse((await d.docker(['volume', 'inspect', 'persist'])).stdout) as Volume[];
    await d.signal('SIGTERM');
    await d.launch();
    const after = JSON.parse((await d.docker(['volume', 'inspect', 'persist'])).stdout) as Volume[];
    expect(after).toEqual(before);
    await d.docker(['volume', 'rm', 'persist']);
  });
});
