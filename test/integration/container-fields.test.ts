import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';

/**
 * Container fields are honoured (checked by their effect inside the container or on the host) or refused with
 * dockerd's status and message: never accepted and dropped (docs/container-fields.md).
 */
const PTY_RUN = fileURLToPath(new URL('../fixtures/clients/pty_run.py', import.meta.url));

describe('container fields: honoured or refused', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    if (load.code !== 0) throw new Error(load.stderr);
  });
  afterAll(async () => {
    await d?.stop();
  });

  async function create(hostConfig: Record<string, unknown>, query = ''): Promise<{ status: number; body: { message?: string; Id?: string } }> {
    const r = await d.request('POST', `/containers/create${query}`, { body: { Image: 'busybox', Cmd: ['true'], HostConfig: hostConfig } });
    const body = r.json<{ message?: string; Id?: string }>();
    if (body.Id) await d.docker(['rm', body.Id]);
    return { status: r.status, body };
  }

  it('refuses --gpus (no device driver) and --storage-opt (no quota support) with dockerd\'s messages', async () => {
    const gpus = await d.docker(['run', '--rm', '--gpus', 'all', 'busybox', 'true']);
    expect(gpus.code).not.toBe(0);
    expect(gpus.stderr).toContain('could not select device driver "" with capabilities: [[gpu]]');
    const api = await create({ DeviceRequests: [{ Driver: 'nvidia', Count: 1, Capabilities: [['gpu', 'compute']] }] });
    expect(api).toEqual({ status: 400, body: { message: 'could not select device driver "nvidia" with capabilities: [[gpu compute]]' } });
    const storage = await d.docker(['run', '--rm', '--storage-opt', 'size=1G', 'busybox', 'true']);
    expect(storage.stderr).toContain("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
    expect((await d.docker(['ps', '-aq'])).stdout).toBe('');
  });

  it('refuses unknown PID, IPC, UTS and cgroup namespace modes', async () => {
    expect(await create({ PidMode: 'bogus' })).toEqual({ status: 400, body: { message: 'invalid PID mode: bogus' } });
    expect(await create({ IpcMode: 'bogus' })).toEqual({ status: 400, body: { message: 'invalid IPC mode: bogus' } });
    expect(await create({ UTSMode: 'bogus' })).toEqual({ status: 400, body: { message: 'invalid UTS mode: bogus' } });
    // dockerd has no container: UTS mode (only CRI pods join their sandbox's UTS namespace, inside Berth)
    expect(await create({ UTSMode: 'container:abc' })).toEqual({ status: 400, body: { message: 'invalid UTS mode: container:abc' } });
    expect(await create({ CgroupnsMode: 'shared' })).toEqual({ status: 400, body: { message: 'invalid cgroup namespace mode: shared' } });
    expect((await create({ IpcMode: 'shareable', PidMode: 'host', UTSMode: 'host' })).status).toBe(201);
    expect(await create({ Isolation: 'hyperv' })).toEqual({ status: 400, body: { message: 'Invalid isolation: "hyperv" - linux only supports \'default\'' } });
    expect(await create({ UsernsMode: 'private' })).toEqual({ status: 400, body: { message: 'invalid USER mode: private' } });
    expect((await create({ Cgroup: 'container:x' })).status).toBe(400);
    expect((await create({ Isolation: 'default', UsernsMode: 'host' })).status).toBe(201);
  });

  it('honours Config.NetworkDisabled (no interface but lo) and passes HostConfig.Annotations to the runtime spec', async () => {
    const c = await d.request('POST', '/containers/create', {
      body: { Image: 'busybox', Cmd: ['sleep', '300'], NetworkDisabled: true, HostConfig: { Annotations: { 'org.example.note': 'hello' } } },
    });
    const id = c.json<{ Id: string }>().Id;
    try {
      await d.docker(['start', id]);
      const links = await d.docker(['exec', id, 'ls', '/sys/class/net']);
      expect(links.stdout.trim().split(/\s+/)).toEqual(['lo']);
      const spec = JSON.parse(readFileSync(join(d.dataRoot, 'containers', id, 'config.json'), 'utf8')) as { annotations?: Record<string, string> };
      expect(spec.annotations).toEqual({ 'org.example.note': 'hello' });
    } finally {
      await d.docker(['rm', '-f', id]);
    }
  });

  it('gives a private cgroup namespace or the host\'s, as CgroupnsMode asks, on this host\'s cgroup version', async () => {
    const priv = await d.docker(['run', '--rm', '--cgroupns', 'private', 'busybox', 'cat', '/proc/self/cgroup']);
    const lines = priv.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/:\/$/);
    const host = await d.docker(['run', '--name', 'fields-cgns-host', '--cgroupns', 'host', 'busybox', 'cat', '/proc/self/cgroup']);
    try {
      const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'fields-cgns-host'])).stdout.trim();
      expect(host.stdout).toContain(`/${id}`);
      expect((await d.docker(['inspect', '-f', '{{.HostConfig.CgroupnsMode}}', 'fields-cgns-host'])).stdout.trim()).toBe('host');
    } finally {
      await d.docker(['rm', 'fields-cgns-host']);
    }
  });

  it('places the container under --cgroup-parent (cgroupfs path) on the host', async () => {
    const parent = `berth-test-parent-${process.pid}`;
    const r = await d.docker(['run', '-d', '--cgroup-parent', `/${parent}`, '--cgroupns', 'host', 'busybox', 'sleep', '300']);
    const id = r.stdout.trim();
    try {
      expect(r.code).toBe(0);
      const inside = await d.docker(['exec', id, 'cat', '/proc/self/cgroup']);
      expect(inside.stdout).toContain(`/${parent}/${id}`);
      // the host's view: the container's cgroup directory sits under the parent
      const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
      const dir = v2 ? join('/sys/fs/cgroup', parent, id) : join('/sys/fs/cgroup/memory', parent, id);
      expect(existsSync(dir)).toBe(true);
    } finally {
      await d.docker(['rm', '-f', id]);
      // dockerd leaves the parent cgroup too: the test removes what it made
      const roots = existsSync('/sys/fs/cgroup/cgroup.controllers') ? ['/sys/fs/cgroup'] : readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
      for (const root of roots) {
        const p = join(root, parent);
        if (existsSync(p)) rmdirSync(p);
      }
    }
  });

  it('refuses an image built for another platform on create?platform=, as dockerd (the CLI then pulls)', async () => {
    const arch = process.arch === 'arm64' ? 'amd64' : 'arm64';
    const r = await create({}, `?platform=linux/${arch}`);
    expect(r.status).toBe(404);
    expect(r.body.message).toMatch(new RegExp(`^image with reference busybox was found but does not match the specified platform: wanted linux/${arch}, actual: linux/(amd64|arm64)$`));
    expect((await create({}, `?platform=linux/${process.arch === 'arm64' ? 'arm64' : 'amd64'}`)).status).toBe(201);
  });

  it('takes Go durations in every until filter: docker system prune --filter until=24h', async () => {
    const r = await d.docker(['run', '-d', '--name', 'fields-recent', 'busybox', 'true']);
    expect(r.code).toBe(0);
    await d.docker(['wait', 'fields-recent']);
    await d.docker(['network', 'create', 'fields-recent-net']);
    try {
      const prune = await d.docker(['system', 'prune', '-f', '--filter', 'until=24h']);
      expect(prune.stderr).toBe('');
      expect(prune.code).toBe(0);
      for (const cmd of [['container', 'prune'], ['image', 'prune'], ['network', 'prune']]) {
        const one = await d.docker([...cmd, '-f', '--filter', 'until=1h30m']);
        expect(one.stderr, cmd.join(' ')).toBe('');
      }
      // created just now: younger than 24h, so kept
      expect((await d.docker(['inspect', '-f', '{{.State.Status}}', 'fields-recent'])).stdout.trim()).toBe('exited');
      expect((await d.docker(['network', 'inspect', '-f', '{{.Name}}', 'fields-recent-net'])).stdout.trim()).toBe('fields-recent-net');
    } finally {
      await d.docker(['rm', '-f', 'fields-recent']);
      await d.docker(['network', 'rm', 'fields-recent-net']);
    }
  });

  it('makes read-only binds recursively read-only from API 1.44, with the non-recursive and force options', async () => {
    const host = mkdtempSync(join(tmpdir(), 'berth-rro-'));
    const sub = join(host, 'sub');
    mkdirSync(sub);
    const mounted = await runCommand('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', sub]);
    expect(mounted.code, mounted.stderr).toBe(0);
    try {
      const run = async (bindOptions: Record<string, unknown> | undefined, version = 'v1.50'): Promise<{ status: number; out: string }> => {
        const c = await d.request('POST', `/${version}/containers/create`, {
          body: {
            Image: 'busybox',
            Cmd: ['sh', '-c', 'touch /m/sub/x 2>&1 && echo wrote; touch /m/top 2>&1 || echo top-ro'],
            HostConfig: { Mounts: [{ Type: 'bind', Source: host, Target: '/m', ReadOnly: true, ...(bindOptions ? { BindOptions: bindOptions } : {}) }] },
          },
        });
        if (c.status !== 201) return { status: c.status, out: c.json<{ message: string }>().message };
        const id = c.json<{ Id: string }>().Id;
        await d.docker(['start', '-a', id]).catch(() => undefined);
        const logs = await d.docker(['logs', id]);
        await d.docker(['rm', '-f', id]);
        return { status: 201, out: logs.stdout + logs.stderr };
      };
      // default (1.44+): the submount is read-only too
      const def = await run(undefined);
      expect(def.out).toContain('Read-only file system');
      expect(def.out).toContain('top-ro');
      expect(def.out).not.toContain('wrote');
      expect((await run({ ReadOnlyForceRecursive: true })).out).not.toContain('wrote');
      // ReadOnlyNonRecursive, and any client before 1.44: only the top is read-only
      const nonrec = await run({ ReadOnlyNonRecursive: true });
      expect(nonrec.out).toContain('wrote');
      expect(nonrec.out).toContain('top-ro');
      expect((await run(undefined, 'v1.43')).out).toContain('wrote');
      // refusals, as dockerd
      expect(await run({ ReadOnlyForceRecursive: true }, 'v1.43')).toEqual({ status: 400, out: 'BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer' });
      const both = await run({ ReadOnlyForceRecursive: true, ReadOnlyNonRecursive: true });
      expect(both.status).toBe(400);
      expect(both.out).toContain('option ReadOnlyForceRecursive conflicts with ReadOnlyNonRecursive');
      // the CLI's -v :ro is recursive as well
      const cli = await d.docker(['run', '--rm', '-v', `${host}:/m:ro`, 'busybox', 'touch', '/m/sub/y']);
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toContain('Read-only file system');
    } finally {
      await runCommand('umount', [sub]);
      rmSync(host, { recursive: true, force: true });
    }
  });

  it('honours --security-opt systempaths=unconfined and writable-cgroups=true', async () => {
    const mounts = async (...opts: string[]): Promise<string> =>
      (await d.docker(['run', '--rm', ...opts.flatMap((o) => ['--security-opt', o]), 'busybox', 'cat', '/proc/self/mounts'])).stdout;
    const line = (text: string, dest: string): string | undefined => text.split('\n').find((l) => l.split(' ')[1] === dest);
    const def = await mounts();
    expect(line(def, '/proc/sys')).toBeDefined();
    expect(line(def, '/sys/fs/cgroup')?.split(' ')[3]?.split(',')).toContain('ro');
    const open = await mounts('systempaths=unconfined', 'writable-cgroups=true');
    expect(line(open, '/proc/sys')).toBeUndefined();
    expect(line(open, '/proc/kcore')).toBeUndefined();
    expect(line(open, '/sys/fs/cgroup')?.split(' ')[3]?.split(',')).toContain('rw');
    const bad = await d.docker(['run', '--rm', '--security-opt', 'systempaths=maybe', 'busybox', 'true']);
    expect(bad.stderr).toContain('invalid --security-opt 2: "systempaths=maybe"');
  });

  it('detaches from docker run -it with the default Ctrl-P Ctrl-Q and from docker attach with --detach-keys; the container runs on', async () => {
    const pty = async (keysHex: string, args: string[]): Promise<{ exit: number; output: string }> => {
      const r = await runCommand('python3', [PTY_RUN, 'READY', keysHex, '--', 'docker', ...args], { env: d.env });
      return JSON.parse(r.stdout) as { exit: number; output: string };
    };
    try {
      const run = await pty('1011', ['run', '-it', '--name', 'detachme', 'busybox', 'sh', '-c', 'while true; do echo READY; sleep 1; done']);
      expect(run.output).toContain('READY');
      // The CLI ends with "read escape sequence" (exit 1) when its own proxy saw the keys first, else 0 (dockerd alike).
      expect([0, 1]).toContain(run.exit);
      expect((await d.docker(['inspect', '--format', '{{.State.Running}}', 'detachme'])).stdout.trim()).toBe('true');
      // Re-attach with other keys (Ctrl-X x): the container keeps running after that detach too.
      const again = await pty('18' + '78', ['attach', '--detach-keys', 'ctrl-x,x', 'detachme']);
      expect(again.output).toContain('READY');
      expect([0, 1]).toContain(again.exit);
      expect((await d.docker(['inspect', '--format', '{{.State.Running}}', 'detachme'])).stdout.trim()).toBe('true');
      // docker exec -it detaches the same way; the exec's process runs on.
      const exec = await pty('1011', ['exec', '-it', 'detachme', 'sh', '-c', 'while true; do echo READY from exec; sleep 1; done']);
      expect(exec.output).toContain('READY from exec');
      expect([0, 1]).toContain(exec.exit);
      expect((await d.docker(['exec', 'detachme', 'ps'])).stdout).toContain('READY from exec');
    } finally {
      await d.docker(['rm', '-f', 'detachme']);
    }
  });
});
