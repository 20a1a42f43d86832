import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { layerTar } from '../helpers/image-builder.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { waitFor } from '../helpers/wait.js';

let d: TestDaemon;
let work: string;
const classic = { DOCKER_BUILDKIT: '0' };

beforeAll(async () => {
  d = await startDaemon();
  work = mkdtempSync(join(tmpdir(), 'berth-build-'));
  const r = await d.docker(['load', '-i', await busyboxImageTar()]);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(async () => {
  await d?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A context directory with the given files (paths → contents). */
function context(name: string, files: Record<string, string>): string {
  const dir = join(work, name);
  rmSync(dir, { recursive: true, force: true });
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
  return dir;
}

async function build(args: string[], dir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return d.docker(['build', ...args, dir], { env: classic, timeoutMs: 120_000 });
}

async function ok(args: string[], dir: string): Promise<string> {
  const r = await build(args, dir);
  if (r.code !== 0) throw new Error(`docker build failed (${r.code}): ${r.stdout}\n${r.stderr}\n${d.logs().slice(-3000)}`);
  return r.stdout;
}

function inspect(name: string): Record<string, any> {
  return JSON.parse(execFileSync('docker', ['image', 'inspect', name], { env: d.env, encoding: 'utf8' }))[0];
}

function history(name: string): { CreatedBy: string; Size: number }[] {
  return execFileSync('docker', ['history', '--no-trunc', '--format', '{{json .}}', name], { env: d.env, encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .map((h: { CreatedBy: string; Size: string }) => ({ CreatedBy: h.CreatedBy, Size: h.Size === '0B' ? 0 : 1 }));
}

async function run(image: string, cmd: string): Promise<string> {
  const r = await d.docker(['run', '--rm', image, 'sh', '-c', cmd]);
  if (r.code !== 0) throw new Error(`docker run failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function containerIds(): Promise<string[]> {
  const r = await d.docker(['ps', '-aq']);
  return r.stdout.split('\n').filter((l) => l !== '');
}

describe('docker build (classic builder)', () => {
  it('builds a multi-stage Dockerfile with ARG/ENV substitution, COPY --from and .dockerignore exceptions', async () => {
    const dir = context('multi', {
      Dockerfile: [
        'ARG BASE=busybox',
        'FROM ${BASE} AS build',
        'ARG GREETING=hello',
        'ENV OUT=/out NAME="berth builder"',
        'WORKDIR ${OUT}',
        'COPY src/ ./src/',
        'RUN echo "$GREETING ${NAME:-none} ${MISSING:-dflt} ${NAME:+set}" > msg && ls src | sort > list',
        'FROM busybox',
        'COPY --from=build /out/msg /out/list /result/',
        'COPY --from=0 /out/src/keep.log /result/kept.log',
        'CMD ["cat", "/result/msg"]',
        '',
      ].join('\n'),
      '.dockerignore': '**/*.log\n!src/keep.log\nsecret\n',
      'src/a.txt': 'a',
      'src/b.log': 'ignored',
      'src/keep.log': 'kept',
      secret: 'nope',
    });
    const out = await ok(['-t', 'multi:1', '--build-arg', 'GREETING=hi'], dir);
    expect(out).toMatch(/^Step 1\/11 : ARG BASE=busybox$/m);
    expect(out).toMatch(/^Step 2\/11 : FROM \$\{BASE\} AS build$/m);
    expect(out).toMatch(/^Successfully built [0-9a-f]{12}$/m);
    expect(out).toMatch(/^Successfully tagged multi:1$/m);
    expect(await run('multi:1', 'cat /result/msg; cat /result/list; cat /result/kept.log; ls /result')).toBe(
      'hi berth builder dflt set\na.txt\nkeep.log\nkeptkept.log\nlist\nmsg\n',
    );
    const img = inspect('multi:1');
    expect(img.Config.Cmd).toEqual(['cat', '/result/msg']);
    expect(img.Config.Env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    // busybox + two COPY layers
    expect(img.RootFS.Layers).toHaveLength(3);
    const h = history('multi:1');
    expect(h[0]?.CreatedBy).toBe('/bin/sh -c #(nop)  CMD ["cat" "/result/msg"]');
    expect(h[1]?.CreatedBy).toMatch(/^\/bin\/sh -c #\(nop\) COPY file:[0-9a-f]{64} in \/result\/kept.log $/);
    expect(h[2]?.CreatedBy).toMatch(/^\/bin\/sh -c #\(nop\) COPY multi:[0-9a-f]{64} in \/result\/ $/);

    // --target stops at the named stage
    await ok(['-t', 'multi:build', '--target', 'build'], dir);
    const b = inspect('multi:build');
    expect(b.Config.WorkingDir).toBe('/out');
    expect(b.Config.Env).toContain('NAME=berth builder');
    expect(history('multi:build')[0]?.CreatedBy).toMatch(/^\|1 GREETING=hello \/bin\/sh -c echo /);
    expect(await run('multi:build', 'cat /out/msg')).toBe('hello berth builder dflt set\n');
  });

  it('records USER, WORKDIR, SHELL, HEALTHCHECK, EXPOSE, VOLUME, STOPSIGNAL, LABEL and ONBUILD as dockerd does', async () => {
    const dir = context('meta', {
      Dockerfile: [
        'FROM busybox',
        'MAINTAINER someone@example.com',
        'LABEL a=1 "b c"="d e"',
        'EXPOSE 80 53/udp',
        'STOPSIGNAL SIGQUIT',
        'SHELL ["/bin/sh", "-ec"]',
        'RUN echo shell-form',
        'VOLUME ["/data"]',
        'HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD true',
        'WORKDIR /srv',
        'WORKDIR app',
        'USER nobody',
        'ENTRYPOINT ["sh", "-c"]',
        'ONBUILD RUN echo triggered > /tmp/trigger',
        '',
      ].join('\n'),
    });
    await ok(['-t', 'meta:1', '--label', 'from.cli=yes'], dir);
    const c = inspect('meta:1').Config;
    expect(c.User).toBe('nobody');
    expect(c.WorkingDir).toBe('/srv/app');
    expect(c.Shell).toEqual(['/bin/sh', '-ec']);
    expect(c.Healthcheck).toEqual({ Test: ['CMD-SHELL', 'true'], Interval: 5e9, Timeout: 2e9, Retries: 3 });
    expect(c.ExposedPorts).toEqual({ '80/tcp': {}, '53/udp': {} });
    expect(c.Volumes).toEqual({ '/data': {} });
    expect(c.StopSignal).toBe('SIGQUIT');
    expect(c.Labels).toEqual({ a: '1', 'b c': 'd e', 'from.cli': 'yes' });
    expect(c.Entrypoint).toEqual(['sh', '-c']);
    expect(c.Cmd).toBeNull();
    expect(c.OnBuild).toEqual(['RUN echo triggered > /tmp/trigger']);
    expect(inspect('meta:1').Author).toBe('someone@example.com');
    const h = history('meta:1').map((e) => e.CreatedBy);
    expect(h).toContain('/bin/sh -ec echo shell-form');
    expect(h).toContain('/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]');
    expect(h).toContain('/bin/sh -ec #(nop) WORKDIR /srv/app');
    expect(h).toContain('/bin/sh -ec #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "2s" "0s" \'\\x03\'}');
    expect(h).toContain('/bin/sh -c #(nop)  EXPOSE 53/udp 80');
    // busybox + WORKDIR /srv + WORKDIR app (RUN wrote nothing: no layer)
    expect(inspect('meta:1').RootFS.Layers).toHaveLength(3);

    const child = context('child', { Dockerfile: 'FROM meta:1\nUSER root\n' });
    const out = await ok(['-t', 'child:1'], child);
    expect(out).toContain('# Executing 1 build trigger\n');
    expect(inspect('child:1').Config.OnBuild).toBeNull();
    const r = await d.docker(['run', '--rm', '--entrypoint', 'cat', 'child:1', '/tmp/trigger']);
    expect(r.stdout).toBe('triggered\n');
  });

  it('uses the cache for every unchanged step, rebuilds from a changed COPY source on, and keeps it across a restart', async () => {
    const dir = context('cache', {
      Dockerfile: 'FROM busybox\nENV X=1\nCOPY one.txt /one.txt\nRUN cat /one.txt > /copy\nCOPY two.txt /two.txt\nRUN cat /two.txt >> /copy\n',
      'one.txt': 'one\n',
      'two.txt': 'two\n',
    });
    const first = await ok(['-t', 'cache:1'], dir);
    expect(first).not.toContain('Using cache');
    const id1 = inspect('cache:1').Id;
    const second = await ok(['-t', 'cache:1'], dir);
    expect(second.match(/ ---> Using cache/g)).toHaveLength(5);
    expect(second).not.toContain('Running in');
    expect(inspect('cache:1').Id).toBe(id1);

    writeFileSync(join(dir, 'two.txt'), 'TWO\n');
    const third = await ok(['-t', 'cache:1'], dir);
    expect(third.match(/ ---> Using cache/g)).toHaveLength(3);
    expect(third).toMatch(/Step 5\/6 : COPY two.txt \/two.txt\n ---> [0-9a-f]{12}\n/);
    expect(await run('cache:1', 'cat /copy')).toBe('one\nTWO\n');

    await d.signal('SIGTERM');
    await d.launch();
    const fourth = await ok(['-t', 'cache:1'], dir);
    expect(fourth.match(/ ---> Using cache/g)).toHaveLength(5);
    const nocache = await ok(['--no-cache', '-t', 'cache:2'], dir);
    expect(nocache).not.toContain('Using cache');
    // --cache-from limits the cache to that image's history
    const from = await ok(['--cache-from', 'cache:1', '-t', 'cache:3'], dir);
    expect(from.match(/ ---> Using cache/g)).toHaveLength(5);
    expect(inspect('cache:3').Id).toBe(inspect('cache:1').Id);
  });

  it('reports a failing RUN with its output and exit code, tags nothing and leaves no container', async () => {
    const before = await containerIds();
    const dir = context('fail', { Dockerfile: 'FROM busybox\nRUN echo visible-output && exit 3\n' });
    const r = await build(['-t', 'fail:1'], dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('Step 2/2 : RUN echo visible-output && exit 3\n');
    expect(r.stdout).toContain('visible-output\n');
    expect(r.stderr).toContain("The command '/bin/sh -c echo visible-output && exit 3' returned a non-zero code: 3");
    expect((await d.docker(['image', 'inspect', 'fail:1'])).code).not.toBe(0);
    expect(await containerIds()).toEqual(before);

    // --rm=false keeps the step containers, as dockerd does
    const kept = context('keep', { Dockerfile: 'FROM busybox\nRUN echo kept > /k\n' });
    const out = await ok(['--rm=false', '--no-cache'], kept);
    expect(out).not.toContain('Removing intermediate container');
    const cid = /Running in ([0-9a-f]{12})/.exec(out)?.[1] as string;
    expect(await containerIds()).toContain(cid);
    await d.docker(['rm', '-f', cid]);
  });

  it('gives dockerd\'s errors for unknown instructions, a missing FROM and BuildKit-only syntax', async () => {
    const unknown = await build([], context('e1', { Dockerfile: 'FROM busybox\nFROBNICATE x\n' }));
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('dockerfile parse error on line 2: unknown instruction: FROBNICATE');
    const nofrom = await build([], context('e2', { Dockerfile: 'RUN true\n' }));
    expect(nofrom.stderr).toContain('no build stage in current context');
    const mount = await build([], context('e3', { Dockerfile: 'FROM busybox\nRUN --mount=type=cache,target=/c true\n' }));
    expect(mount.stderr).toContain('the --mount option requires BuildKit');
    const chmod = await build([], context('e4', { Dockerfile: 'FROM busybox\nCOPY --chmod=755 a /a\n', a: 'x' }));
    expect(chmod.stderr).toContain('the --chmod option requires BuildKit');
    const outside = await build([], context('e5', { Dockerfile: 'FROM busybox\nCOPY ../x /x\n' }));
    expect(outside.stderr).toContain('COPY failed: forbidden path outside the build context: ../x ()');
    const session = await d.request('POST', '/session');
    expect(session.status).toBe(501);
    expect(session.json<{ message: string }>().message).toContain('BuildKit is not supported');
  });

  it('supports -q, --iidfile, ADD of a local tar and a URL, and keeps context symlinks as links', async () => {
    const tar = gzipSync(await layerTar([{ path: 'pkg', type: 'directory' }, { path: 'pkg/inside.txt', type: 'file', content: 'from tar' }]));
    const dir = context('add', {
      Dockerfile: 'FROM busybox\nADD archive.tar.gz /opt/\nADD http://127.0.0.1:PORT/remote.txt /dl/\nCOPY links /links\nCOPY alias /alias\nADD note.gz /notes/\n',
      'links/real.txt': 'real',
      'real.txt': 'top',
    });
    writeFileSync(join(dir, 'archive.tar.gz'), tar);
    // compressed but not a tar: ADD copies it as it is
    writeFileSync(join(dir, 'note.gz'), gzipSync('just text'));
    // a link inside a copied directory stays a link; a link named as the source resolves inside the context
    symlinkSync('/etc/passwd', join(dir, 'links/link'));
    symlinkSync('/real.txt', join(dir, 'alias'));
    const server: Server = createServer((req, res) => {
      res.setHeader('Last-Modified', 'Wed, 21 Oct 2015 07:28:00 GMT');
      res.end(req.url === '/remote.txt' ? 'remote body' : '');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      writeFileSync(join(dir, 'Dockerfile'), readFileSync(join(dir, 'Dockerfile'), 'utf8').replace('PORT', String(port)));
      const iid = join(work, 'iid');
      const out = await ok(['-q', '--iidfile', iid, '-t', 'add:1'], dir);
      expect(out.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(readFileSync(iid, 'utf8').trim()).toBe(out.trim());
      expect(await run('add:1', 'cat /opt/pkg/inside.txt; echo; cat /dl/remote.txt; echo; stat -c "%a %Y" /dl/remote.txt; readlink /links/link; cat /alias; echo; zcat /notes/note.gz')).toBe(
        'from tar\nremote body\n600 1445412480\n/etc/passwd\ntop\njust text',
      );
    } finally {
      server.close();
    }
  });

  it('reads a Dockerfile from outside the context (-f) and from stdin (-f -)', async () => {
    const dir = context('outside', { 'f.txt': 'in-context\n' });
    const df = join(work, 'Outside.Dockerfile');
    writeFileSync(df, 'FROM busybox\nCOPY f.txt /f.txt\n');
    await ok(['-f', df, '-t', 'outside:1'], dir);
    expect(await run('outside:1', 'cat /f.txt')).toBe('in-context\n');
    const r = await d.docker(['build', '-f', '-', '-t', 'outside:2', dir], { env: classic, input: 'FROM busybox\nCOPY f.txt /g.txt\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(await run('outside:2', 'cat /g.txt')).toBe('in-context\n');
  });

  it('builds independent stages at once, the output staying in dockerd\'s step order', async () => {
    // stage a waits for a connection that only stage b makes: the build finishes only if both RUNs overlap.
    // a's nc hands the accepted socket to `cat` (-e): a plain `nc -l > /got` with RUN's /dev/null stdin can end on
    // that stdin's EOF before b's line arrives (busybox nc, reproduced outside Berth ~1 run in 5)
    const port = 20000 + Math.floor(Math.random() * 20000);
    const dir = context('concurrent', {
      Dockerfile: [
        'FROM busybox AS a',
        `RUN timeout 60 nc -l -p ${port} -e sh -c 'cat > /got' && echo a-done`,
        'FROM busybox AS b',
        `RUN for i in $(seq 1 300); do echo from-b | nc 127.0.0.1 ${port} && break; sleep 0.1; done; echo b-done`,
        'FROM busybox',
        'COPY --from=a /got /got',
        '',
      ].join('\n'),
    });
    const out = await ok(['--network', 'host', '-t', 'concurrent:1'], dir);
    expect(await run('concurrent:1', 'cat /got')).toBe('from-b\n');
    const order = ['Step 1/6 : FROM busybox AS a', 'a-done', 'Step 3/6 : FROM busybox AS b', 'b-done', 'Step 5/6 : FROM busybox', 'Step 6/6 : COPY --from=a /got /got'];
    const positions = order.map((l) => out.indexOf(l));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((x, y) => x - y)).toEqual(positions);

    // a failing stage ends the build with its error; later stages' output is not shown
    const bad = context('concurrent-bad', {
      Dockerfile: 'FROM busybox AS a\nRUN echo first-ok\nFROM busybox AS b\nRUN exit 5\nFROM busybox AS c\nRUN echo never-shown\n',
    });
    const r = await build([], bad);
    expect(r.code).toBe(5);
    expect(r.stdout).toContain('first-ok');
    expect(r.stdout).not.toContain('never-shown');
    expect(r.stdout).not.toContain('Step 5/6');
  });

  it('runs RUN with the build\'s --add-host, --network, --build-arg proxy args and labels; warns on # syntax=', async () => {
    const dir = context('hostcfg', {
      Dockerfile: [
        '# syntax=docker/dockerfile:1',
        'FROM busybox',
        'RUN grep -q "10.1.2.3[[:space:]]*build-host" /etc/hosts && echo host-ok',
        'RUN echo "proxy=$HTTP_PROXY" && ls /sys/class/net | sort | tr "\\n" " " && echo',
        '',
      ].join('\n'),
    });
    const out = await ok(['--add-host', 'build-host:10.1.2.3', '--network', 'none', '--build-arg', 'HTTP_PROXY=http://proxy.invalid:3128', '--no-cache', '-t', 'hostcfg:1'], dir);
    expect(out).toContain('[WARNING]: the syntax parser directive (docker/dockerfile:1) needs BuildKit');
    expect(out).toContain('host-ok\n');
    expect(out).toContain('proxy=http://proxy.invalid:3128\n');
    expect(out).toContain('lo \n');
    // an undeclared proxy arg stays out of the history and the cache key: dockerd's "|0" prefix
    expect(history('hostcfg:1')[0]?.CreatedBy).toMatch(/^\|0 \/bin\/sh -c echo "proxy=/);
  });

  it('prunes the build cache and accounts for it in docker system df', async () => {
    const dir = context('prune', { Dockerfile: 'FROM busybox\nRUN echo data > /f\n' });
    await ok([], dir);
    const df = JSON.parse((await d.docker(['system', 'df', '--format', '{{json .}}'])).stdout.trim().split('\n').pop() ?? '{}');
    expect(df.Type).toBe('Build Cache');
    expect(Number(df.TotalCount)).toBeGreaterThan(0);
    const recent = await d.request('POST', `/build/prune?filters=${encodeURIComponent(JSON.stringify({ until: ['24h'] }))}`);
    expect(recent.json<{ CachesDeleted: string[] }>().CachesDeleted).toEqual([]);
    const r = await d.request('POST', '/build/prune?all=1');
    expect(r.status).toBe(200);
    const body = r.json<{ CachesDeleted: string[]; SpaceReclaimed: number }>();
    expect(body.CachesDeleted.length).toBeGreaterThan(0);
    const again = await ok([], dir);
    expect(again).not.toContain('Using cache');
  });

  it('runs RUN under the build\'s --memory, --cpu-shares and --shm-size', async () => {
    const dir = context('limits', {
      Dockerfile: [
        'FROM busybox',
        // cgroup v1 (memory.limit_in_bytes, cpu.shares) or v2 (memory.max, cpu.weight), whichever the host has
        'RUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null > /mem; cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu,cpuacct/cpu.shares /sys/fs/cgroup/cpu.weight 2>/dev/null | head -n1 > /cpu; grep " /dev/shm " /proc/mounts > /shm',
        '',
      ].join('\n'),
    });
    await ok(['-t', 'limits:1', '--memory', '64m', '--cpu-shares', '512', '--shm-size', '32m'], dir);
    const out = (f: string): string => execFileSync('docker', ['run', '--rm', 'limits:1', 'cat', f], { env: d.env, encoding: 'utf8' }).trim();
    expect(out('/mem')).toBe(String(64 * 1024 * 1024));
    // cpu.weight is cpu.shares mapped as runc does: 1 + (512 - 2) * 9999 / 262142
    expect(['512', '20']).toContain(out('/cpu'));
    expect(out('/shm')).toMatch(/size=32768k/);
  });

  it('kills and removes the RUN container when the client disconnects, and tags nothing', async () => {
    const dir = context('cancel', { Dockerfile: 'FROM busybox\nRUN sleep 300\n' });
    const before = execFileSync('docker', ['ps', '-aq', '--no-trunc'], { env: d.env, encoding: 'utf8' }).trim();
    const cli = spawn('docker', ['build', '-t', 'cancelled:1', dir], { env: { ...d.env, ...classic }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    cli.stdout.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise((r) => cli.once('exit', r));
    try {
      // the RUN container exists and runs the step
      const running = (): string[] =>
        execFileSync('docker', ['ps', '-q', '--no-trunc'], { env: d.env, encoding: 'utf8' })
          .trim()
          .split('\n')
          .filter((id) => id !== '' && !before.includes(id));
      await waitFor(() => output.includes('Running in') && running().length > 0, 60_000);
      expect(output).toContain('sleep 300');
    } finally {
      cli.kill('SIGKILL');
      await exited;
    }
    await waitFor(() => execFileSync('docker', ['ps', '-aq', '--no-trunc'], { env: d.env, encoding: 'utf8' }).trim() === before, 30_000);
    const tagged = execFileSync('docker', ['images', '-q', 'cancelled'], { env: d.env, encoding: 'utf8' }).trim();
    expect(tagged).toBe('');
  });
});
