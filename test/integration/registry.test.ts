import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxEntries, busyboxImageTar } from '../helpers/busybox-image.js';
import { dockerSaveArchive, sha256 } from '../helpers/image-builder.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { fileLayer, progressLines, putManifest, rawPushImage } from './registry-fixtures.js';

let reg: TestRegistry;
let d: TestDaemon;

beforeAll(async () => {
  reg = await startRegistry({ auth: 'none' });
  d = await startDaemon();
});
afterAll(async () => {
  await d?.stop();
  await reg?.stop();
});

async function ok(args: string[]): Promise<string> {
  const r = await d.docker(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}\n${d.logs().slice(-3000)}`);
  return r.stdout;
}

function inspect(name: string): Record<string, any> {
  return JSON.parse(execFileSync('docker', ['image', 'inspect', name], { env: d.env, encoding: 'utf8' }))[0];
}

async function pullStream(image: string, tag: string, extra = ''): Promise<{ status: number; lines: Record<string, any>[]; text: string }> {
  const r = await d.request('POST', `/images/create?fromImage=${encodeURIComponent(image)}&tag=${encodeURIComponent(tag)}${extra}`, { headers: { 'x-registry-auth': 'e30=' } });
  const text = r.text();
  return { status: r.status, text, lines: r.status === 200 ? progressLines(text) : [] };
}

/** Content-store blobs and extracted layers (to check that failed pulls leave nothing behind). */
function storage(): { blobs: string[]; layers: string[] } {
  return {
    blobs: readdirSync(join(d.dataRoot, 'blobs', 'sha256')).sort(),
    layers: readdirSync(join(d.dataRoot, 'layers')).filter((n) => n !== 'l').sort(),
  };
}

const multiLayer = async (tag: string): Promise<Buffer> =>
  dockerSaveArchive([
    {
      layers: [busyboxEntries(), fileLayer('etc/app/one.txt', 'layer one\n'), fileLayer('etc/app/two.txt', 'layer two\n')],
      repoTags: [tag],
      config: { Cmd: ['cat', '/etc/app/one.txt', '/etc/app/two.txt'] },
    },
  ]);

describe('push and pull against docker-registry (no auth)', () => {
  it('pushes a multi-layer image with docker push, prints dockerd-style lines, and records the RepoDigest', async () => {
    const name = `${reg.host}/demo/multi:1`;
    const tar = join(d.dir, 'multi.tar');
    writeFileSync(tar, await multiLayer(name));
    await ok(['load', '-i', tar]);
    const out = await ok(['push', name]);
    expect(out).toContain(`The push refers to repository [${reg.host}/demo/multi]`);
    expect(out.match(/: Pushed$/gm)).toHaveLength(3);
    const m = /^1: digest: (sha256:[a-f0-9]{64}) size: (\d+)$/m.exec(out);
    expect(m).not.toBeNull();
    const img = inspect(name);
    expect(img.RepoDigests).toEqual([`${reg.host}/demo/multi@${m?.[1]}`]);
    // The registry serves the manifest Berth pushed: schema 2 with the stored blobs.
    const res = await request(`${reg.url}/v2/demo/multi/manifests/1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    const manifest = (await res.body.json()) as { mediaType: string; layers: unknown[]; config: { digest: string } };
    expect(res.headers['docker-content-digest']).toBe(m?.[1]);
    expect(manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(manifest.layers).toHaveLength(3);
    expect(manifest.config.digest).toBe(img.Id);
  });

  it('a second push finds every layer already there; a push to another repository mounts the blobs', async () => {
    const name = `${reg.host}/demo/multi:1`;
    const again = await ok(['push', name]);
    expect(again.match(/: Layer already exists$/gm)).toHaveLength(3);
    await ok(['tag', name, `${reg.host}/other/copy:2`]);
    const mounted = await ok(['push', `${reg.host}/other/copy:2`]);
    expect(mounted.match(/: Mounted from demo\/multi$/gm)).toHaveLength(3);
    await ok(['rmi', `${reg.host}/other/copy:2`]);
  });

  it('pulls the pushed image back after rmi: progress stream as dockerd, same image ID, runs', async () => {
    const name = `${reg.host}/demo/multi:1`;
    const id = inspect(name).Id as string;
    await ok(['rmi', name]);
    expect((await d.docker(['image', 'inspect', name])).code).not.toBe(0);
    const { status, lines } = await pullStream(`${reg.host}/demo/multi`, '1');
    expect(status).toBe(200);
    expect(lines[0]).toEqual({ status: 'Pulling from demo/multi', id: '1' });
    const byId = new Map<string, string[]>();
    for (const l of lines) if (l.id && l.id !== '1') byId.set(l.id, [...(byId.get(l.id) ?? []), l.status]);
    expect(byId.size).toBe(3);
    for (const statuses of byId.values()) {
      expect(statuses[0]).toBe('Pulling fs layer');
      expect(statuses).toContain('Downloading');
      expect(statuses).toContain('Verifying Checksum');
      expect(statuses).toContain('Download complete');
      expect(statuses).toContain('Extracting');
      expect(statuses.at(-1)).toBe('Pull complete');
    }
    const dl = lines.find((l) => l.status === 'Downloading' && l.progressDetail.current === l.progressDetail.total);
    expect(dl?.progress).toMatch(/^\[=+\]/);
    expect(lines.at(-2)?.status).toMatch(/^Digest: sha256:[a-f0-9]{64}$/);
    expect(lines.at(-1)?.status).toBe(`Status: Downloaded newer image for ${reg.host}/demo/multi:1`);
    const img = inspect(name);
    expect(img.Id).toBe(id);
    expect(img.RepoTags).toEqual([name]);
    expect(img.RepoDigests[0]).toBe(`${reg.host}/demo/multi@${lines.at(-2)?.status.slice('Digest: '.length)}`);
    expect((await ok(['run', '--rm', name])).trim()).toBe('layer one\nlayer two');
    // Pulling again: every layer exists, the image is up to date.
    const again = await ok(['pull', name]);
    expect(again).toMatch(/: Already exists$/m);
    expect(again).toContain(`Status: Image is up to date for ${name}`);
  });

  it('pulls by digest; the image gets only the digest reference', async () => {
    const digest = (inspect(`${reg.host}/demo/multi:1`).RepoDigests[0] as string).split('@')[1] as string;
    await ok(['rmi', `${reg.host}/demo/multi:1`]);
    const out = await ok(['pull', `${reg.host}/demo/multi@${digest}`]);
    expect(out).toContain(`${digest}: Pulling from demo/multi`);
    const img = inspect(`${reg.host}/demo/multi@${digest}`);
    expect(img.RepoTags).toEqual([]);
    expect(img.RepoDigests).toEqual([`${reg.host}/demo/multi@${digest}`]);
    // A digest the registry does not have is a plain 404.
    const missing = await d.docker(['pull', `${reg.host}/demo/multi@sha256:${'0'.repeat(64)}`]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('not found');
  });

  it('an unknown tag is a plain 404 before any stream, with dockerd\'s message', async () => {
    const r = await d.request('POST', `/images/create?fromImage=${encodeURIComponent(`${reg.host}/demo/multi`)}&tag=nope`);
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.json()).toEqual({ message: `manifest for ${reg.host}/demo/multi:nope not found: manifest unknown: manifest unknown` });
    const cli = await d.docker(['pull', `${reg.host}/nothing/here:1`]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/Error response from daemon: (manifest for|repository) .*not found/);
  });

  it('pulls gzip, zstd and uncompressed layers from an OCI manifest', async () => {
    const raw = await rawPushImage(reg, 'demo/mixed', 'v1', [
      { entries: busyboxEntries(), compression: 'gzip' },
      { entries: fileLayer('data/z.txt', 'zstd layer\n'), compression: 'zstd' },
      { entries: fileLayer('data/plain.txt', 'plain layer\n'), compression: 'none' },
    ], { oci: true });
    await ok(['pull', `${reg.host}/demo/mixed:v1`]);
    const img = inspect(`${reg.host}/demo/mixed:v1`);
    expect(img.Id).toBe(raw.configDigest);
    expect(img.RootFS.Layers).toEqual(raw.diffIds);
    expect((await ok(['run', '--rm', `${reg.host}/demo/mixed:v1`, 'cat', '/data/z.txt', '/data/plain.txt'])).trim()).toBe('zstd layer\nplain layer');
    // Pushed back elsewhere: zstd needs an OCI manifest, and the blobs are the ones pulled.
    await ok(['tag', `${reg.host}/demo/mixed:v1`, `${reg.host}/demo/mixed-copy:v1`]);
    await ok(['push', `${reg.host}/demo/mixed-copy:v1`]);
    const res = await request(`${reg.url}/v2/demo/mixed-copy/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const m = (await res.body.json()) as { mediaType: string; layers: { digest: string; mediaType: string }[] };
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    // The busybox layer existed locally (loaded uncompressed), so that blob is the local one; the others are as pulled.
    expect(m.layers.map((l) => l.digest).slice(1)).toEqual(raw.layerDigests.slice(1));
    expect(m.layers[1]?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
  });

  it('picks linux/amd64 from a manifest list and an OCI index; --platform selects another entry', async () => {
    const amd = await rawPushImage(reg, 'demo/multiarch', undefined, [{ entries: busyboxEntries(), compression: 'gzip' }, { entries: fileLayer('arch', 'amd64\n'), compression: 'gzip' }], { arch: 'amd64' });
    const arm = await rawPushImage(reg, 'demo/multiarch', undefined, [{ entries: busyboxEntries(), compression: 'gzip' }, { entries: fileLayer('arch', 'arm64\n'), compression: 'gzip' }], { arch: 'arm64', variant: 'v8' });
    const armv7 = await rawPushImage(reg, 'demo/multiarch', undefined, [{ entries: fileLayer('arch', 'armv7\n'), compression: 'gzip' }], { arch: 'arm', variant: 'v7' });
    const entry = (r: typeof amd, platform: Record<string, string>): Record<string, unknown> => ({ mediaType: r.mediaType, size: r.manifest.length, digest: r.manifestDigest, platform });
    const list = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      manifests: [entry(arm, { architecture: 'arm64', os: 'linux', variant: 'v8' }), entry(armv7, { architecture: 'arm', os: 'linux', variant: 'v7' }), entry(amd, { architecture: 'amd64', os: 'linux' })],
    }));
    const listDigest = await putManifest(reg, 'demo/multiarch', 'list', list, 'application/vnd.docker.distribution.manifest.list.v2+json');
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [entry(armv7, { architecture: 'arm', os: 'linux', variant: 'v7' }), entry(amd, { architecture: 'amd64', os: 'linux' }), entry(arm, { architecture: 'arm64', os: 'linux' })],
    }));
    const indexDigest = await putManifest(reg, 'demo/multiarch', 'index', index, 'application/vnd.oci.image.index.v1+json');

    await ok(['pull', `${reg.host}/demo/multiarch:list`]);
    const fromList = inspect(`${reg.host}/demo/multiarch:list`);
    expect(fromList.Id).toBe(amd.configDigest);
    expect(fromList.Architecture).toBe('amd64');
    // The RepoDigest is the list's digest, as dockerd records it.
    expect(fromList.RepoDigests).toEqual([`${reg.host}/demo/multiarch@${listDigest}`]);
    expect((await ok(['run', '--rm', `${reg.host}/demo/multiarch:list`, 'cat', '/arch'])).trim()).toBe('amd64');

    await ok(['pull', `${reg.host}/demo/multiarch:index`]);
    expect(inspect(`${reg.host}/demo/multiarch:index`).Id).toBe(amd.configDigest);
    expect(inspect(`${reg.host}/demo/multiarch:index`).RepoDigests).toContain(`${reg.host}/demo/multiarch@${indexDigest}`);

    const armPull = await pullStream(`${reg.host}/demo/multiarch`, 'index', '&platform=linux%2Farm64');
    expect(armPull.status).toBe(200);
    expect(inspect(`${reg.host}/demo/multiarch:index`).Id).toBe(arm.configDigest);
    await pullStream(`${reg.host}/demo/multiarch`, 'list', '&platform=linux%2Farm%2Fv7');
    expect(inspect(`${reg.host}/demo/multiarch:list`).Id).toBe(armv7.configDigest);
    const none = await pullStream(`${reg.host}/demo/multiarch`, 'list', '&platform=linux%2Fs390x');
    expect(none.status).toBe(404);
    expect(none.text).toContain('no matching manifest for linux/s390x');
  });

  it('GET /distribution/{name}/json describes a list and an image', async () => {
    const list = await d.request('GET', `/distribution/${reg.host}/demo/multiarch:list/json`);
    expect(list.status).toBe(200);
    const l = list.json<{ Descriptor: { mediaType: string; digest: string; size: number }; Platforms: { architecture: string; os: string }[] }>();
    expect(l.Descriptor.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(l.Platforms.map((p) => `${p.os}/${p.architecture}`)).toEqual(['linux/arm64', 'linux/arm', 'linux/amd64']);
    const one = await d.request('GET', `/distribution/${reg.host}/demo/mixed:v1/json`);
    expect(one.json<{ Platforms: unknown[] }>().Platforms).toEqual([{ architecture: 'amd64', os: 'linux' }]);
    const missing = await d.request('GET', `/distribution/${reg.host}/demo/mixed:none/json`);
    expect(missing.status).toBeGreaterThanOrEqual(400);
  });

  it('rejects a tampered blob: verification error in the stream, nothing visible, nothing left in the store', async () => {
    const raw = await rawPushImage(reg, 'demo/tampered', 't', [
      { entries: fileLayer('a.txt', 'A'.repeat(5000)), compression: 'gzip' },
      { entries: fileLayer('b.txt', 'honest content\n'), compression: 'none' },
    ]);
    const blob = reg.blobPath(raw.layerDigests[1] as string);
    const data = readFileSync(blob);
    const evil = Buffer.from(data);
    evil.write('HONEST', data.indexOf('honest'));
    writeFileSync(blob, evil);
    const before = storage();
    const { status, lines } = await pullStream(`${reg.host}/demo/tampered`, 't');
    expect(status).toBe(200);
    const err = lines.at(-1);
    expect(err?.errorDetail?.message).toBe(`filesystem layer verification failed for digest ${raw.layerDigests[1]}`);
    expect(err?.error).toBe(err?.errorDetail?.message);
    expect((await d.docker(['image', 'inspect', `${reg.host}/demo/tampered:t`])).code).not.toBe(0);
    expect(storage()).toEqual(before);
    // Restored, the same pull now succeeds (the verified first layer is reused).
    writeFileSync(blob, data);
    await ok(['pull', `${reg.host}/demo/tampered:t`]);
    expect(inspect(`${reg.host}/demo/tampered:t`).Id).toBe(raw.configDigest);
  });

  it('docker pull -a pulls every tag of a repository', async () => {
    const tags = ['a', 'b', 'c'];
    for (const t of tags) await rawPushImage(reg, 'demo/alltags', t, [{ entries: fileLayer('tag', `${t}\n`), compression: 'gzip' }], { cmd: ['/tag'] });
    const out = await ok(['pull', '-a', `${reg.host}/demo/alltags`]);
    for (const t of tags) expect(out).toContain(`${t}: Pulling from demo/alltags`);
    expect(out).toContain(`Status: Downloaded newer image for ${reg.host}/demo/alltags`);
    const listed = await ok(['images', '--format', '{{.Tag}}', `${reg.host}/demo/alltags`]);
    expect(listed.trim().split('\n').sort()).toEqual(tags);
  });

  it('docker run of an image that is not present pulls it first', async () => {
    const name = `${reg.host}/demo/bb:run`;
    await ok(['load', '-i', await busyboxImageTar()]);
    await ok(['tag', 'busybox', name]);
    await ok(['push', name]);
    await ok(['rmi', name]);
    const r = await d.docker(['run', '--rm', name, 'echo', 'pulled and ran'], { timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`Unable to find image '${name}' locally`);
    expect(r.stderr).toContain(`Status: Downloaded newer image for ${name}`);
    expect(r.stdout.trim()).toBe('pulled and ran');
  });

  it('concurrent pulls of the same image download each layer once and both succeed', async () => {
    const raw = await rawPushImage(reg, 'demo/concurrent', 'x', [
      { entries: fileLayer('big1', Buffer.alloc(3 << 20, 7)), compression: 'none' },
      { entries: fileLayer('big2', Buffer.alloc(3 << 20, 9)), compression: 'none' },
    ]);
    const [a, b] = await Promise.all([pullStream(`${reg.host}/demo/concurrent`, 'x'), pullStream(`${reg.host}/demo/concurrent`, 'x')]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    for (const p of [a, b]) expect(p.lines.some((l) => l.errorDetail)).toBe(false);
    expect(inspect(`${reg.host}/demo/concurrent:x`).Id).toBe(raw.configDigest);
    for (const digest of raw.layerDigests) expect(reg.requests(new RegExp(`^GET /v2/demo/concurrent/blobs/${digest} `))).toHaveLength(1);
  });

  it('push of a name with no local tag is a 404 before streaming; search answers a clean error', async () => {
    const r = await d.docker(['push', `${reg.host}/demo/absent:1`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`An image does not exist locally with the tag: ${reg.host}/demo/absent`);
    const s = await d.docker(['search', `${reg.host}/demo`]);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toContain('does not offer the v1 search API');
  });

  it('sanity: manifest digest of the raw fixture is what the registry reports', async () => {
    const raw = await rawPushImage(reg, 'demo/sanity', 's', [{ entries: fileLayer('s', 's'), compression: 'gzip' }]);
    expect(raw.manifestDigest).toBe(`sha256:${sha256(raw.manifest)}`);
  });
});
