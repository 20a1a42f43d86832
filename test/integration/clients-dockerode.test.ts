import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { waitFor } from '../helpers/wait.js';

/**
 * dockerode 5 / docker-modem 5 against a real berthd: unversioned paths, options duplicated into the query string
 * and a JSON body, hijacked attach/exec with chunked stdin, multiplexed streams.
 */

const LABEL = 'berth.test.client=dockerode';

/** Reads a stream to its end. */
function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer | string) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('close', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

/** Demultiplexes a stdcopy stream with docker-modem's own demuxer; resolves at end of stream. */
async function demux(docker: Docker, stream: NodeJS.ReadableStream): Promise<{ stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const outText = collect(out);
  const errText = collect(err);
  docker.modem.demuxStream(stream, out, err);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
    stream.on('error', reject);
  });
  out.end();
  err.end();
  return { stdout: (await outText).toString('utf8'), stderr: (await errText).toString('utf8') };
}

/** A tar archive with the given files (name -> content). */
async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** name -> content of the regular files in a tar stream. */
async function untar(stream: NodeJS.ReadableStream): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const extract = tar.extract();
  stream.pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    if (entry.header.type === 'file') files.set(entry.header.name, Buffer.concat(chunks).toString('utf8'));
  }
  return files;
}

describe('dockerode 5 against berthd', () => {
  let d: TestDaemon;
  let docker: Docker;

  const create = (opts: Docker.ContainerCreateOptions): Promise<Docker.Container> =>
    docker.createContainer({ Image: 'busybox:latest', Labels: { 'berth.test.client': 'dockerode' }, ...opts });

  beforeAll(async () => {
    d = await startDaemon();
    const r = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(r.code, r.stderr).toBe(0);
    docker = new Docker({ socketPath: d.socket });
  });
  afterAll(async () => {
    if (docker) {
      for (const c of await docker.listContainers({ all: true }).catch(() => [])) {
        await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
      }
    }
    await d?.stop();
  });

  it('ping, version and info answer unversioned requests', async () => {
    expect((await docker.ping()).toString()).toBe('OK');
    const version = await docker.version();
    expect(version.ApiVersion).toBe('1.50');
    expect(version.Os).toBe('linux');
    const info = (await docker.info()) as { OSType: string; Images: number; NCPU: number };
    expect(info.OSType).toBe('linux');
    expect(info.Images).toBeGreaterThanOrEqual(1);
    expect(info.NCPU).toBeGreaterThan(0);
  });

  it('createContainer + start + wait + logs: exit code and demuxed stdout/stderr', async () => {
    const c = await create({ Cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    await c.start();
    const result = (await c.wait()) as { StatusCode: number };
    expect(result.StatusCode).toBe(3);
    const stream = (await c.logs({ stdout: true, stderr: true, follow: true })) as NodeJS.ReadableStream;
    expect(await demux(docker, stream)).toEqual({ stdout: 'out\n', stderr: 'err\n' });
    // Without follow docker-modem buffers the whole multiplexed body.
    const buffered = (await c.logs({ stdout: true, stderr: false, follow: false, tail: 10 })) as unknown as Buffer;
    expect(buffered.subarray(8).toString('utf8')).toBe('out\n');
    await c.remove();
  });

  it('docker.run attaches, starts, waits and returns the exit code', async () => {
    const out = new PassThrough();
    const text = collect(out);
    const [data, container] = (await docker.run('busybox:latest', ['sh', '-c', 'echo run-output; exit 4'], out, {
      Labels: { 'berth.test.client': 'dockerode' },
    })) as [{ StatusCode: number }, Docker.Container];
    out.end();
    expect(data.StatusCode).toBe(4);
    expect((await text).toString('utf8')).toContain('run-output');
    await container.remove();
  });

  it('attach with stdin (hijacked, chunked) feeds the container and streams its output back', async () => {
    const c = await create({
      Cmd: ['sh', '-c', 'while read l; do echo "got:$l"; done; echo done >&2'],
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = (await c.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
    const output = demux(docker, stream);
    await c.start();
    stream.write('one\n');
    stream.write('two\n');
    stream.end();
    expect(await output).toEqual({ stdout: 'got:one\ngot:two\n', stderr: 'done\n' });
    expect(((await c.wait()) as { StatusCode: number }).StatusCode).toBe(0);
    await c.remove();
  });

  it('exec: streamed output, inspect exit code, stdin through a hijacked exec, 126 for a missing binary, resize right after start', async () => {
    const c = await create({ Cmd: ['sleep', '1000'] });
    await c.start();

    const e1 = await c.exec({ Cmd: ['sh', '-c', 'echo exec-out; echo exec-err >&2; exit 5'], AttachStdout: true, AttachStderr: true });
    const s1 = await e1.start({ hijack: false, stdin: false });
    expect(await demux(docker, s1)).toEqual({ stdout: 'exec-out\n', stderr: 'exec-err\n' });
    await waitFor(async () => (await e1.inspect()).Running === false);
    const info1 = await e1.inspect();
    expect(info1.ExitCode).toBe(5);

    const e2 = await c.exec({ Cmd: ['cat'], AttachStdin: true, AttachStdout: true, AttachStderr: true });
    const s2 = await e2.start({ hijack: true, stdin: true });
    const out2 = demux(docker, s2);
    s2.end('piped through exec\n');
    expect((await out2).stdout).toBe('piped through exec\n');
    await waitFor(async () => (await e2.inspect()).Running === false);
    expect((await e2.inspect()).ExitCode).toBe(0);

    const e3 = await c.exec({ Cmd: ['/bin/bash', '-c', 'true'], AttachStdout: true, AttachStderr: true });
    const out3 = await demux(docker, await e3.start({}));
    await waitFor(async () => (await e3.inspect()).Running === false);
    expect((await e3.inspect()).ExitCode).toBe(126);
    expect(out3.stdout + out3.stderr).toMatch(/bash/);

    // A TTY exec resized right after its hijacked start (usually before the process runs) gets the size. The
    // process waits for it (up to 20 s) rather than a fixed 0.2 s, which a loaded machine can outlast.
    const e4 = await c.exec({
      Cmd: ['sh', '-c', 'i=0; while [ "$(stty size 2>/dev/null)" != "33 99" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; stty size'],
      AttachStdin: true,
      AttachStdout: true,
      Tty: true,
    });
    const s4 = await e4.start({ hijack: true, stdin: true, Tty: true });
    const out4 = collect(s4);
    await e4.resize({ h: 33, w: 99 });
    expect((await out4).toString('utf8')).toBe('33 99\r\n');

    await c.stop({ t: 0 });
    await c.remove();
  });

  it('listContainers with label and status filters, inspect, resize without a TTY, stop and remove', async () => {
    const a = await create({ name: 'dockerode-list-a', Cmd: ['sleep', '1000'], Labels: { 'berth.test.client': 'dockerode', role: 'a' } });
    const b = await create({ name: 'dockerode-list-b', Cmd: ['true'], Labels: { 'berth.test.client': 'dockerode', role: 'b' } });
    await a.start();

    const running = await docker.listContainers({ filters: { label: [LABEL, 'role=a'] } });
    expect(running.map((c) => c.Id)).toEqual([a.id]);
    expect(running[0]?.Names).toEqual(['/dockerode-list-a']);
    const all = await docker.listContainers({ all: true, filters: { label: [LABEL], status: ['created'] } });
    expect(all.map((c) => c.Id)).toEqual([b.id]);
    const sized = await docker.listContainers({ size: true, filters: { label: [LABEL, 'role=a'] } });
    expect(sized[0]?.SizeRootFs).toBeGreaterThan(0);
    const byName = await docker.listContainers({ all: true, filters: JSON.stringify({ name: ['dockerode-list-b'] }) });
    expect(byName.map((c) => c.Id)).toEqual([b.id]);

    const info = await a.inspect();
    expect(info.Name).toBe('/dockerode-list-a');
    expect(info.State.Running).toBe(true);
    expect(info.Config.Labels.role).toBe('a');
    // Resizing a container without a TTY is a no-op success, as with containerd.
    await a.resize({ h: 24, w: 80 });

    await a.stop({ t: 0 });
    expect((await a.inspect()).State.Running).toBe(false);
    await a.remove({ v: true });
    await b.remove({ force: true });
    await expect(a.inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(await docker.listContainers({ all: true, filters: { label: ['role'] } })).toEqual([]);
  });

  it('createContainer with 40 KB of labels and env (long docker-modem query string) succeeds', async () => {
    const Labels: Record<string, string> = { 'berth.test.client': 'dockerode' };
    const Env: string[] = [];
    for (let i = 0; i < 200; i++) {
      Labels[`label.number.${i}`] = 'x'.repeat(100);
      Env.push(`VAR_${i}=${'y'.repeat(100)}`);
    }
    const c = await docker.createContainer({ Image: 'busybox:latest', Cmd: ['true'], Labels, Env });
    const info = await c.inspect();
    expect(Object.keys(info.Config.Labels)).toHaveLength(201);
    expect(info.Config.Env).toContain(`VAR_199=${'y'.repeat(100)}`);
    await c.remove();
  });

  it('images: list and inspect busybox', async () => {
    const images = await docker.listImages();
    const bb = images.find((i) => i.RepoTags?.includes('busybox:latest'));
    expect(bb).toBeDefined();
    const filtered = await docker.listImages({ filters: { reference: ['busybox'] } });
    expect(filtered.map((i) => i.Id)).toEqual([bb?.Id]);
    const inspect = await docker.getImage('busybox:latest').inspect();
    expect(inspect.Id).toBe(bb?.Id);
    expect(inspect.Os).toBe('linux');
    await expect(docker.getImage('no-such-image:latest').inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('volumes: create, list with a label filter, inspect, remove', async () => {
    const v = await docker.createVolume({ Name: 'dockerode-vol', Labels: { 'berth.test.client': 'dockerode' } });
    expect((v as unknown as Docker.Volume).name).toBe('dockerode-vol');
    const list = await docker.listVolumes({ filters: { label: [LABEL] } });
    expect(list.Volumes.map((x) => x.Name)).toEqual(['dockerode-vol']);
    const info = (await docker.getVolume('dockerode-vol').inspect()) as unknown as { CreatedAt: string; Driver: string };
    expect(info.Driver).toBe('local');
    expect(Number.isNaN(Date.parse(info.CreatedAt))).toBe(false);
    await docker.getVolume('dockerode-vol').remove();
    expect((await docker.listVolumes({ filters: { label: [LABEL] } })).Volumes ?? []).toEqual([]);
  });

  it('networks: create, list, inspect, connect a container, remove; the default bridge reports its gateway', async () => {
    const bridge = await docker.getNetwork('bridge').inspect();
    expect(bridge.IPAM?.Config?.[0]?.Gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);

    const net = await docker.createNetwork({ Name: 'dockerode-net', Labels: { 'berth.test.client': 'dockerode' } });
    const listed = await docker.listNetworks({ filters: { label: [LABEL] } });
    expect(listed.map((n) => n.Name)).toEqual(['dockerode-net']);
    const c = await create({ Cmd: ['sleep', '1000'], HostConfig: { NetworkMode: 'dockerode-net' } });
    await c.start();
    const info = await net.inspect();
    expect(Object.keys(info.Containers ?? {})).toEqual([c.id]);
    await c.remove({ force: true });
    await net.remove();
    expect(await docker.listNetworks({ filters: { name: ['dockerode-net'] } })).toEqual([]);
  });

  it('getEvents streams container events as JSON lines', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const stream = await docker.getEvents({ since, filters: { type: ['container'], label: ['berth.test.events=1'] } });
    const seen: Array<{ Action: string; Actor: { ID: string } }> = [];
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) seen.push(JSON.parse(line) as { Action: string; Actor: { ID: string } });
      }
    });
    const c = await create({ Cmd: ['true'], Labels: { 'berth.test.events': '1' } });
    await c.start();
    await c.wait();
    await c.remove();
    await waitFor(() => seen.some((e) => e.Action === 'destroy'));
    (stream as unknown as { destroy(): void }).destroy();
    const actions = seen.filter((e) => e.Actor.ID === c.id).map((e) => e.Action);
    expect(actions).toEqual(expect.arrayContaining(['create', 'start', 'die', 'destroy']));
    expect(actions.indexOf('create')).toBeLessThan(actions.indexOf('destroy'));
  });

  it('an unknown endpoint answers 404 "page not found" even when a tar body comes with it', async () => {
    const r = await d.request('POST', '/no/such/endpoint?t=x', {
      rawBody: await tarOf({ Dockerfile: 'FROM busybox\n' }),
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(r.status).toBe(404);
    expect(r.json()).toEqual({ message: 'page not found' });
  });

  it('putArchive and getArchive copy files into and out of a container', async () => {
    const c = await create({ Cmd: ['sleep', '1000'] });
    await c.start();
    await c.putArchive(await tarOf({ 'hello.txt': 'hello from dockerode\n', 'sub/inner.txt': 'inner\n' }), { path: '/tmp' });
    const exec = await c.exec({ Cmd: ['cat', '/tmp/hello.txt', '/tmp/sub/inner.txt'], AttachStdout: true, AttachStderr: true });
    expect((await demux(docker, await exec.start({}))).stdout).toBe('hello from dockerode\ninner\n');

    const files = await untar(await c.getArchive({ path: '/tmp/sub' }));
    expect(files.get('sub/inner.txt')).toBe('inner\n');
    const passwd = await untar(await c.getArchive({ path: '/etc/passwd' }));
    expect(passwd.get('passwd')).toMatch(/^root:x:0:0:/);
    await expect(c.getArchive({ path: '/no/such/path' })).rejects.toMatchObject({ statusCode: 404 });
    await c.remove({ force: true });
  });
});
