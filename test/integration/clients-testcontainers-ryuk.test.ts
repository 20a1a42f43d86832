import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { buildRyukImage, reaperImageName, ryukUnavailable } from '../helpers/ryuk-image.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The testcontainers reaper (Ryuk 0.14, github.com/testcontainers/moby-ryuk) on Berth.
 *
 * The first part replays the exact Docker API calls Ryuk makes (its Go client at API 1.50) so CI checks them without
 * the reaper: list containers (all=1), networks, volumes and images with `filters={"label":{"key=value":true}}`, the
 * fields it reads from those answers (container/image `Created` in seconds, network `Created` and volume `CreatedAt`
 * as RFC 3339 that Go's time package parses), then removes with its options (containers `force=1&v=1`, volumes
 * `force=1`, images without `noprune`), where a second removal must be a 404 (Ryuk counts NotFound as done). It also
 * checks what testcontainers-node asks for the reaper container: the daemon socket bind-mounted at
 * /var/run/docker.sock, privileged mode, port 8080 published on an ephemeral host port, AutoRemove once it exits.
 *
 * The second part runs Ryuk itself when its binary is in the tool cache (the Go module proxy refuses the module, so
 * CI cannot build it and skips that part with the reason printed): a Node process starts a network, containers, a
 * labelled volume and a built image with testcontainers-node (and, in one case, a compose v2 environment) and exits;
 * Ryuk must remove all of it, then itself.
 */

const SESSION_LABEL = 'org.testcontainers.session-id';
const FIXTURE = fileURLToPath(new URL('../fixtures/clients/testcontainers-ryuk-session.mjs', import.meta.url));
const BUILD_COMPOSE = fileURLToPath(new URL('../../scripts/build-compose.sh', import.meta.url));
// Go's time.Parse(time.RFC3339, …) accepts these (fractional seconds optional); encoding/json's time.Time as well.
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

function labelFilter(kv: string): string {
  return encodeURIComponent(JSON.stringify({ label: { [kv]: true } }));
}

describe('the API calls the testcontainers reaper (Ryuk) makes', () => {
  let d: TestDaemon;
  const session = `s${process.pid}`;
  const other = `o${process.pid}`;

  beforeAll(async () => {
    d = await startDaemon();
    const r = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    if (!d) return;
    const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await d.docker(['rm', '-f', '-v', ...ids]);
    for (const s of [session, other]) {
      await d.docker(['network', 'rm', `net-${s}`]);
      await d.docker(['volume', 'rm', '-f', `vol-${s}`]);
      await d.docker(['rmi', '-f', `img-${s}:latest`]);
    }
    await d.stop();
  });

  it('lists by label=key=value, reads the fields Ryuk reads, and removes with its options', async () => {
    const ctx = mkdtempSync(join(tmpdir(), 'ryuk-api-'));
    try {
      writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox:latest\nVOLUME /anon\n');
      for (const s of [session, other]) {
        const label = `${SESSION_LABEL}=${s}`;
        let r = await d.docker(['network', 'create', '--label', label, `net-${s}`]);
        expect(r.code, r.stderr).toBe(0);
        r = await d.docker(['volume', 'create', '--label', label, `vol-${s}`]);
        expect(r.code, r.stderr).toBe(0);
        r = await d.docker(['build', '-q', '--label', label, '-t', `img-${s}:latest`, ctx], { env: { DOCKER_BUILDKIT: '0' } });
        expect(r.code, r.stderr).toBe(0);
        r = await d.docker(['run', '-d', '--label', label, '--name', `run-${s}`, '--network', `net-${s}`, `img-${s}:latest`, 'sleep', '1000']);
        expect(r.code, r.stderr).toBe(0);
        r = await d.docker(['create', '--label', label, '--name', `created-${s}`, 'busybox:latest', 'true']);
        expect(r.code, r.stderr).toBe(0);
      }
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
    const now = Math.floor(Date.now() / 1000);
    const f = labelFilter(`${SESSION_LABEL}=${session}`);

    const containers = (await d.request('GET', `/v1.50/containers/json?all=1&filters=${f}`)).json<
      Array<{ Id: string; Names: string[]; Created: number; Labels: Record<string, string>; State: string }>
    >();
    expect(containers.map((c) => c.Names[0]).sort()).toEqual([`/created-${session}`, `/run-${session}`]);
    for (const c of containers) {
      expect(Number.isInteger(c.Created)).toBe(true);
      expect(c.Created).toBeLessThanOrEqual(now);
      expect(c.Created).toBeGreaterThan(now - 600);
      expect(c.Labels[SESSION_LABEL]).toBe(session);
    }

    const networks = (await d.request('GET', `/v1.50/networks?filters=${f}`)).json<Array<{ Id: string; Name: string; Created: string }>>();
    expect(networks.map((n) => n.Name)).toEqual([`net-${session}`]);
    expect(networks[0]!.Created).toMatch(RFC3339);
    expect(Date.parse(networks[0]!.Created) / 1000).toBeLessThanOrEqual(now + 1);

    const volumes = (await d.request('GET', `/v1.50/volumes?filters=${f}`)).json<{ Volumes: Array<{ Name: string; CreatedAt: string }>; Warnings: unknown }>();
    expect(volumes.Volumes.map((v) => v.Name)).toEqual([`vol-${session}`]);
    expect(volumes.Volumes[0]!.CreatedAt).toMatch(RFC3339);

    const images = (await d.request('GET', `/v1.50/images/json?filters=${f}`)).json<Array<{ Id: string; RepoTags: string[]; Created: number }>>();
    expect(images.map((i) => i.RepoTags)).toEqual([[`img-${session}:latest`]]);
    expect(Number.isInteger(images[0]!.Created)).toBe(true);

    // Removal in Ryuk's order (containers, networks, volumes, images) with its options.
    const run = containers.find((c) => c.Names[0] === `/run-${session}`)!;
    const anon = (await d.request('GET', `/v1.50/containers/${run.Id}/json`)).json<{ Mounts: Array<{ Name: string }> }>().Mounts.map((m) => m.Name);
    expect(anon).toHaveLength(1);
    for (const c of containers) {
      expect((await d.request('DELETE', `/v1.50/containers/${c.Id}?force=1&v=1`)).status).toBe(204);
      expect((await d.request('DELETE', `/v1.50/containers/${c.Id}?force=1&v=1`)).status).toBe(404);
    }
    expect((await d.request('GET', `/v1.50/volumes/${anon[0]}`)).status).toBe(404);
    expect((await d.request('DELETE', `/v1.50/networks/${networks[0]!.Id}`)).status).toBe(204);
    expect((await d.request('DELETE', `/v1.50/networks/${networks[0]!.Id}`)).status).toBe(404);
    expect((await d.request('DELETE', `/v1.50/volumes/vol-${session}?force=1`)).status).toBe(204);
    // force=1 on a volume that is gone: dockerd answers 204 as well (ignores not-found when forced).
    expect([204, 404]).toContain((await d.request('DELETE', `/v1.50/volumes/vol-${session}?force=1`)).status);
    // Both sessions' images were built on the same cached VOLUME step: pruning the deleted image's parents stops
    // quietly at that shared parent (dockerd: it is not dangling, it has another child), no 409 after the delete.
    const rmi = await d.request('DELETE', `/v1.50/images/${images[0]!.Id}`);
    expect(rmi.status, rmi.text()).toBe(200);
    const report = rmi.json<Array<{ Untagged?: string; Deleted?: string }>>();
    expect(report).toContainEqual({ Untagged: `img-${session}:latest` });
    expect(report).toContainEqual({ Deleted: images[0]!.Id });
    expect((await d.request('DELETE', `/v1.50/images/${images[0]!.Id}`)).status).toBe(404);

    // The other session's resources are untouched.
    const left = (await d.request('GET', `/v1.50/containers/json?all=1&filters=${labelFilter(`${SESSION_LABEL}=${other}`)}`)).json<unknown[]>();
    expect(left).toHaveLength(2);
    expect((await d.request('GET', `/v1.50/networks/net-${other}`)).status).toBe(200);
    expect((await d.request('GET', `/v1.50/volumes/vol-${other}`)).status).toBe(200);
    expect((await d.request('GET', `/v1.50/images/img-${other}:latest/json`)).status).toBe(200);
  });

  it('older reapers (Ryuk 0.5, still in older testcontainers-java) prune networks, volumes (all=true, API 1.42+) and images (dangling=false) by the same label filter; containers/prune takes it too', async () => {
    const ctx = mkdtempSync(join(tmpdir(), 'ryuk-prune-'));
    const p = `p${process.pid}`;
    try {
      writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox:latest\nRUN echo pruned > /p\n');
      for (const s of [p, other]) {
        const label = `${SESSION_LABEL}=${s}`;
        for (const args of [
          ['create', '--label', label, '--name', `prune-${s}`, 'busybox:latest', 'true'],
          ['network', 'create', '--label', label, `pnet-${s}`],
          ['volume', 'create', '--label', label, `pvol-${s}`],
          ['build', '-q', '--label', label, '-t', `pimg-${s}:latest`, ctx],
        ]) {
          const r = await d.docker(args, { env: { DOCKER_BUILDKIT: '0' } });
          expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        }
      }
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
    const label = { label: { [`${SESSION_LABEL}=${p}`]: true } };
    const q = (f: object): string => encodeURIComponent(JSON.stringify(f));
    const cid = (await d.request('GET', `/v1.50/containers/prune-${p}/json`)).json<{ Id: string }>().Id;
    const containers = await d.request('POST', `/v1.50/containers/prune?filters=${q(label)}`);
    expect(containers.status).toBe(200);
    expect(containers.json()).toEqual({ ContainersDeleted: [cid], SpaceReclaimed: expect.any(Number) });
    const networks = await d.request('POST', `/v1.50/networks/prune?filters=${q(label)}`);
    expect(networks.json()).toEqual({ NetworksDeleted: [`pnet-${p}`] });
    const volumes = await d.request('POST', `/v1.50/volumes/prune?filters=${q({ ...label, all: { true: true } })}`);
    expect(volumes.json()).toEqual({ VolumesDeleted: [`pvol-${p}`], SpaceReclaimed: expect.any(Number) });
    const imageId = (await d.request('GET', `/v1.50/images/pimg-${p}:latest/json`)).json<{ Id: string }>().Id;
    const images = await d.request('POST', `/v1.50/images/prune?filters=${q({ ...label, dangling: { false: true } })}`);
    const report = images.json<{ ImagesDeleted: Array<{ Untagged?: string; Deleted?: string }>; SpaceReclaimed: number }>();
    expect(report.ImagesDeleted).toContainEqual({ Untagged: `pimg-${p}:latest` });
    expect(report.ImagesDeleted).toContainEqual({ Deleted: imageId });
    // The other session's are all still there.
    expect((await d.request('GET', `/v1.50/containers/prune-${other}/json`)).status).toBe(200);
    expect((await d.request('GET', `/v1.50/networks/pnet-${other}`)).status).toBe(200);
    expect((await d.request('GET', `/v1.50/volumes/pvol-${other}`)).status).toBe(200);
    expect((await d.request('GET', `/v1.50/images/pimg-${other}:latest/json`)).status).toBe(200);
    await d.docker(['rm', '-f', `prune-${other}`]);
    await d.docker(['network', 'rm', `pnet-${other}`]);
    await d.docker(['volume', 'rm', `pvol-${other}`]);
    await d.docker(['rmi', `pimg-${other}:latest`]);
  });

  it("the reaper container's configuration: daemon socket bind-mounted, privileged, 8080 published, AutoRemove", async () => {
    const create = await d.request('POST', '/v1.50/containers/create?name=reaper-like', { body: {
      Image: 'busybox:latest',
      Cmd: ['sh', '-c', 'test -S /var/run/docker.sock && echo socket-ok; grep -c CapEff /proc/self/status; exec sleep 1000'],
      ExposedPorts: { '8080/tcp': {} },
      Labels: { [SESSION_LABEL]: session, 'org.testcontainers.ryuk': 'true' },
      HostConfig: {
        AutoRemove: true,
        Privileged: true,
        Binds: [`${d.socket}:/var/run/docker.sock`],
        PortBindings: { '8080/tcp': [{ HostPort: '0' }] },
      },
    } });
    expect(create.status, create.text()).toBe(201);
    const id = create.json<{ Id: string }>().Id;
    expect((await d.request('POST', `/v1.50/containers/${id}/start`)).status).toBe(204);
    await waitFor(async () => (await d.docker(['logs', id])).stdout.includes('socket-ok'));
    const info = (await d.request('GET', `/v1.50/containers/${id}/json`)).json<{
      HostConfig: { Privileged: boolean; AutoRemove: boolean };
      NetworkSettings: { Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> };
    }>();
    expect(info.HostConfig).toMatchObject({ Privileged: true, AutoRemove: true });
    const bound = info.NetworkSettings.Ports['8080/tcp'];
    expect(Number(bound?.[0]?.HostPort)).toBeGreaterThan(0);
    // testcontainers finds a running reaper to reuse by listing containers and reading its Ports entry for 8080.
    const listed = (await d.request('GET', `/v1.50/containers/json?filters=${labelFilter('org.testcontainers.ryuk=true')}`)).json<
      Array<{ Id: string; State: string; Ports: Array<{ PrivatePort: number; PublicPort?: number }> }>
    >();
    expect(listed.map((c) => c.Id)).toEqual([id]);
    expect(listed[0]!.State).toBe('running');
    expect(listed[0]!.Ports.find((p) => p.PrivatePort === 8080)?.PublicPort).toBe(Number(bound?.[0]?.HostPort));
    // Ryuk exits after its prune; AutoRemove then removes it.
    expect((await d.request('POST', `/v1.50/containers/${id}/kill`)).status).toBe(204);
    await waitFor(async () => (await d.request('GET', `/v1.50/containers/${id}/json`)).status === 404);
  });
});

const unavailable = ryukUnavailable();
if (unavailable) console.log(`skipping the tests that run Ryuk: ${unavailable}`);

describe.skipIf(unavailable !== undefined)('testcontainers-node with its reaper (Ryuk) on berthd', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    d = await startDaemon();
    const r = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(r.code, r.stderr).toBe(0);
    await buildRyukImage(d);
  });
  afterAll(async () => {
    if (!d) return;
    const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await d.docker(['rm', '-f', '-v', ...ids]);
    await d.stop();
  });

  async function session(env: Record<string, string>): Promise<{
    sessionId: string;
    body: string;
    containers: string[];
    network: string;
    volumes: string[];
    image: string;
    compose?: string;
  }> {
    const child = spawn(process.execPath, [FIXTURE], {
      env: {
        ...d.env,
        TESTCONTAINERS_HOST_OVERRIDE: 'localhost',
        TESTCONTAINERS_RYUK_DISABLED: 'false',
        // Ryuk prunes this long after the last client disconnects (default 10 s).
        TESTCONTAINERS_RYUK_RECONNECTION_TIMEOUT: '1s',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, err).toBe(0);
    return JSON.parse(out.trim()) as Awaited<ReturnType<typeof session>>;
  }

  async function expectReaped(made: Awaited<ReturnType<typeof session>>): Promise<void> {
    const gone = async (path: string): Promise<boolean> => (await d.request('GET', path)).status === 404;
    await waitFor(async () => {
      for (const c of made.containers) if (!(await gone(`/containers/${c}/json`))) return false;
      if (!(await gone(`/networks/${made.network}`))) return false;
      for (const v of made.volumes) if (!(await gone(`/volumes/${v}`))) return false;
      if (!(await gone(`/images/${made.image}/json`))) return false;
      if (made.compose !== undefined) {
        // The compose project's container, volume and network, found by compose's project label.
        const project = labelFilter(`com.docker.compose.project=${made.compose}`);
        for (const kind of ['containers/json?all=1&', 'networks?', 'volumes?']) {
          const r = (await d.request('GET', `/${kind}filters=${project}`)).json<unknown[] | { Volumes: unknown[] }>();
          if ((Array.isArray(r) ? r : r.Volumes).length > 0) return false;
        }
      }
      // Ryuk exits after pruning and testcontainers starts it with AutoRemove.
      const reapers = (await d.request('GET', `/containers/json?all=1&filters=${labelFilter('org.testcontainers.ryuk=true')}`)).json<unknown[]>();
      return reapers.length === 0;
    }, 60_000, 200);
    // What is not the session's stays: the reaper image itself and busybox.
    expect((await d.request('GET', `/images/${reaperImageName()}/json`)).status).toBe(200);
    expect((await d.request('GET', '/images/busybox:latest/json')).status).toBe(200);
  }

  it('a session that exits leaves Ryuk to remove its containers, network, volumes and built image, then itself', async () => {
    const made = await session({});
    expect(made.body).toBe('reaped-later\n');
    expect(made.volumes).toHaveLength(2);
    await expectReaped(made);
  }, 120_000);

  it('the same with the reaper in privileged mode (TESTCONTAINERS_RYUK_PRIVILEGED)', async () => {
    const made = await session({ TESTCONTAINERS_RYUK_PRIVILEGED: 'true' });
    await expectReaped(made);
  }, 120_000);

  it('a compose environment of the session (docker compose v2) goes too: Ryuk gets its project label', async () => {
    const plugin = await runCommand('bash', [BUILD_COMPOSE, join(d.dir, 'docker-config')], { timeoutMs: 1_800_000 });
    expect(plugin.code, plugin.stderr).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'tc-ryuk-compose-'));
    try {
      writeFileSync(
        join(dir, 'compose.yml'),
        'services:\n  app:\n    image: busybox:latest\n    command: ["sleep", "1000"]\n    volumes: ["data:/data"]\n    networks: [back]\n' +
          'volumes:\n  data: {}\nnetworks:\n  back: {}\n',
      );
      const made = await session({ TC_RYUK_COMPOSE_DIR: dir });
      expect(made.compose).toMatch(/^tc-ryuk-[0-9a-f]{12}$/);
      await expectReaped(made);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
