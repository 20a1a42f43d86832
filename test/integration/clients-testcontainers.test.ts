import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { waitFor } from '../helpers/wait.js';
import { buildRyukImage, ryukUnavailable } from '../helpers/ryuk-image.js';

/**
 * testcontainers-node 12.0.1 (the last release that runs on Node 20) against a real berthd: unversioned paths,
 * `GET /info` probe, `HostPort: "0"`, `logs?tail=-1&since=0`, the distroless exec checks of the port wait strategy,
 * `stop?t=0` with a JSON body. The host is pinned to loopback and images are loaded or built beforehand so nothing
 * is ever pulled. The reaper (Ryuk) runs as users run it when its binary is in the tool cache (its image is built on
 * the daemon, see test/helpers/ryuk-image.ts); CI cannot build it (the Go module proxy refuses the module), so
 * there the suite runs with TESTCONTAINERS_RYUK_DISABLED and says why.
 */

const ryukMissing = ryukUnavailable();
if (ryukMissing) console.log(`testcontainers runs with its reaper disabled: ${ryukMissing}`);

type Tc = typeof import('testcontainers');

async function httpGet(port: number, path = '/'): Promise<{ status: number; body: string }> {
  const r = await request(`http://127.0.0.1:${port}${path}`);
  return { status: r.statusCode, body: await r.body.text() };
}

describe('testcontainers-node 12 against berthd', () => {
  let d: TestDaemon;
  let tc: Tc;

  beforeAll(async () => {
    d = await startDaemon();
    const r = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(r.code, r.stderr).toBe(0);
    // testcontainers reads its environment once, on first use: set it before the import.
    process.env.DOCKER_HOST = `unix://${d.socket}`;
    if (ryukMissing) process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
    else await buildRyukImage(d);
    process.env.TESTCONTAINERS_HOST_OVERRIDE = 'localhost';
    process.env.DOCKER_CONFIG = d.env.DOCKER_CONFIG;
    tc = await import('testcontainers');
  });
  afterAll(async () => {
    if (d) {
      const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await d.docker(['rm', '-f', '-v', ...ids]);
      const nets = (await d.docker(['network', 'ls', '-q', '--filter', 'label=org.testcontainers=true'])).stdout.split('\n').filter(Boolean);
      if (nets.length > 0) await d.docker(['network', 'rm', ...nets]);
      await d.stop();
    }
  });

  it.skipIf(ryukMissing !== undefined)('the reaper runs beside the session: daemon socket mounted, 8080 published and connected, AutoRemove', async () => {
    const c = await new tc.GenericContainer('busybox:latest').withCommand(['sleep', '1000']).start();
    try {
      const session = c.getLabels()['org.testcontainers.session-id'];
      expect(session).toMatch(/^[0-9a-f]{12}$/);
      const filters = encodeURIComponent(JSON.stringify({ label: ['org.testcontainers.ryuk=true'] }));
      const reapers = (await d.request('GET', `/containers/json?filters=${filters}`)).json<Array<{ Id: string; Names: string[]; State: string; Labels: Record<string, string> }>>();
      expect(reapers).toHaveLength(1);
      expect(reapers[0]).toMatchObject({ Names: [`/testcontainers-ryuk-${session}`], State: 'running' });
      expect(reapers[0]!.Labels['org.testcontainers.session-id']).toBe(session);
      const info = (await d.request('GET', `/containers/${reapers[0]!.Id}/json`)).json<{
        HostConfig: { AutoRemove: boolean; Binds: string[] };
        NetworkSettings: { Ports: Record<string, Array<{ HostPort: string }> | null> };
      }>();
      expect(info.HostConfig.AutoRemove).toBe(true);
      // testcontainers asks for the bind with an explicit mode; the daemon keeps Binds as given.
      expect(info.HostConfig.Binds).toEqual([`${d.socket}:/var/run/docker.sock:rw`]);
      expect(Number(info.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort)).toBeGreaterThan(0);
      const logs = await d.docker(['logs', reapers[0]!.Id]);
      expect(logs.stdout + logs.stderr).toMatch(/Started.*\n(.|\n)*adding filter.*org\.testcontainers\.session-id=/);
    } finally {
      await c.stop({ timeout: 0 });
    }
  });

  it('GenericContainer(busybox httpd) with copied content and forListeningPorts serves on the mapped loopback port; exec, logs, stop', async () => {
    const container = await new tc.GenericContainer('busybox:latest')
      .withCommand(['sh', '-c', 'echo httpd starting; exec httpd -f -v -p 8080 -h /www'])
      .withCopyContentToContainer([{ content: 'hello from testcontainers\n', target: '/www/index.html' }])
      .withExposedPorts(8080)
      .withWaitStrategy(tc.Wait.forListeningPorts())
      .start();
    const id = container.getId();
    try {
      const port = container.getMappedPort(8080);
      expect(port).toBeGreaterThan(0);
      expect(port).not.toBe(8080);
      expect(container.getHost()).toBe('localhost');
      expect(await httpGet(port)).toEqual({ status: 200, body: 'hello from testcontainers\n' });

      const ok = await container.exec(['cat', '/www/index.html']);
      expect(ok.exitCode).toBe(0);
      expect(ok.output).toBe('hello from testcontainers\n');
      const split = await container.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect(split).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
      const missing = await container.exec(['/bin/bash', '-c', 'true']);
      expect(missing.exitCode).toBe(126);

      const logs = await container.logs();
      let text = '';
      logs.on('data', (b: Buffer | string) => (text += b.toString()));
      await waitFor(() => text.includes('httpd starting'));
      logs.destroy();

      const inspect = await d.request('GET', `/containers/${id}/json`);
      const info = inspect.json<{ Config: { Labels: Record<string, string> }; HostConfig: { PortBindings: Record<string, Array<{ HostPort: string }>> } }>();
      expect(info.Config.Labels['org.testcontainers']).toBe('true');
      expect(info.HostConfig.PortBindings['8080/tcp']?.[0]?.HostPort).toMatch(/^(0|)$/);
    } finally {
      await container.stop();
    }
    // stop() removes the container (AutoRemove is off; testcontainers deletes it with v=true).
    expect((await d.request('GET', `/containers/${id}/json`)).status).toBe(404);
  });

  it('forLogMessage waits for a line; forHttp waits for a 200; a command writes index.html', async () => {
    const logWaiter = await new tc.GenericContainer('busybox:latest')
      .withCommand(['sh', '-c', 'sleep 0.2; echo "service is ready"; exec sleep 1000'])
      .withWaitStrategy(tc.Wait.forLogMessage('service is ready'))
      .withStartupTimeout(30_000)
      .start();
    const ready = await logWaiter.exec(['echo', 'alive']);
    expect(ready.output).toBe('alive\n');
    await logWaiter.stop({ timeout: 0 });

    const web = await new tc.GenericContainer('busybox:latest')
      .withCommand(['sh', '-c', 'mkdir -p /www && echo generated > /www/index.html && exec httpd -f -p 8080 -h /www'])
      .withExposedPorts(8080)
      .withWaitStrategy(tc.Wait.forHttp('/', 8080).forStatusCode(200))
      .start();
    try {
      expect(await httpGet(web.getMappedPort(8080))).toEqual({ status: 200, body: 'generated\n' });
    } finally {
      await web.stop();
    }
  });

  it('withHealthCheck + Wait.forHealthCheck; restart keeps the published port serving', async () => {
    const c = await new tc.GenericContainer('busybox:latest')
      .withCommand(['sh', '-c', 'mkdir -p /www && echo healthy-web > /www/index.html && exec httpd -f -p 8080 -h /www'])
      .withExposedPorts(8080)
      .withHealthCheck({ test: ['CMD-SHELL', 'wget -q -O /dev/null http://127.0.0.1:8080/'], interval: 200, timeout: 2000, retries: 10, startPeriod: 0 })
      .withWaitStrategy(tc.Wait.forHealthCheck())
      .start();
    try {
      expect(await httpGet(c.getMappedPort(8080))).toEqual({ status: 200, body: 'healthy-web\n' });
      await c.restart({ timeout: 0 });
      const port = c.getMappedPort(8080);
      await waitFor(async () => (await httpGet(port).catch(() => ({ status: 0 }))).status === 200);
      expect(await httpGet(port)).toEqual({ status: 200, body: 'healthy-web\n' });
    } finally {
      await c.stop({ timeout: 0 });
    }
  });

  it('environment, labels, name, user, working dir, tmpfs and resource quotas reach the container', async () => {
    const c = await new tc.GenericContainer('busybox:latest')
      .withCommand(['sleep', '1000'])
      .withEnvironment({ GREETING: 'hi' })
      .withLabels({ team: 'berth' })
      .withName('tc-configured')
      .withUser('1000:1000')
      .withWorkingDir('/tmp')
      .withTmpFs({ '/scratch': 'rw,size=1m' })
      .withResourcesQuota({ memory: 0.1, cpu: 0.5 })
      .start();
    try {
      const r = await c.exec(['sh', '-c', 'echo $GREETING; id -u; pwd; grep -c " /scratch tmpfs " /proc/mounts']);
      expect(r).toMatchObject({ exitCode: 0, output: 'hi\n1000\n/tmp\n1\n' });
      expect(c.getName()).toBe('/tc-configured');
      expect(c.getLabels().team).toBe('berth');
      const info = (await d.request('GET', '/containers/tc-configured/json')).json<{ HostConfig: { Memory: number; NanoCpus: number } }>();
      expect(Math.abs(info.HostConfig.Memory - 0.1 * 1024 ** 3)).toBeLessThanOrEqual(1); // testcontainers rounds up
      expect(info.HostConfig.NanoCpus).toBe(0.5e9);
    } finally {
      await c.stop({ timeout: 0 });
    }
  });

  it('withReuse finds the running container again by its hash label', async () => {
    process.env.TESTCONTAINERS_REUSE_ENABLE = 'true';
    try {
      const a = await new tc.GenericContainer('busybox:latest').withCommand(['sleep', '1001']).withReuse().start();
      const b = await new tc.GenericContainer('busybox:latest').withCommand(['sleep', '1001']).withReuse().start();
      expect(b.getId()).toBe(a.getId());
      await a.stop({ timeout: 0 });
    } finally {
      delete process.env.TESTCONTAINERS_REUSE_ENABLE;
    }
  });

  it('copies files into a running container and reads an archive back', async () => {
    const c = await new tc.GenericContainer('busybox:latest').withCommand(['sleep', '1000']).start();
    try {
      await c.copyContentToContainer([{ content: 'copied later\n', target: '/tmp/later.txt' }]);
      expect((await c.exec(['cat', '/tmp/later.txt'])).output).toBe('copied later\n');
      const archive = await c.copyArchiveFromContainer('/tmp/later.txt');
      const chunks: Buffer[] = [];
      for await (const chunk of archive) chunks.push(Buffer.from(chunk as Buffer));
      expect(Buffer.concat(chunks).toString('latin1')).toContain('copied later');
    } finally {
      await c.stop({ timeout: 0 });
    }
  });

  it('Network: two containers reach each other by network alias', async () => {
    const network = await new tc.Network().start();
    const server = await new tc.GenericContainer('busybox:latest')
      .withNetwork(network)
      .withNetworkAliases('web')
      .withCommand(['sh', '-c', 'mkdir -p /www && echo via-alias > /www/index.html && exec httpd -f -p 8080 -h /www'])
      .withExposedPorts(8080)
      .withWaitStrategy(tc.Wait.forListeningPorts())
      .start();
    const client = await new tc.GenericContainer('busybox:latest').withNetwork(network).withCommand(['sleep', '1000']).start();
    try {
      const r = await client.exec(['wget', '-q', '-O', '-', 'http://web:8080/']);
      expect(r).toMatchObject({ exitCode: 0, output: 'via-alias\n' });
      // With aliases testcontainers creates on the default bridge and then connects (as on dockerd); without, NetworkMode.
      expect(server.getNetworkNames().sort()).toEqual(['bridge', network.getName()].sort());
      expect(client.getNetworkNames()).toEqual([network.getName()]);
      expect(server.getIpAddress(network.getName())).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    } finally {
      await client.stop({ timeout: 0 });
      await server.stop({ timeout: 0 });
      await network.stop();
    }
    expect((await d.request('GET', `/networks/${network.getId()}`)).status).toBe(404);
  });
});
