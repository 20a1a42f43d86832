import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHostsToml } from '../../../src/registry/hosts-toml.js';
import { RegistryHosts } from '../../../src/registry/hosts.js';

const dir = mkdtempSync(join(tmpdir(), 'hosts-toml-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("containerd's hosts.toml", () => {
  it('parses server, host tables in order, capabilities and skip_verify, ignoring comments', () => {
    const t = parseHostsToml(
      [
        '# mirrors for registry.k8s.io',
        'server = "https://registry.k8s.io"',
        '',
        '[host."http://127.0.0.1:5000"]',
        '  capabilities = ["pull", "resolve"]  # no push',
        "[host.'https://mirror.example:8443/v2']",
        '  skip_verify = true',
      ].join('\n'),
      'hosts.toml',
    );
    expect(t).toEqual({
      server: 'https://registry.k8s.io',
      hosts: [
        { origin: 'http://127.0.0.1:5000', capabilities: ['pull', 'resolve'], skipVerify: false },
        { origin: 'https://mirror.example:8443', capabilities: ['pull', 'resolve', 'push'], skipVerify: true },
      ],
    });
  });

  it('refuses what it cannot honour: mirror paths, unknown tables, bad lines', () => {
    expect(() => parseHostsToml('[host."https://m.example/prefix"]', 'f')).toThrow(/override_path/);
    expect(() => parseHostsToml('[plugins]', 'f')).toThrow(/unsupported table/);
    expect(() => parseHostsToml('server', 'f')).toThrow(/key = value/);
  });

  it('puts pull mirrors before the registry, never for pushes, and follows server', () => {
    mkdirSync(join(dir, 'registry.k8s.io'), { recursive: true });
    writeFileSync(join(dir, 'registry.k8s.io', 'hosts.toml'), '[host."http://127.0.0.1:5000"]\ncapabilities = ["pull", "resolve"]\n[host."http://127.0.0.1:5001"]\ncapabilities = ["push"]\n');
    mkdirSync(join(dir, 'k8s.gcr.io'), { recursive: true });
    writeFileSync(join(dir, 'k8s.gcr.io', 'hosts.toml'), 'server = "https://registry.k8s.io"\n');
    const hosts = new RegistryHosts({ mirrors: [], insecureRegistries: [], certsDir: dir });
    const pull = hosts.endpoints('registry.k8s.io');
    expect(pull.map((e) => [e.origin, e.mirror, e.insecure])).toEqual([
      ['http://127.0.0.1:5000', true, true],
      ['https://registry.k8s.io', false, false],
    ]);
    expect(hosts.endpoints('registry.k8s.io', true).map((e) => e.origin)).toEqual(['https://registry.k8s.io']);
    expect(hosts.endpoints('k8s.gcr.io').map((e) => [e.origin, e.registry])).toEqual([['https://registry.k8s.io', 'k8s.gcr.io']]);
    expect(hosts.endpoints('quay.io').map((e) => e.origin)).toEqual(['https://quay.io']);
    void hosts.close();
  });
});
