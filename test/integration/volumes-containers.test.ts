import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxEntries, busyboxImageTar } from '../helpers/busybox-image.js';
import { dockerSaveArchive } from '../helpers/image-builder.js';

interface MountPoint {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/**
 * The container cases of issue #5: they need the containers service (create/start/rm) and the image
 * store (load). Until those routes exist each case reports itself skipped.
 */
describe('volumes and mounts on real containers', () => {
  let d: TestDaemon;
  let ready = false;
  let hostDir: string;

  beforeAll(async () => {
    d = await startDaemon();
    hostDir = mkdtempSync(join(tmpdir(), 'berth-bind-'));
    const probe = await d.request('POST', '/containers/create', { body: {} });
    if (probe.status === 404 && probe.text().includes('page not found')) return;
    const bb = await d.docker(['load', '-i', await busyboxImageTar()]);
    if (bb.code !== 0) return;
    const tarPath = join(hostDir, 'voltest.tar');
    writeFileSync(
      tarPath,
      await dockerSaveArchive([
        {
          repoTags: ['voltest:1'],
          config: { Volumes: { '/data': {} }, Cmd: ['sh'] },
          layers: [
            busyboxEntries(),
            [
              { path: 'data', type: 'directory', mode: 0o750, uid: 33, gid: 33 },
              { path: 'data/seed.txt', type: 'file', mode: 0o640, uid: 33, gid: 33, content: 'seeded\n' },
              { path: 'data/link', type: 'symlink', linkname: 'seed.txt' },
            ],
          ],
        },
      ]),
    );
    const vt = await d.docker(['load', '-i', tarPath]);
    ready = vt.code === 0;
  });

  afterAll(async () => {
    if (d) {
      const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.docker(['rm', '-f', '-v', ...ids]);
      await d.stop();
    }
    rmSync(hostDir, { recursive: true, force: true });
  });

  const need = (ctx: TestContext): void => {
    if (!ready) ctx.skip();
  };
  const run = (...args: string[]) => d.docker(['run', '--rm', ...args], { timeoutMs: 60_000 });
  const mountsOf = async (name: string): Promise<MountPoint[]> =>
    JSON.parse((await d.docker(['inspect', '-f', '{{json .Mounts}}', name])).stdout) as MountPoint[];

  it('shares a named volume between containers, created on first use', async (ctx) => {
    need(ctx);
    const w = await run('-v', 'shared:/s', 'busybox', 'sh', '-c', 'echo hello > /s/f');
    expect(w.code, w.stderr).toBe(0);
    const r = await run('-v', 'shared:/s', 'busybox', 'cat', '/s/f');
    expect(r.stdout).toBe('hello\n');
    expect((await d.docker(['volume', 'ls', '-q'])).stdout).toContain('shared');
  });

  it('refuses writes through a :ro volume', async (ctx) => {
    need(ctx);
    const r = await run('-v', 'shared:/s:ro', 'busybox', 'sh', '-c', 'echo x > /s/g');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Read-only file system');
  });

  it('copies the image content into a new volume, keeping owner, mode and links; not with nocopy', async (ctx) => {
    need(ctx);
    const r = await run('-v', 'seeded:/data', 'voltest:1', 'sh', '-c', 'cat /data/seed.txt; stat -c "%u:%g %a" /data /data/seed.txt; readlink /data/link');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('seeded\n33:33 750\n33:33 640\nseed.txt\n');
    const n = await run('-v', 'unseeded:/data:nocopy', 'voltest:1', 'ls', '-A', '/data');
    expect(n.stdout).toBe('');
  });

  it('gives VOLUME an anonymous volume that rm -v removes, and --rm too', async (ctx) => {
    need(ctx);
    expect((await d.docker(['create', '--name', 'anon-v', 'voltest:1'])).code).toBe(0);
    const [m] = await mountsOf('anon-v');
    expect(m).toMatchObject({ Type: 'volume', Destination: '/data', Driver: 'local', Mode: '', RW: true, Propagation: '' });
    expect(m?.Name).toMatch(/^[0-9a-f]{64}$/);
    expect(m?.Source).toBe(join(d.dataRoot, 'volumes', m?.Name ?? '', '_data'));
    const rm = await d.docker(['rm', '-v', 'anon-v']);
    expect(rm.code, rm.stderr).toBe(0);
    expect((await d.docker(['volume', 'ls', '-q'])).stdout).not.toContain(m?.Name ?? 'x');

    const before = new Set((await d.docker(['volume', 'ls', '-q'])).stdout.split('\n'));
    expect((await run('voltest:1', 'true')).code).toBe(0);
    const deadline = Date.now() + 10_000;
    let extra: string[] = [];
    do {
      extra = (await d.docker(['volume', 'ls', '-q'])).stdout.split('\n').filter((n) => n && !before.has(n));
    } while (extra.length > 0 && Date.now() < deadline);
    expect(extra).toEqual([]);
  });

  it('bind-mounts host paths, creating a missing -v source but refusing a missing --mount source', async (ctx) => {
    need(ctx);
    writeFileSync(join(hostDir, 'file'), 'from host\n');
    const r = await run('-v', `${hostDir}:/h:ro`, 'busybox', 'cat', '/h/file');
    expect(r.stdout).toBe('from host\n');
    const created = join(hostDir, 'made', 'by', 'run');
    expect((await run('-v', `${created}:/m`, 'busybox', 'true')).code).toBe(0);
    expect(statSync(created).isDirectory()).toBe(true);
    const bad = await run('--mount', `type=bind,src=${join(hostDir, 'missing')},dst=/x`, 'busybox', 'true');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(`invalid mount config for type "bind": bind source path does not exist: ${join(hostDir, 'missing')}`);
    expect(existsSync(join(hostDir, 'missing'))).toBe(false);
  });

  it('mounts tmpfs with its size and mode', async (ctx) => {
    need(ctx);
    const r = await run('--mount', 'type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770', 'busybox', 'sh', '-c', 'grep " /t " /proc/mounts; stat -c %a /t');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^tmpfs \/t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=1770/);
    expect(r.stdout).toContain('\n1770\n');
  });

  it('takes volumes from another container with --volumes-from, read-only when asked', async (ctx) => {
    need(ctx);
    expect((await d.docker(['create', '--name', 'vf-src', '-v', 'vf:/vf', 'busybox'])).code).toBe(0);
    expect((await run('--volumes-from', 'vf-src', 'busybox', 'sh', '-c', 'echo ok > /vf/x')).code).toBe(0);
    const ro = await run('--volumes-from', 'vf-src:ro', 'busybox', 'sh', '-c', 'cat /vf/x; echo y > /vf/y');
    expect(ro.stdout).toBe('ok\n');
    expect(ro.code).not.toBe(0);
    await d.docker(['rm', 'vf-src']);
  });

  it('mounts a local volume with tmpfs options while a container uses it, publishing mount/unmount', async (ctx) => {
    need(ctx);
    const since = Math.floor(Date.now() / 1000) - 1;
    expect((await d.docker(['volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', '-o', 'o=size=2m', 'tmpvol'])).code).toBe(0);
    const r = await run('-v', 'tmpvol:/tv', 'busybox', 'sh', '-c', 'grep " /tv " /proc/mounts');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^tmpfs \/tv tmpfs rw,.*size=2048k/);
    const data = join(d.dataRoot, 'volumes', 'tmpvol', '_data');
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${data} `);
    const ev = await d.docker([
      'events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1),
      '--filter', 'volume=tmpvol', '--format', '{{.Action}} {{index .Actor.Attributes "destination"}}',
    ]);
    expect(ev.stdout.split('\n').filter(Boolean)).toEqual(['create ', 'mount /tv', 'unmount ']);
    expect((await d.docker(['volume', 'rm', 'tmpvol'])).code).toBe(0);
  });

  it('docker system df counts images (shared layers), containers and volumes in use', async (ctx) => {
    need(ctx);
    const c = await d.docker(['create', '--name', 'df-user', '-v', 'df-used:/u', 'voltest:1']);
    expect(c.code, c.stderr).toBe(0);
    const df = await d.docker(['system', 'df']);
    expect(df.code, df.stderr).toBe(0);
    expect(df.stdout).toMatch(/Images\s+2\s+1\s/);
    expect(df.stdout).toMatch(/Containers\s+\d+\s+0\s/);
    const raw = (await d.request('GET', '/system/df')).json<{
      LayersSize: number;
      Images: { RepoTags: string[]; Size: number; SharedSize: number; Containers: number }[];
      Containers: { Names: string[] }[];
      Volumes: { Name: string; UsageData: { RefCount: number } }[];
    }>();
    const bb = raw.Images.find((i) => i.RepoTags.includes('busybox:latest'));
    const vt = raw.Images.find((i) => i.RepoTags.includes('voltest:1'));
    expect(bb?.SharedSize).toBe(bb?.Size);
    expect(vt?.SharedSize).toBe(bb?.Size);
    expect(vt?.Containers).toBe(1);
    expect(raw.LayersSize).toBe(vt?.Size);
    expect(raw.Containers.some((x) => x.Names.includes('/df-user'))).toBe(true);
    expect(raw.Volumes.find((v) => v.Name === 'df-used')?.UsageData.RefCount).toBe(1);
    const dfv = await d.docker(['system', 'df', '-v']);
    expect(dfv.stdout).toMatch(/df-used\s+1\s/);
    expect((await d.docker(['rm', '-v', 'df-user'])).code).toBe(0);
    // The VOLUME anonymous volume went with rm -v; the named one stays.
    expect((await d.docker(['volume', 'rm', 'df-used'])).code).toBe(0);
  });

  it('refuses to remove a volume in use (409 with the container ID) and shows inspect Mounts as dockerd', async (ctx) => {
    need(ctx);
    const c = await d.docker(['create', '--name', 'holder', '-v', 'inuse:/x', '-v', `${hostDir}:/h:ro,rslave`, 'busybox']);
    const id = c.stdout.trim();
    const res = await d.request('DELETE', '/volumes/inuse?force=1');
    expect(res.status).toBe(409);
    expect(res.json<{ message: string }>().message).toBe(`remove inuse: volume is in use - [${id}]`);
    const rm = await d.docker(['volume', 'rm', 'inuse']);
    expect(rm.stderr).toContain('volume is in use');
    const mounts = (await mountsOf('holder')).sort((a, b) => a.Destination.localeCompare(b.Destination));
    expect(mounts).toEqual([
      { Type: 'bind', Source: hostDir, Destination: '/h', Mode: 'ro,rslave', RW: false, Propagation: 'rslave' },
      { Type: 'volume', Name: 'inuse', Source: join(d.dataRoot, 'volumes', 'inuse', '_data'), Destination: '/x', Driver: 'local', Mode: 'z', RW: true, Propagation: '' },
    ]);
    const df = await d.request('GET', '/system/df');
    expect(df.json<{ Volumes: { Name: string; UsageData: { RefCount: number } }[] }>().Volumes.find((v) => v.Name === 'inuse')?.UsageData.RefCount).toBe(1);
    expect((await d.docker(['volume', 'prune', '-af'])).stdout).not.toContain('inuse');
    expect((await d.docker(['rm', 'holder'])).code).toBe(0);
    expect((await d.docker(['volume', 'rm', 'inuse'])).code).toBe(0);
  });
});
