import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { waitForValue } from '../helpers/wait.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { tarHeader, tarPadding, TAR_END } from '../../src/archive/tar-writer.js';

/** A tar holding the given members (regular files only). */
function tarOf(files: { name: string; content: string }[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const data = Buffer.from(f.content);
    parts.push(tarHeader({ name: f.name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 1_700_000_000 }), data, tarPadding(data.length));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

function cgroupFile(controller: string, id: string, file: string): string | undefined {
  for (const p of [`/sys/fs/cgroup/${controller}/berth/${id}/${file}`, `/sys/fs/cgroup/berth/${id}/${file}`]) {
    if (existsSync(p)) return readFileSync(p, 'utf8').trim();
  }
  return undefined;
}

describe('containers API part 2 through the docker CLI', () => {
  let d: TestDaemon;
  let host: string;

  beforeAll(async () => {
    d = await startDaemon();
    host = mkdtempSync(join(tmpdir(), 'berth-cp-'));
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(load.code, load.stderr).toBe(0);
  });

  afterAll(async () => {
    if (d) {
      const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.docker(['rm', '-f', ...ids]);
      const imgs = (await d.docker(['images', '-q', 'ops-*'])).stdout.split('\n').filter(Boolean);
      if (imgs.length > 0) await d.docker(['rmi', '-f', ...imgs]);
      await d.stop();
    }
    rmSync(host, { recursive: true, force: true });
  });

  const ok = async (args: string[], input?: string): Promise<string> => {
    const r = await d.docker(args, input !== undefined ? { input } : {});
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const runDetached = async (name: string, ...args: string[]): Promise<string> =>
    (await ok(['run', '-d', '--name', name, ...args])).trim();
  const idOf = async (name: string): Promise<string> => (await ok(['inspect', '-f', '{{.Id}}', name])).trim();

  describe('docker cp', () => {
    it('copies a file and a directory into a running container and back out', async () => {
      await runDetached('cp-run', 'busybox', 'sleep', '1000');
      writeFileSync(join(host, 'f.txt'), 'file-content\n');
      mkdirSync(join(host, 'dir/sub'), { recursive: true });
      writeFileSync(join(host, 'dir/sub/g.txt'), 'nested\n');
      symlinkSync('sub/g.txt', join(host, 'dir/link'));

      await ok(['cp', join(host, 'f.txt'), 'cp-run:/tmp/']);
      await ok(['cp', join(host, 'f.txt'), 'cp-run:/renamed.txt']);
      await ok(['cp', join(host, 'dir'), 'cp-run:/copied']);
      expect(await ok(['exec', 'cp-run', 'cat', '/tmp/f.txt', '/renamed.txt', '/copied/sub/g.txt'])).toBe('file-content\nfile-content\nnested\n');
      expect((await ok(['exec', 'cp-run', 'readlink', '/copied/link'])).trim()).toBe('sub/g.txt');

      const out = join(host, 'out1');
      mkdirSync(out);
      await ok(['cp', 'cp-run:/copied', out]);
      await ok(['cp', 'cp-run:/etc/passwd', join(out, 'pw')]);
      expect(readFileSync(join(out, 'copied/sub/g.txt'), 'utf8')).toBe('nested\n');
      expect(readFileSync(join(out, 'pw'), 'utf8')).toContain('root:x:0:0');
      const missing = await d.docker(['cp', 'cp-run:/does-not-exist', out]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain('Could not find the file /does-not-exist in container cp-run');
    });

    it('copies into and out of a stopped container', async () => {
      await ok(['create', '--name', 'cp-stopped', 'busybox', 'cat', '/in.txt']);
      writeFileSync(join(host, 'in.txt'), 'into-stopped\n');
      await ok(['cp', join(host, 'in.txt'), 'cp-stopped:/in.txt']);
      const out = join(host, 'out2');
      mkdirSync(out);
      await ok(['cp', 'cp-stopped:/in.txt', join(out, 'back.txt')]);
      expect(readFileSync(join(out, 'back.txt'), 'utf8')).toBe('into-stopped\n');
      expect(await ok(['start', '-a', 'cp-stopped'])).toBe('into-stopped\n');
      // and after it ran and stopped
      await ok(['cp', 'cp-stopped:/bin', out]);
      expect(readdirSync(join(out, 'bin'))).toContain('sh');
      expect(readdirSync(join(d.execRoot, 'views'))).toEqual([]);
    });

    it('keeps a container symlink to a host path inside the container for reads and writes', async () => {
      const secretDir = join(host, 'host-only');
      mkdirSync(secretDir);
      writeFileSync(join(secretDir, 'secret'), 'HOST-SECRET\n');
      await runDetached('cp-evil', 'busybox', 'sh', '-c', `mkdir -p ${secretDir} && echo CONTAINER > ${secretDir}/secret && ln -s ${secretDir} /abs && ln -s ../../../../../../../..${secretDir} /rel && sleep 1000`);
      await waitForValue('the symlinks', async () => ((await d.docker(['exec', 'cp-evil', 'test', '-L', '/rel'])).code === 0 ? true : undefined));
      for (const link of ['/abs', '/rel']) {
        const r = await d.docker(['cp', `cp-evil:${link}/secret`, '-']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain('CONTAINER');
        expect(r.stdout).not.toContain('HOST-SECRET');
      }
      writeFileSync(join(host, 'planted'), 'planted\n');
      await ok(['cp', join(host, 'planted'), 'cp-evil:/abs/']);
      await ok(['cp', join(host, 'planted'), 'cp-evil:/rel/planted2']);
      expect(readdirSync(secretDir).sort()).toEqual(['secret']);
      expect(readFileSync(join(secretDir, 'secret'), 'utf8')).toBe('HOST-SECRET\n');
      expect((await ok(['exec', 'cp-evil', 'ls', secretDir])).split('\n').filter(Boolean).sort()).toEqual(['planted', 'planted2', 'secret']);
    });

    it('copies into and out of volumes at their mount points, running or stopped, and refuses a :ro volume', async () => {
      await runDetached('cp-vol', '-v', 'ops-cpvol:/data', '-v', 'ops-cpro:/ro:ro', 'busybox', 'sleep', '1000');
      writeFileSync(join(host, 'v.txt'), 'in-volume\n');
      await ok(['cp', join(host, 'v.txt'), 'cp-vol:/data/']);
      expect(await ok(['run', '--rm', '-v', 'ops-cpvol:/v', 'busybox', 'cat', '/v/v.txt'])).toBe('in-volume\n');
      const ro = await d.docker(['cp', join(host, 'v.txt'), 'cp-vol:/ro/']);
      expect(ro.code).not.toBe(0);
      expect(ro.stderr).toContain('mounted volume is marked read-only');
      await ok(['rm', '-f', 'cp-vol']);
      await ok(['create', '--name', 'cp-vol2', '-v', 'ops-cpvol:/data', 'busybox', 'true']);
      await ok(['cp', join(host, 'v.txt'), 'cp-vol2:/data/second.txt']);
      const out = join(host, 'out-vol');
      mkdirSync(out);
      await ok(['cp', 'cp-vol2:/data', out]);
      expect(readdirSync(join(out, 'data')).sort()).toEqual(['second.txt', 'v.txt']);
      await ok(['rm', 'cp-vol2']);
      await ok(['volume', 'rm', 'ops-cpvol', 'ops-cpro']);
    });

    it('refuses a tar whose entries climb out with ../ and writes nothing outside the container', async () => {
      const id = (await runDetached('cp-tar', 'busybox', 'sleep', '1000'));
      const marker = `berth-escape-${Date.now()}`;
      const body = tarOf([
        { name: `../../../../../../../../tmp/${marker}`, content: 'escaped\n' },
        { name: `../${marker}-2`, content: 'escaped\n' },
      ]);
      const res = await d.request('PUT', `/containers/${id}/archive?path=${encodeURIComponent('/tmp')}`, {
        rawBody: body,
        headers: { 'content-type': 'application/x-tar' },
      });
      expect(res.status).toBe(400);
      expect(existsSync(`/tmp/${marker}`)).toBe(false);
      expect(existsSync(`/${marker}-2`)).toBe(false);
      expect((await d.docker(['exec', 'cp-tar', 'ls', '/tmp'])).stdout).not.toContain(marker);
      expect((await d.docker(['exec', 'cp-tar', 'ls', '/'])).stdout).not.toContain(marker);
    });

    it('answers HEAD with the path-stat header in Go FileMode bits', async () => {
      const id = await idOf('cp-run');
      const res = await d.request('HEAD', `/containers/${id}/archive?path=${encodeURIComponent('/copied')}`);
      expect(res.status).toBe(200);
      const stat = JSON.parse(Buffer.from(String(res.headers['x-docker-container-path-stat']), 'base64').toString()) as { name: string; mode: number; linkTarget: string };
      expect(stat.name).toBe('copied');
      expect(stat.mode).toBe(2 ** 31 + 0o755);
      const link = await d.request('HEAD', `/containers/${id}/archive?path=${encodeURIComponent('/copied/link')}`);
      const ls = JSON.parse(Buffer.from(String(link.headers['x-docker-container-path-stat']), 'base64').toString()) as { mode: number; linkTarget: string };
      expect(ls.mode & 2 ** 27).toBe(2 ** 27);
      expect(ls.linkTarget).toBe('/copied/sub/g.txt');
    });
  });

  describe('diff, commit, export', () => {
    it('docker diff shows added, deleted and changed paths like dockerd', async () => {
      await ok(['run', '--name', 'diff1', 'busybox', 'sh', '-c', 'echo x > /newfile; rm /bin/cat']);
      const lines = (await ok(['diff', 'diff1'])).split('\n').filter(Boolean);
      expect(lines).toContain('A /newfile');
      expect(lines).toContain('D /bin/cat');
      expect(lines).toContain('C /bin');
      expect(lines.some((l) => l.includes('/etc/hosts') || l.includes('.dockerenv'))).toBe(false);
      await ok(['create', '--name', 'diff-none', 'busybox', 'true']);
      expect(await ok(['diff', 'diff-none'])).toBe('');
    });

    it('docker commit -c CMD gives an image that runs with the change and keeps the layer', async () => {
      await ok(['run', '--name', 'commit1', 'busybox', 'sh', '-c', 'echo committed > /data.txt; rm /bin/cat']);
      const id = (await ok(['commit', '-m', 'a message', '-a', 'someone', '-c', 'CMD ["sh", "-c", "echo $GREETING; read l < /data.txt; echo $l"]', '-c', 'ENV GREETING=hello', 'commit1', 'ops-commit:1'])).trim();
      expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(await ok(['run', '--rm', 'ops-commit:1'])).toBe('hello\ncommitted\n');
      expect((await d.docker(['run', '--rm', 'ops-commit:1', 'ls', '/bin/cat'])).code).not.toBe(0);
      expect((await ok(['inspect', '-f', '{{.Comment}}|{{.Author}}|{{.Parent}}', 'ops-commit:1'])).trim()).toMatch(/^a message\|someone\|sha256:/);
      const history = await ok(['history', '--format', '{{.Comment}}', 'ops-commit:1']);
      expect(history.split('\n')[0]).toBe('a message');
    });

    it('docker export streams the whole root filesystem', async () => {
      await ok(['create', '--name', 'export1', 'busybox', 'true']);
      const file = join(host, 'export.tar');
      await ok(['export', '-o', file, 'export1']);
      const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n');
      expect(names).toContain('bin/sh');
      expect(names).toContain('etc/passwd');
      expect(names).toContain('.dockerenv');
    });
  });

  describe('processes, stats and resources', () => {
    it('docker top lists only the container\'s processes, with ps_args', async () => {
      await runDetached('top1', 'busybox', 'sleep', '1001');
      const out = await ok(['top', 'top1']);
      expect(out.split('\n')[0]).toMatch(/UID\s+PID\s+PPID/);
      expect(out).toContain('sleep 1001');
      expect(out.split('\n').filter(Boolean)).toHaveLength(2);
      const custom = await ok(['top', 'top1', '-o', 'pid,comm']);
      expect(custom.split('\n')[0]).toMatch(/PID\s+COMMAND/);
      expect(custom).toContain('sleep');
    });

    it('docker stats --no-stream shows real memory and PIDs; a one-shot answer is Docker\'s JSON', async () => {
      await runDetached('stats1', 'busybox', 'sh', '-c', 'sleep 1000 & sleep 1000 & wait');
      // sh and its two children; the children may still be forking right after `run -d`.
      const out = await waitForValue('three processes', async () => {
        const o = await ok(['stats', '--no-stream', '--format', '{{.MemUsage}}|{{.PIDs}}|{{.NetIO}}', 'stats1']);
        return o.trim().split('|')[1] === '3' ? o : undefined;
      });
      const [mem, , net] = out.trim().split('|');
      expect(mem).toMatch(/^[\d.]+[KMG]i?B \/ [\d.]+[KMG]i?B$/);
      expect(mem?.startsWith('0B')).toBe(false);
      expect(net).toMatch(/B \/ /);
      const id = await idOf('stats1');
      const res = await d.request('GET', `/containers/${id}/stats?stream=false&one-shot=true`);
      expect(res.status).toBe(200);
      const s = res.json<{ name: string; memory_stats: { usage: number }; pids_stats: { current: number }; cpu_stats: { system_cpu_usage: number; online_cpus: number } }>();
      expect(s.name).toBe('/stats1');
      expect(s.memory_stats.usage).toBeGreaterThan(0);
      expect(s.pids_stats.current).toBe(3);
      expect(s.cpu_stats.system_cpu_usage).toBeGreaterThan(0);
      expect(s.cpu_stats.online_cpus).toBeGreaterThan(0);
    });

    it('pause freezes the container and unpause resumes it', async () => {
      await runDetached('pause1', 'busybox', 'sleep', '1000');
      const id = await idOf('pause1');
      await ok(['pause', 'pause1']);
      expect((await ok(['inspect', '-f', '{{.State.Status}} {{.State.Paused}}', 'pause1'])).trim()).toBe('paused true');
      const state = cgroupFile('freezer', id, 'freezer.state') ?? cgroupFile('', id, 'cgroup.freeze');
      expect(['FROZEN', '1']).toContain(state);
      const exec = await d.docker(['exec', 'pause1', 'true']);
      expect(exec.code).not.toBe(0);
      expect(exec.stderr).toContain('paused');
      const again = await d.docker(['pause', 'pause1']);
      expect(again.stderr).toContain('is already paused');
      expect(await ok(['ps', '--filter', 'status=paused', '--format', '{{.Names}}'])).toContain('pause1');
      await ok(['unpause', 'pause1']);
      expect((await ok(['inspect', '-f', '{{.State.Status}} {{.State.Paused}}', 'pause1'])).trim()).toBe('running false');
      expect(['THAWED', '0']).toContain(cgroupFile('freezer', id, 'freezer.state') ?? cgroupFile('', id, 'cgroup.freeze'));
      expect((await d.docker(['exec', 'pause1', 'true'])).code).toBe(0);
      expect((await d.docker(['unpause', 'pause1'])).stderr).toContain('is not paused');
    });

    it('update -m 64m --memory-swap 128m reaches inspect and the cgroup; --restart too', async () => {
      await runDetached('upd1', 'busybox', 'sleep', '1000');
      const id = await idOf('upd1');
      await ok(['update', '-m', '64m', '--memory-swap', '128m', 'upd1']);
      expect((await ok(['inspect', '-f', '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}', 'upd1'])).trim()).toBe('67108864 134217728');
      const limit = cgroupFile('memory', id, 'memory.limit_in_bytes') ?? cgroupFile('', id, 'memory.max');
      expect(limit).toBe('67108864');
      const swap = cgroupFile('memory', id, 'memory.memsw.limit_in_bytes');
      if (swap !== undefined) expect(swap).toBe('134217728');
      await ok(['update', '--restart', 'on-failure:3', 'upd1']);
      expect((await ok(['inspect', '-f', '{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}', 'upd1'])).trim()).toBe('on-failure:3');
    });

    it('rename changes the name, refuses a taken one and publishes an event', async () => {
      await ok(['create', '--name', 'ren-a', 'busybox', 'true']);
      await ok(['create', '--name', 'ren-taken', 'busybox', 'true']);
      const since = Math.floor(Date.now() / 1000) - 1;
      await ok(['rename', 'ren-a', 'ren-b']);
      expect((await ok(['inspect', '-f', '{{.Name}}', 'ren-b'])).trim()).toBe('/ren-b');
      expect((await d.docker(['inspect', 'ren-a'])).code).not.toBe(0);
      const taken = await d.docker(['rename', 'ren-b', 'ren-taken']);
      expect(taken.code).not.toBe(0);
      expect(taken.stderr).toContain('is already in use');
      const ev = await ok(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'event=rename', '--format', '{{.Actor.Attributes.oldName}} {{.Actor.Attributes.name}}']);
      expect(ev).toContain('/ren-a ren-b');
    });

    it('container prune removes stopped containers matching the filters, and only those', async () => {
      await ok(['create', '--name', 'prune-keep', '--label', 'keep=1', 'busybox', 'true']);
      await ok(['run', '--name', 'prune-go', '--label', 'prune=me', 'busybox', 'sh', '-c', 'echo data > /f']);
      await runDetached('prune-running', '--label', 'prune=me', 'busybox', 'sleep', '1000');
      const out = await ok(['container', 'prune', '-f', '--filter', 'label=prune=me']);
      const goId = (await d.request('GET', '/containers/json?all=1')).json<{ Names: string[] }[]>();
      const names = goId.flatMap((c) => c.Names);
      expect(names).not.toContain('/prune-go');
      expect(names).toContain('/prune-keep');
      expect(names).toContain('/prune-running');
      expect(out).toContain('Total reclaimed space:');
      const res = await d.request('POST', `/containers/prune?filters=${encodeURIComponent('{"label":{"nothing=matches":true}}')}`);
      expect(res.json()).toEqual({ ContainersDeleted: null, SpaceReclaimed: 0 });
    });
  });

  describe('healthchecks', () => {
    it('goes starting → healthy → unhealthy with health_status events and the health filter', async () => {
      const since = Math.floor(Date.now() / 1000) - 1;
      await runDetached('health1', '--health-cmd', 'test -f /ok', '--health-interval', '300ms', '--health-retries', '2', '--health-timeout', '5s', 'busybox', 'sh', '-c', 'touch /ok; sleep 1000');
      await waitForValue('healthy', async () => ((await ok(['inspect', '-f', '{{.State.Health.Status}}', 'health1'])).trim() === 'healthy' ? true : undefined));
      expect(await ok(['ps', '--filter', 'health=healthy', '--format', '{{.Names}} {{.Status}}'])).toMatch(/health1 Up .*\(healthy\)/);
      await ok(['exec', 'health1', 'rm', '/ok']);
      await waitForValue('unhealthy', async () => ((await ok(['inspect', '-f', '{{.State.Health.Status}}', 'health1'])).trim() === 'unhealthy' ? true : undefined));
      const health = JSON.parse(await ok(['inspect', '-f', '{{json .State.Health}}', 'health1'])) as { FailingStreak: number; Log: { ExitCode: number }[] };
      expect(health.FailingStreak).toBeGreaterThanOrEqual(2);
      expect(health.Log.length).toBeLessThanOrEqual(5);
      expect(health.Log.at(-1)?.ExitCode).toBe(1);
      const ev = await ok(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'container=health1', '--filter', 'event=health_status', '--format', '{{.Action}}']);
      expect(ev.split('\n').filter(Boolean)).toEqual(['health_status: healthy', 'health_status: unhealthy']);
      expect(await ok(['ps', '--filter', 'health=unhealthy', '--format', '{{.Names}}'])).toContain('health1');
    });

    it('keeps probing a running container after a daemon restart', async () => {
      await runDetached('health-restart', '--health-cmd', 'test -f /ok', '--health-interval', '300ms', '--health-retries', '1', 'busybox', 'sh', '-c', 'touch /ok; sleep 1000');
      await waitForValue('healthy', async () => ((await ok(['inspect', '-f', '{{.State.Health.Status}}', 'health-restart'])).trim() === 'healthy' ? true : undefined));
      await d.signal('SIGTERM');
      await d.launch();
      expect((await ok(['inspect', '-f', '{{.State.Running}} {{.State.Health.Status}}', 'health-restart'])).trim()).toBe('true healthy');
      await ok(['exec', 'health-restart', 'rm', '/ok']);
      await waitForValue('unhealthy', async () => ((await ok(['inspect', '-f', '{{.State.Health.Status}}', 'health-restart'])).trim() === 'unhealthy' ? true : undefined));
    });

    it('records a probe that outlives its timeout as a failure with exit code -1', async () => {
      await runDetached('health2', '--health-cmd', 'sleep 5', '--health-interval', '200ms', '--health-timeout', '300ms', '--health-retries', '1', 'busybox', 'sleep', '1000');
      await waitForValue('unhealthy', async () => ((await ok(['inspect', '-f', '{{.State.Health.Status}}', 'health2'])).trim() === 'unhealthy' ? true : undefined));
      const health = JSON.parse(await ok(['inspect', '-f', '{{json .State.Health}}', 'health2'])) as { Log: { ExitCode: number; Output: string }[] };
      expect(health.Log[0]?.ExitCode).toBe(-1);
      expect(health.Log[0]?.Output).toBe('Health check exceeded timeout (300ms)');
    });
  });
});
