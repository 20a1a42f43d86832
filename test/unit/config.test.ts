import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, insecureTcpForced, loadConfig, parseArgs, RELOADABLE_KEYS, tlsEnabled, tlsVerifyClients, usage } from '../../src/config.js';
import { parseHost } from '../../src/util/host-address.js';

describe('daemon configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cfg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (json: unknown): string => {
    const p = join(dir, `${Math.random()}.json`);
    writeFileSync(p, JSON.stringify(json));
    return p;
  };

  it('has the documented defaults', () => {
    const c = loadConfig(['--config-file', file({})]);
    expect(c.hosts).toEqual(['unix:///run/berth/docker.sock']);
    expect(c.dataRoot).toBe('/var/lib/berth');
    expect(c.execRoot).toBe('/run/berth');
    expect(c.pidfile).toBe('/run/berth/berthd.pid');
  });

  it('reads daemon.json keys and lets flags win', () => {
    const p = file({ 'data-root': '/srv/b', 'log-level': 'warn', hosts: ['unix:///tmp/x.sock'], 'log-opts': { 'max-size': '1m' } });
    const c = loadConfig(['--config-file', p, '--data-root', '/srv/flag', '-H', 'unix:///tmp/a.sock', '-H', 'unix:///tmp/b.sock']);
    expect(c.dataRoot).toBe('/srv/flag');
    expect(c.logLevel).toBe('warn');
    expect(c.hosts).toEqual(['unix:///tmp/a.sock', 'unix:///tmp/b.sock']);
    expect(c.logOpts).toEqual({ 'max-size': '1m' });
  });

  it('reads api-timeouts in seconds over the defaults and refuses bad values', () => {
    expect(loadConfig(['--config-file', file({})]).apiTimeouts).toEqual({ headersMs: 60_000, requestMs: 60_000, bodyIdleMs: 300_000 });
    expect(loadConfig(['--config-file', file({ 'api-timeouts': { headers: 1.5, 'body-idle': 10 } })]).apiTimeouts).toEqual({
      headersMs: 1500,
      requestMs: 60_000,
      bodyIdleMs: 10_000,
    });
    expect(() => loadConfig(['--config-file', file({ 'api-timeouts': { headers: 0 } })])).toThrow(/api-timeouts.headers/);
    expect(() => loadConfig(['--config-file', file({ 'api-timeouts': { idle: 1 } })])).toThrow(/no option "idle"/);
  });

  it('refuses unknown keys, bad JSON, unknown flags and a missing named file', () => {
    expect(() => loadConfig(['--config-file', file({ bogus: 1 })])).toThrow(/don't match any configuration option: bogus/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{nope');
    expect(() => loadConfig(['--config-file', bad])).toThrow(/invalid JSON/);
    expect(() => loadConfig(['--nope'])).toThrow();
    expect(() => loadConfig(['--config-file', join(dir, 'missing.json')])).toThrow();
  });
});

describe('daemon command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (json: unknown): string => {
    const p = join(dir, `${Math.random()}.json`);
    writeFileSync(p, JSON.stringify(json));
    return p;
  };

  it('accepts --flag=value, -Hvalue, repeated flags and --bool=false', () => {
    const c = loadConfig(['--config-file', file({}), '--host=unix:///tmp/a.sock', '-Hunix:///tmp/b.sock', '--iptables=false', '--label', 'a=1', '--label', 'b=2', '--log-opt', 'max-size=1m']);
    expect(c.hosts).toEqual(['unix:///tmp/a.sock', 'unix:///tmp/b.sock']);
    expect(c.iptables).toBe(false);
    expect(c.labels).toEqual(['a=1', 'b=2']);
    expect(c.logOpts).toEqual({ 'max-size': '1m' });
  });

  it('lists every problem at once: unknown flags, missing values, positional arguments', () => {
    let err: unknown;
    try {
      parseArgs(['--nope', '-x', 'stray', '--data-root']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      'unknown flag: --nope',
      "unknown shorthand flag: 'x' in -x",
      'berthd accepts no arguments, got "stray"',
      'flag needs an argument: --data-root',
    ]);
  });

  it('checks value types in daemon.json and on the command line', () => {
    expect(() => loadConfig(['--config-file', file({ labels: 'x', 'max-concurrent-downloads': 'a' })])).toThrow(/"labels" must be an array of strings\n.*"max-concurrent-downloads" must be an integer/);
    expect(() => loadConfig(['--config-file', file({}), '--max-concurrent-uploads', 'many'])).toThrow(/expected an integer/);
    expect(() => loadConfig(['--config-file', file({}), '--tls=maybe'])).toThrow(/expected true or false/);
    expect(() => loadConfig(['--config-file', file({}), '--log-format', 'xml'])).toThrow(/unknown log format/);
  });

  it('refuses TCP without TLS client authentication unless --tls=false says so', () => {
    expect(() => loadConfig(['--config-file', file({}), '-H', 'tcp://127.0.0.1:2375'])).toThrow(/refusing to serve the API on TCP without TLS client authentication/);
    const c = loadConfig(['--config-file', file({}), '-H', 'tcp://127.0.0.1:2375', '--tls=false']);
    expect(insecureTcpForced(c)).toBe(true);
    expect(tlsEnabled(c)).toBe(false);
  });

  it('--tlsverify implies TLS and needs readable certificate files', () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, 'x');
    const c = loadConfig(['--config-file', file({ tlsverify: true, tlscacert: ca, tlscert: ca, tlskey: ca }), '-H', 'tcp://:2376']);
    expect(tlsEnabled(c)).toBe(true);
    expect(tlsVerifyClients(c)).toBe(true);
    expect(() => loadConfig(['--config-file', file({}), '--tlsverify', '--tlscacert', join(dir, 'none.pem'), '--tlscert', ca, '--tlskey', ca])).toThrow(/--tlscacert: cannot read .*none\.pem: ENOENT/);
  });

  it('serves the CRI on <exec-root>/cri.sock unless --no-cri; --cri-socket and cni dirs from flags or daemon.json', () => {
    expect(loadConfig(['--config-file', file({}), '--exec-root', '/run/x']).criSocket).toBe('unix:///run/x/cri.sock');
    expect(loadConfig(['--config-file', file({ 'cri-socket': 'unix:///tmp/c.sock' }), '--no-cri']).criSocket).toBe('');
    const c = loadConfig(['--config-file', file({ 'cni-conf-dir': '/etc/x' }), '--cri-socket', 'unix:///tmp/d.sock', '--cni-bin-dir', '/a', '--cni-bin-dir', '/b']);
    expect(c.criSocket).toBe('unix:///tmp/d.sock');
    expect(c.cniConfDir).toBe('/etc/x');
    expect(c.cniBinDirs).toEqual(['/a', '/b']);
    expect(() => loadConfig(['--config-file', file({ 'no-cri': true })])).toThrow(/don't match any configuration option: no-cri/);
  });

  it('parses -H addresses as dockerd does', () => {
    expect(parseHost('tcp://:2376', true)).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 2376 });
    expect(parseHost('tcp://0.0.0.0', true)).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 2376 });
    expect(parseHost('tcp://[::1]:9', false)).toEqual({ kind: 'tcp', host: '::1', port: 9 });
    expect(parseHost('fd://', false)).toEqual({ kind: 'fd', select: 'all' });
    expect(parseHost('fd://3', false)).toEqual({ kind: 'fd', select: 3 });
    expect(parseHost('fd://berth.socket', false)).toEqual({ kind: 'fd', select: 'berth.socket' });
    expect(parseHost('/run/x.sock', false)).toEqual({ kind: 'unix', path: '/run/x.sock' });
    expect(() => parseHost('udp://x', false)).toThrow(/unsupported protocol udp/);
  });

  it('generates --help from the option table and names the reloadable keys', () => {
    const text = usage();
    for (const flag of ['--host', '--tlsverify', '--tlscacert', '--log-format', '--socket-link', '--validate', '--version']) expect(text).toContain(flag);
    expect(RELOADABLE_KEYS).toEqual(expect.arrayContaining(['labels', 'debug', 'log-level', 'registry-mirrors', 'insecure-registries', 'max-concurrent-downloads', 'max-concurrent-uploads']));
  });
});
