import { describe, expect, it } from 'vitest';
import { credentialsOf, decodeAuthHeader, encodeAuthHeader } from '../../../src/registry/auth-config.js';
import { mergeScopes } from '../../../src/registry/auth.js';
import { parseChallenges } from '../../../src/registry/challenge.js';
import { formatErrors, registryErrorFrom } from '../../../src/registry/errors.js';
import { RegistryHosts } from '../../../src/registry/hosts.js';
import { ManifestError, parseManifest } from '../../../src/registry/manifest.js';
import { normalizePlatform, parsePlatform, selectPlatform } from '../../../src/registry/platform.js';
import { buildManifest } from '../../../src/images/image-manifest.js';
import { serverToDomain } from '../../../src/registry/registry-service.js';

const D = (c: string): string => `sha256:${c.repeat(64)}`;

describe('WWW-Authenticate parsing', () => {
  it('reads a Docker Hub bearer challenge', () => {
    const c = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull"');
    expect(c).toEqual([{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/x:pull' } }]);
  });
  it('reads Basic, unquoted values, escapes and several challenges', () => {
    expect(parseChallenges('Basic realm="basic-realm"')).toEqual([{ scheme: 'basic', params: { realm: 'basic-realm' } }]);
    expect(parseChallenges(['Basic realm=x, Bearer realm="a\\"b", error="invalid_token"'])).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'a"b', error: 'invalid_token' } },
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });
  it('merges scopes on the same resource', () => {
    expect(mergeScopes(['repository:a:pull', 'repository:a:push', 'repository:b:pull', 'repository:a:pull'])).toEqual(['repository:a:pull,push', 'repository:b:pull']);
  });
});

describe('X-Registry-Auth', () => {
  it('decodes base64url and standard base64, ignores garbage', () => {
    const cfg = { username: 'u', password: 'p?>~', serveraddress: '127.0.0.1:5000' };
    expect(decodeAuthHeader(encodeAuthHeader(cfg))).toEqual(cfg);
    expect(decodeAuthHeader(Buffer.from(JSON.stringify(cfg)).toString('base64'))).toEqual(cfg);
    expect(decodeAuthHeader('e30=')).toEqual({});
    expect(decodeAuthHeader('%%%')).toEqual({});
    expect(decodeAuthHeader(undefined)).toEqual({});
  });
  it('picks credentials in dockerd\'s order', () => {
    expect(credentialsOf({})).toEqual({ kind: 'anonymous' });
    expect(credentialsOf({ auth: Buffer.from('a:b:c').toString('base64') })).toEqual({ kind: 'basic', username: 'a', password: 'b:c' });
    expect(credentialsOf({ username: 'a', identitytoken: 'rt' })).toEqual({ kind: 'identity', username: 'a', refreshToken: 'rt' });
    expect(credentialsOf({ registrytoken: 't', username: 'x' })).toEqual({ kind: 'bearer', token: 't' });
  });
  it('maps login server addresses', () => {
    expect(serverToDomain('https://index.docker.io/v1/')).toBe('docker.io');
    expect(serverToDomain(undefined)).toBe('docker.io');
    expect(serverToDomain('registry-1.docker.io')).toBe('docker.io');
    expect(serverToDomain('http://127.0.0.1:5000/')).toBe('127.0.0.1:5000');
    expect(serverToDomain('ghcr.io')).toBe('ghcr.io');
  });
});

describe('registry errors', () => {
  it('renders errcode bodies as Go prints them', () => {
    const e = registryErrorFrom(404, 'Not Found', Buffer.from('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}'));
    expect(e.message).toBe('manifest unknown: manifest unknown');
    expect(e.has('MANIFEST_UNKNOWN')).toBe(true);
    expect(formatErrors([{ code: 'DENIED', message: 'a' }, { code: 'UNAUTHORIZED', message: 'b' }])).toBe('errors:\ndenied: a\nunauthorized: b\n');
    expect(registryErrorFrom(401, 'Unauthorized', Buffer.from('{"details":"incorrect username or password"}')).message).toBe('unauthorized: incorrect username or password');
    expect(registryErrorFrom(502, 'Bad Gateway', Buffer.from('<html>')).message).toBe('received unexpected HTTP status: 502 Bad Gateway');
  });
});

describe('endpoints', () => {
  const hosts = new RegistryHosts({ mirrors: ['http://127.0.0.1:6000'], insecureRegistries: ['10.0.0.0/8', 'myreg:5000'], certsDir: '/nonexistent' });
  it('treats loopback, listed CIDRs and names as insecure', () => {
    expect(hosts.isInsecure('127.0.0.1:5000')).toBe(true);
    expect(hosts.isInsecure('localhost:5000')).toBe(true);
    expect(hosts.isInsecure('[::1]:5000')).toBe(true);
    expect(hosts.isInsecure('10.2.3.4')).toBe(true);
    expect(hosts.isInsecure('myreg:5000')).toBe(true);
    expect(hosts.isInsecure('192.168.1.1:5000')).toBe(false);
    expect(hosts.isInsecure('ghcr.io')).toBe(false);
  });
  it('sends docker.io to mirrors then registry-1.docker.io; pushes skip mirrors; insecure gets https then http', () => {
    expect(hosts.endpoints('docker.io').map((e) => e.origin)).toEqual(['http://127.0.0.1:6000', 'https://registry-1.docker.io']);
    expect(hosts.endpoints('docker.io', true).map((e) => e.origin)).toEqual(['https://registry-1.docker.io']);
    expect(hosts.endpoints('127.0.0.1:5000').map((e) => e.origin)).toEqual(['https://127.0.0.1:5000', 'http://127.0.0.1:5000']);
    expect(hosts.endpoints('ghcr.io').map((e) => e.origin)).toEqual(['https://ghcr.io']);
  });
  it('refuses a malformed mirror', () => {
    expect(() => new RegistryHosts({ mirrors: ['ftp://x'], insecureRegistries: [], certsDir: '/x' })).toThrow(/invalid mirror/);
  });
});

describe('manifests', () => {
  const layer = { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 3, digest: D('a') };
  const config = { mediaType: 'application/vnd.docker.container.image.v1+json', size: 2, digest: D('b') };
  it('parses schema 2, OCI manifests without mediaType, and indexes', () => {
    const m = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config, layers: [layer] })), undefined);
    expect(m.kind).toBe('image');
    const oci = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: { ...config, mediaType: 'application/vnd.oci.image.config.v1+json' }, layers: [{ ...layer, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }] })), 'application/vnd.oci.image.manifest.v1+json');
    expect(oci.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const idx = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'x', size: 1, digest: D('c'), platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }] })), '');
    expect(idx).toEqual({ kind: 'index', mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'x', size: 1, digest: D('c'), platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }] });
  });
  it('refuses schema 1, bad digests and non-image artifacts', () => {
    expect(() => parseManifest(Buffer.from('{"schemaVersion":1}'), '')).toThrow(/schema 1 support has been removed/);
    expect(() => parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [{ ...layer, digest: 'md5:x' }] })), '')).toThrow(ManifestError);
    expect(() => parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: { ...config, mediaType: 'application/vnd.cncf.helm.config.v1+json' }, layers: [] })), '')).toThrow(/not a container image/);
  });
  it('builds dockerd-shaped schema 2 manifests, OCI when a layer is zstd', () => {
    const m = buildManifest(D('b'), 2, [{ digest: D('a'), size: 3, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }]);
    expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(m.bytes.toString()).toContain('\n   "schemaVersion": 2');
    expect(JSON.parse(m.bytes.toString()).layers[0].mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
    const z = buildManifest(D('b'), 2, [{ digest: D('a'), size: 3, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }, { digest: D('c'), size: 3, mediaType: 'application/vnd.docker.image.rootfs.diff.tar' }]);
    expect(z.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(JSON.parse(z.bytes.toString()).layers.map((l: { mediaType: string }) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar']);
  });
});

describe('platforms', () => {
  const entries = [
    { digest: 'arm7', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    { digest: 'arm6', platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
    { digest: 'arm64', platform: { os: 'linux', architecture: 'arm64' } },
    { digest: 'amd64', platform: { os: 'linux', architecture: 'amd64' } },
    { digest: 'win', platform: { os: 'windows', architecture: 'amd64' } },
  ];
  it('parses --platform values', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm64')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(parsePlatform('linux/arm/7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('aarch64')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(() => parsePlatform('linux//x')).toThrow(/unknown operating system or architecture/);
    expect(normalizePlatform({ os: 'Linux', architecture: 'x86_64' })).toEqual({ os: 'linux', architecture: 'amd64' });
  });
  it('selects the best entry: exact, compatible arm variant, never another OS', () => {
    expect(selectPlatform(entries, { os: 'linux', architecture: 'amd64' })?.digest).toBe('amd64');
    expect(selectPlatform(entries, { os: 'linux', architecture: 'arm64', variant: 'v8' })?.digest).toBe('arm64');
    expect(selectPlatform(entries, { os: 'linux', architecture: 'arm', variant: 'v7' })?.digest).toBe('arm7');
    expect(selectPlatform(entries.filter((e) => e.digest !== 'arm7'), { os: 'linux', architecture: 'arm', variant: 'v7' })?.digest).toBe('arm6');
    expect(selectPlatform(entries, { os: 'linux', architecture: 's390x' })).toBeUndefined();
    expect(selectPlatform(entries, { os: 'windows', architecture: 'amd64' })?.digest).toBe('win');
  });
});
