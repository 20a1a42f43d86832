import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAIN, runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const berthd = (args: string[]) => runCommand(process.execPath, [MAIN, ...args], { timeoutMs: 20_000 });

describe("berthd's own command line", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ops-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--help prints every flag on stdout and exits 0', async () => {
    const r = await berthd(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage:\tberthd \[OPTIONS\]/);
    for (const flag of ['--host', '--data-root', '--tlsverify', '--tlscacert', '--tlscert', '--tlskey', '--log-format', '--socket-link', '--validate', '--version']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stderr).toBe('');
  });

  it('--version prints Berth and API versions and exits 0', async () => {
    const r = await berthd(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Berth version \d+\.\d+\.\d+, API 1\.50, Node\.js v\d+/);
  });

  it('an unknown flag is a usage error (exit 2) naming the flag', async () => {
    const r = await berthd(['--frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('berthd: unknown flag: --frobnicate');
    expect(r.stderr).toContain("See 'berthd --help'.");
  });

  it('--validate says configuration OK (exit 0) or lists every problem (exit 1) without starting', async () => {
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ labels: ['a=b'], 'log-level': 'warn' }));
    const ok = await berthd(['--validate', '--config-file', good]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('configuration OK\n');

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ bogus: 1, 'max-concurrent-downloads': 'x', 'log-level': 'loud' }));
    const r = await berthd(['--validate', '--config-file', bad, '-H', 'tcp://127.0.0.1:2375']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("don't match any configuration option: bogus");
    expect(r.stderr).toContain('"max-concurrent-downloads" must be an integer');
    expect(r.stderr).toContain('unknown log level "loud"');
    expect(r.stderr).toContain('refusing to serve the API on TCP without TLS client authentication');

    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"labels": [');
    const j = await berthd(['--validate', '--config-file', broken]);
    expect(j.code).toBe(1);
    expect(j.stderr).toMatch(/broken\.json: invalid JSON/);
  });
});

describe('berthd logs and SIGHUP', () => {
  let d: TestDaemon;
  afterAll(async () => {
    await d?.stop();
  });

  it('--log-format text writes dockerd-style lines and no deprecation warning', async () => {
    d = await startDaemon({ config: { labels: ['stage=one'] }, extraArgs: ['--log-format', 'text'] });
    const lines = d.logs().trim().split('\n');
    expect(lines.length).toBeGreaterThan(2);
    for (const l of lines) expect(l).toMatch(/^time="[^"]+" level=(trace|debug|info|warning|error|fatal) msg="/);
    expect(d.logs()).toMatch(/level=info msg="berthd started"/);
    expect(d.logs()).not.toMatch(/Deprecation|FSTDEP/);
  });

  it('SIGHUP re-reads labels, registry mirrors, insecure registries and concurrency from daemon.json', async () => {
    const before = await d.docker(['info', '--format', '{{json .Labels}}']);
    expect(JSON.parse(before.stdout)).toEqual(['stage=one']);
    writeFileSync(
      join(d.dir, 'daemon.json'),
      JSON.stringify({
        labels: ['stage=two', 'team=ops'],
        'registry-mirrors': ['https://mirror.invalid'],
        'insecure-registries': ['registry.invalid:5000', '10.99.0.0/16'],
        'max-concurrent-downloads': 7,
      }),
    );
    d.process?.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    let info: { Labels: string[]; RegistryConfig: { Mirrors: string[]; InsecureRegistryCIDRs: string[]; IndexConfigs: Record<string, { Secure: boolean }> } } | undefined;
    while (Date.now() < deadline) {
      const r = await d.request('GET', '/info');
      info = r.json();
      if (info?.Labels.includes('team=ops')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(info?.Labels).toEqual(['stage=two', 'team=ops']);
    expect(info?.RegistryConfig.Mirrors).toEqual(['https://mirror.invalid']);
    expect(info?.RegistryConfig.InsecureRegistryCIDRs).toContain('10.99.0.0/16');
    expect(info?.RegistryConfig.IndexConfigs['registry.invalid:5000']?.Secure).toBe(false);
    expect(d.logs()).toMatch(/msg="configuration reloaded".*"maxConcurrentDownloads":7/);
    // Still serving after the reload.
    expect((await d.request('GET', '/_ping')).status).toBe(200);
  });

  it('a broken daemon.json on SIGHUP is logged and the running configuration stays', async () => {
    writeFileSync(join(d.dir, 'daemon.json'), JSON.stringify({ labels: 'not-a-list' }));
    d.process?.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !d.logs().includes('configuration reload failed')) await new Promise((r) => setTimeout(r, 50));
    expect(d.logs()).toMatch(/level=error msg="configuration reload failed; keeping the running configuration".*labels/);
    const r = await d.request('GET', '/info');
    expect(r.json<{ Labels: string[] }>().Labels).toEqual(['stage=two', 'team=ops']);
  });
});
