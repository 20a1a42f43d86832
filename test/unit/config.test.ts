import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

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
