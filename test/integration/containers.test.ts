import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { waitFor } from '../helpers/wait.js';
import { validateResponse } from '../helpers/api-spec.js';

describe('containers through the docker CLI', () => {
  let d: TestDaemon;
  const docker = (...args: string[]) => d.docker(args);
  const ok = async (...args: string[]): Promise<string> => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    d = await startDaemon();
    await ok('load', '-i', await busyboxImageTar());
  });
  afterAll(async () => {
    await d.docker(['rm', '-f', ...(await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean)]);
    await d.stop();
  });

  it('docker run --rm prints the output and leaves nothing behind', async () => {
    const r = await docker('run', '--rm', '--name', 'hello', 'busybox', 'echo', 'hi');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('hi\n');
    expect((await docker('ps', '-a', '--filter', 'name=hello', '-q')).stdout).toBe('');
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(d.dataRoot);
  });

  it('passes exit codes through', async () => {
    expect((await docker('run', '--rm', 'busybox', 'sh', '-c', 'exit 7')).code).toBe(7);
  });

  it('pipes stdin with -i and keeps stdout and stderr apart', async () => {
    const r = await d.docker(['run', '-i', '--rm', 'busybox', 'cat'], { input: 'x\n' });
    expect(r.stdout).toBe('x\n');
    const split = await docker('run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2');
    expect(split.stdout).toBe('out\n');
    expect(split.stderr).toBe('err\n');
  });

  it('moves 5 MB through stdin and stdout byte-exact', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const r = await new Promise<Buffer>((resolve, reject) => {
      import('node:child_process').then(({ spawn }) => {
        const p = spawn('docker', ['run', '-i', '--rm', 'busybox', 'cat'], { env: d.env });
        const out: Buffer[] = [];
        p.stdout.on('data', (b: Buffer) => out.push(b));
        p.on('error', reject);
        p.on('close', () => resolve(Buffer.concat(out)));
        p.stdin.end(data);
      }, reject);
    });
    expect(r.length).toBe(data.length);
    expect(r.equals(data)).toBe(true);
  });

  it('gives -t a pty', async () => {
    const r = await docker('run', '-t', '--rm', 'busybox', 'tty');
    expect(r.stdout.trim()).toBe('/dev/pts/0');
  });

  it('runs detached, lists with filters and formats, and reads logs', async () => {
    const id = (await ok('run', '-d', '--name', 'lister', '--label', 'tier=web', 'busybox', 'sh', '-c', 'echo one; echo two; sleep 60')).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    await waitFor(async () => (await docker('logs', 'lister')).stdout === 'one\ntwo\n');
    expect(await ok('ps', '--no-trunc', '--filter', 'label=tier=web', '--format', '{{.Names}} {{.Image}} {{.Command}}')).toBe(`lister busybox "sh -c 'echo one; echo two; sleep 60'"\n`);
    expect((await ok('ps', '--filter', 'name=lister', '--format', '{{.Status}}')).trim()).toMatch(/^Up /);
    expect(await ok('ps', '-q', '--filter', 'label=tier=db')).toBe('');
    expect((await ok('ps', '--no-trunc', '-q', '--filter', `id=${id.slice(0, 10)}`)).trim()).toBe(id);
    expect(await ok('logs', '--tail', '1', 'lister')).toBe('two\n');
    const ts = await ok('logs', '-t', '--tail', '1', 'lister');
    expect(ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z two\n$/);
    await ok('rm', '-f', 'lister');
  });

  it('logs -f ends when the container exits', async () => {
    await ok('run', '-d', '--name', 'follower', 'busybox', 'sh', '-c', 'for i in 1 2 3; do echo line $i; sleep 0.2; done');
    const r = await docker('logs', '-f', 'follower');
    expect(r.stdout).toBe('line 1\nline 2\nline 3\n');
    await ok('rm', 'follower');
  });

  it('execs with exit codes, env, user, workdir and stdin', async () => {
    await ok('run', '-d', '--name', 'ex', 'busybox', 'sleep', '60');
    expect((await docker('exec', 'ex', 'sh', '-c', 'exit 3')).code).toBe(3);
    expect(await ok('exec', '-e', 'FOO=bar', 'ex', 'sh', '-c', 'echo $FOO')).toBe('bar\n');
    expect(await ok('exec', '-u', '1234:5678', 'ex', 'id', '-u')).toBe('1234\n');
    expect(await ok('exec', '-w', '/tmp', 'ex', 'pwd')).toBe('/tmp\n');
    expect((await d.docker(['exec', '-i', 'ex', 'cat'], { input: 'abc\n' })).stdout).toBe('abc\n');
    expect((await ok('exec', '-t', 'ex', 'tty')).trim()).toBe('/dev/pts/0');
    const ps = await ok('exec', 'ex', 'ps', '-o', 'pid,comm');
    expect(ps).toMatch(/\n\s*1 sleep\n/);
    const missing = await docker('exec', 'ex', 'nosuchbinary');
    expect(missing.code).toBe(126); // dockerd's ExitCode for any exec that fails to start
    expect(missing.stdout + missing.stderr).toMatch(/executable file not found/);
    await ok('rm', '-f', 'ex');
  });

  it('stops gracefully when the process traps SIGTERM, and kills after the timeout', async () => {
    // PID 1 of the container ignores a signal it has no handler for yet: stop only once the trap is in place
    await ok('run', '-d', '--name', 'trapper', 'busybox', 'sh', '-c', 'trap "echo got-term; exit 0" TERM; echo trapping; while true; do sleep 0.1; done');
    await waitFor(async () => (await ok('logs', 'trapper')).includes('trapping'));
    await ok('stop', 'trapper');
    expect((await ok('inspect', '-f', '{{.State.ExitCode}}', 'trapper')).trim()).toBe('0');
    expect(await ok('logs', 'trapper')).toContain('got-term');
    await ok('run', '-d', '--name', 'stubborn', 'busybox', 'sleep', '60');
    await ok('stop', '-t', '1', 'stubborn');
    expect((await ok('inspect', '-f', '{{.State.ExitCode}} {{.State.Status}}', 'stubborn')).trim()).toBe('137 exited');
    await ok('rm', 'trapper', 'stubborn');
  });

  it('kill -s USR1 delivers the signal; wait returns the exit code', async () => {
    // a running container is not yet a trap in place (PID 1 ignores USR1 without a handler): wait for its word
    await ok('run', '-d', '--name', 'sig', 'busybox', 'sh', '-c', 'trap "echo usr1; exit 5" USR1; echo trapping; while true; do sleep 0.1; done');
    await waitFor(async () => (await ok('logs', 'sig')).includes('trapping'));
    await ok('kill', '-s', 'USR1', 'sig');
    expect((await ok('wait', 'sig')).trim()).toBe('5');
    expect(await ok('logs', 'sig')).toBe('trapping\nusr1\n');
    await ok('rm', 'sig');
  });

  it('restarts a container and inspects the fields dockerd shows', async () => {
    await ok('run', '-d', '--name', 'rs', '-e', 'A=1', 'busybox', 'sleep', '60');
    const before = JSON.parse(await ok('inspect', 'rs')) as Record<string, any>[];
    await ok('restart', '-t', '0', 'rs');
    const after = JSON.parse(await ok('inspect', 'rs')) as Record<string, any>[];
    const c = after[0]!;
    expect(c.Name).toBe('/rs');
    expect(c.Path).toBe('sleep');
    expect(c.Args).toEqual(['60']);
    expect(c.State.Running).toBe(true);
    expect(c.State.StartedAt).not.toBe(before[0]!.State.StartedAt);
    expect(c.Config.Env).toContain('A=1');
    expect(c.Config.Image).toBe('busybox');
    expect(c.HostConfig.RestartPolicy).toEqual({ Name: 'no', MaximumRetryCount: 0 });
    expect(c.Image).toMatch(/^sha256:/);
    expect(existsSync(c.LogPath)).toBe(true);
    const inspect = await d.request('GET', '/v1.50/containers/rs/json');
    expect(validateResponse('GET', '/containers/{id}/json', 200, inspect.json())).toEqual([]);
    const list = await d.request('GET', '/containers/json?all=1');
    expect(validateResponse('GET', '/containers/json', 200, list.json())).toEqual([]);
    await ok('rm', '-f', 'rs');
  });

  it('restarts a --rm container instead of removing it, and removes it when it stops later (as dockerd)', async () => {
    await ok('run', '-d', '--rm', '--name', 'rmrs', 'busybox', 'sleep', '60');
    await ok('restart', '-t', '0', 'rmrs');
    const c = (JSON.parse(await ok('inspect', 'rmrs')) as Record<string, any>[])[0]!;
    expect(c.State.Running).toBe(true);
    expect(c.HostConfig.AutoRemove).toBe(true);
    await ok('stop', '-t', '0', 'rmrs');
    await waitFor(async () => (await docker('ps', '-aq', '--filter', 'name=^rmrs$')).stdout === '');
  });

  it('reports name conflicts, running removal and unknown containers as dockerd does', async () => {
    await ok('create', '--name', 'taken', 'busybox', 'true');
    const dup = await docker('create', '--name', 'taken', 'busybox', 'true');
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toMatch(/Conflict\. The container name "\/taken" is already in use by container "[0-9a-f]{64}"\. You have to remove \(or rename\) that container to be able to reuse that name\./);
    await ok('rm', 'taken');

    await ok('run', '-d', '--name', 'busy', 'busybox', 'sleep', '60');
    const rm = await docker('rm', 'busy');
    expect(rm.stderr).toMatch(/You cannot remove a running container [0-9a-f]{64}\. Stop the container before attempting removal or force remove/);
    await ok('rm', '-f', 'busy');

    const missing = await docker('inspect', '--type', 'container', 'nosuch');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/No such container: nosuch/);
    const http = await d.request('GET', '/containers/nosuch/json');
    expect(http.status).toBe(404);
    expect(http.json()).toEqual({ message: 'No such container: nosuch' });
  });

  it('lets exactly one of 10 racing creates of one name win', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => d.request('POST', '/containers/create?name=racer', { body: { Image: 'busybox', Cmd: ['true'] } })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(9);
    await ok('rm', 'racer');
  });

  it('answers invalid input with 400s, never 500s', async () => {
    const bad = [
      { Image: 'busybox', Cmd: ['true'], HostConfig: { NanoCpus: 1e12 } },
      { Image: 'busybox', Cmd: ['true'], HostConfig: { RestartPolicy: { Name: 'sometimes' } } },
      { Image: 'busybox', Cmd: ['true'], HostConfig: { Memory: 1024 } },
      { Image: 'busybox', Cmd: ['true'], HostConfig: { CapAdd: ['NOT_A_CAP'] } },
    ];
    for (const body of bad) {
      const r = await d.request('POST', '/containers/create', { body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.headers['content-type']).toBe('application/json');
    }
    const noImage = await d.request('POST', '/containers/create', { body: { Image: 'nosuchimage', Cmd: ['true'] } });
    expect(noImage.status).toBe(404);
    expect(noImage.json()).toEqual({ message: 'No such image: nosuchimage:latest' });
  });

  it('restarts on failure twice, then gives up', async () => {
    await ok('run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'exit 1');
    await waitFor(async () => (await ok('inspect', '-f', '{{.RestartCount}} {{.State.Status}}', 'flaky')).trim() === '2 exited', 20_000);
    await ok('rm', 'flaky');
  });

  it('restarts an always container after it exits', async () => {
    await ok('run', '-d', '--name', 'again', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.2; exit 3');
    await waitFor(async () => Number((await ok('inspect', '-f', '{{.RestartCount}}', 'again')).trim()) >= 2, 20_000);
    await ok('rm', '-f', 'again');
  });

  it('runs 12 containers in parallel and lists and removes 40', async () => {
    const runs = await Promise.all(Array.from({ length: 12 }, (_, i) => docker('run', '--rm', 'busybox', 'echo', `n${i}`)));
    runs.forEach((r, i) => expect(r.stdout).toBe(`n${i}\n`));
    const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => ok('create', '--name', `bulk${i}`, '--label', 'bulk=1', 'busybox', 'true')));
    expect(ids.every((id) => /^[0-9a-f]{64}\n$/.test(id))).toBe(true);
    const listed = (await ok('ps', '-aq', '--filter', 'label=bulk=1')).trim().split('\n');
    expect(listed).toHaveLength(40);
    await ok('rm', ...listed);
    expect(await ok('ps', '-aq', '--filter', 'label=bulk=1')).toBe('');
  });

  it('publishes events that --since/--until and --filter select', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await ok('run', '--rm', '--name', 'evt', 'busybox', 'true');
    const until = Math.floor(Date.now() / 1000) + 1;
    const out = await ok('events', '--since', String(since), '--until', String(until), '--filter', 'container=evt', '--format', '{{.Action}}');
    const actions = out.trim().split('\n');
    for (const a of ['create', 'attach', 'start', 'die', 'destroy']) expect(actions).toContain(a);
    const dies = await ok('events', '--since', String(since), '--until', String(until), '--filter', 'container=evt', '--filter', 'event=die', '--format', '{{.Actor.Attributes.exitCode}}');
    expect(dies.trim()).toBe('0');
  });

  it('docker ps, images, volume ls and network ls print tables', async () => {
    expect(await ok('ps')).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND/);
    expect(await ok('images')).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID/);
    expect(await ok('volume', 'ls')).toMatch(/^DRIVER\s+VOLUME NAME/);
    expect(await ok('network', 'ls')).toMatch(/^NETWORK ID\s+NAME\s+DRIVER/);
  });

  it('docker system prune removes stopped containers and unused networks, agreeing with system df', async () => {
    await ok('create', '--name', 'prunable', 'busybox', 'true');
    await ok('network', 'create', 'prunenet');
    const out = await ok('system', 'prune', '-f');
    expect(out).toContain('Deleted Containers:');
    expect(out).toContain('prunenet');
    expect(await ok('ps', '-aq', '--filter', 'name=prunable')).toBe('');
    expect(await ok('system', 'df', '--format', '{{.Type}} {{.TotalCount}}')).toContain('Containers 0');
  });

  it('counts containers in docker info', async () => {
    await ok('create', '--name', 'counted', 'busybox', 'true');
    const info = JSON.parse(await ok('info', '--format', '{{json .}}')) as { Containers: number; ContainersStopped: number };
    expect(info.Containers).toBeGreaterThanOrEqual(1);
    expect(info.ContainersStopped).toBeGreaterThanOrEqual(1);
    await ok('rm', 'counted');
    expect(existsSync(join(d.dataRoot, 'containers'))).toBe(true);
  });
});
