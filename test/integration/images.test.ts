import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar, busyboxRootfs } from '../helpers/busybox-image.js';
import { dockerSaveArchive, layerTar, sha256 } from '../helpers/image-builder.js';
import { mountOverlay, unmount } from '../../src/snapshots/overlay.js';
import { rawTar } from '../unit/archive/tar-fixtures.js';
import { ociLayoutArchive, rawDockerSave, threeLayers } from './images-fixtures.js';
import { validateResponse } from '../helpers/api-spec.js';

let d: TestDaemon;
let work: string;

beforeAll(async () => {
  d = await startDaemon();
  work = mkdtempSync(join(tmpdir(), 'berth-img-'));
});
afterAll(async () => {
  await d?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function ok(args: string[], input?: Buffer): Promise<string> {
  const r = await d.docker(args, input ? { input } : {});
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}\n${d.logs().slice(-3000)}`);
  return r.stdout;
}

function inspect(name: string): Record<string, any> {
  return JSON.parse(execFileSync('docker', ['image', 'inspect', name], { env: d.env, encoding: 'utf8' }))[0];
}

/** What the data root holds besides what the listed images need (leftovers of failed operations). */
function storageState(): { layers: string[]; blobs: string[]; tmp: string[] } {
  return {
    layers: readdirSync(join(d.dataRoot, 'layers')).sort(),
    blobs: readdirSync(join(d.dataRoot, 'blobs', 'sha256')).sort(),
    tmp: readdirSync(join(d.dataRoot, 'blobs', 'tmp')),
  };
}

describe('docker load / images / inspect', () => {
  it('loads the busybox image; docker images shows size and creation time; inspect shows its config', async () => {
    const out = await ok(['load', '-i', await busyboxImageTar()]);
    expect(out.trim()).toBe('Loaded image: busybox:latest');
    const list = await ok(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Size}} {{.CreatedAt}}']);
    expect(list).toMatch(/^busybox:latest 1\.98MB 2024-01-01 00:00:00 \+0000 UTC$/m);
    const img = inspect('busybox');
    expect(img.Id).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(img.RepoTags).toEqual(['busybox:latest']);
    expect(img.Config.Cmd).toEqual(['sh']);
    expect(img.Config.Env[0]).toMatch(/^PATH=/);
    expect(img.Os).toBe('linux');
    expect(img.RootFS.Layers).toHaveLength(1);
    expect(img.Size).toBeGreaterThan(1_000_000);
    const info = JSON.parse(await ok(['info', '--format', '{{json .}}']));
    expect(info.Driver).toBe('overlay2');
    expect(info.Images).toBeGreaterThanOrEqual(1);
  });

  it('loads a three-layer image whose merged view has exactly the right files and modes', async () => {
    const tar = await dockerSaveArchive([{ layers: threeLayers, repoTags: ['three:1'] }]);
    expect((await ok(['load'], tar)).trim()).toBe('Loaded image: three:1');
    const img = inspect('three:1');
    const g = img.GraphDriver.Data;
    const view = join(work, 'merged');
    mountOverlay(view, { lower: [g.UpperDir, ...g.LowerDir.split(':')] });
    try {
      expect(readdirSync(view).sort()).toEqual(['bin', 'cfg', 'etc', 'run']);
      expect(readdirSync(join(view, 'cfg'))).toEqual(['fresh']);
      expect(lstatSync(join(view, 'cfg')).mode & 0o7777).toBe(0o750);
      expect(readFileSync(join(view, 'etc/keep'), 'utf8')).toBe('keep');
      expect(lstatSync(join(view, 'bin/tool')).mode & 0o7777).toBe(0o4755);
      expect(lstatSync(join(view, 'bin/tool-link')).ino).toBe(lstatSync(join(view, 'bin/tool')).ino);
      expect(readlinkSync(join(view, 'bin/sym'))).toBe('tool');
      expect(lstatSync(join(view, 'run/fifo')).isFIFO()).toBe(true);
      expect(lstatSync(join(view, 'run/fifo')).mode & 0o777).toBe(0o600);
    } finally {
      unmount(view);
      rmSync(view, { recursive: true, force: true });
    }
  });

  it('answers 404 with dockerd\'s text for a missing image and 400 for a malformed reference', async () => {
    const missing = await d.docker(['image', 'inspect', 'nosuch:1']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/No such image: nosuch:1/);
    const r = await d.request('GET', '/images/Bad%20Name/json');
    expect(r.status).toBe(400);
    expect(r.json<{ message: string }>().message).toMatch(/invalid reference format/);
    expect(r.headers['content-type']).toBe('application/json');
  });

  it('finds images by short ID, long ID, ID prefix and a name with registry port and path', async () => {
    const id = inspect('busybox').Id as string;
    await ok(['tag', 'busybox', 'localhost:5000/team/bb:v1']);
    for (const name of [id, id.slice(7), id.slice(7, 19), id.slice(7, 12), 'localhost:5000/team/bb:v1', 'docker.io/library/busybox:latest']) {
      expect(inspect(name).Id).toBe(id);
    }
    await ok(['rmi', 'localhost:5000/team/bb:v1']);
  });
});

describe('responses match api-spec/berth.yaml', () => {
  it('validates list, inspect, history, tag, delete and prune bodies', async () => {
    const check = async (method: string, url: string, template: string, status: number) => {
      const r = await d.request(method, url);
      expect(r.status, r.text()).toBe(status);
      if (r.body.length > 0) expect(validateResponse(method, template, status, r.json())).toEqual([]);
    };
    await check('GET', '/images/json?all=1', '/images/json', 200);
    await check('GET', '/images/busybox/json', '/images/{name}/json', 200);
    await check('GET', '/v1.50/images/busybox:latest/history', '/images/{name}/history', 200);
    await check('POST', '/images/busybox/tag?repo=spec-check&tag=1', '/images/{name}/tag', 201);
    await check('DELETE', '/images/spec-check:1', '/images/{name}', 200);
    await check('POST', '/images/prune', '/images/prune', 200);
  });
});

describe('GET /images/json shared-size and manifests', () => {
  it('SharedSize counts layers other images use too; Manifests (API 1.47+) summarises each image as the spec shapes it', async () => {
    await ok(['load', '-i', await busyboxImageTar()]);
    const ctx = mkdtempSync(join(work, 'shared-'));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nLABEL berth.shared=1\n');
    await ok(['build', '-q', '-t', 'berth-shared:1', ctx]);
    const cid = (await ok(['create', 'berth-shared:1', 'true'])).trim();
    try {
      type Summary = { Id: string; RepoTags: string[]; Size: number; SharedSize: number; Manifests?: Record<string, any>[] };
      const plain = (await d.request('GET', '/images/json')).json<Summary[]>();
      expect(plain.every((i) => i.SharedSize === -1 && !('Manifests' in i))).toBe(true);

      const res = await d.request('GET', '/images/json?shared-size=1&manifests=1');
      const list = res.json<Summary[]>();
      expect(validateResponse('GET', '/images/json', 200, list)).toEqual([]);
      const base = list.find((i) => i.RepoTags.includes('busybox:latest'));
      const derived = list.find((i) => i.RepoTags.includes('berth-shared:1'));
      if (!base || !derived) throw new Error(`images missing: ${res.text()}`);
      // The derived image adds no layer: all of busybox's layer is shared, by both.
      expect(base.SharedSize).toBe(base.Size);
      expect(derived.SharedSize).toBe(base.Size);

      const m = derived.Manifests?.[0];
      expect(derived.Manifests).toHaveLength(1);
      expect(m).toMatchObject({ Available: true, Kind: 'image', ImageData: { Platform: { os: 'linux' }, Containers: [cid], Size: { Unpacked: derived.Size } } });
      expect(m?.ID).toBe(m?.Descriptor.digest);
      expect(m?.Descriptor.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
      expect(m?.Size.Total).toBe(m?.Size.Content + derived.Size);
      expect(base.Manifests?.[0]?.ImageData.Containers).toEqual([]);

      // docker image ls --tree (CLI 28) reads Manifests: the image and its platform's entry.
      const tree = await ok(['image', 'ls', '--tree']);
      expect(tree).toContain('berth-shared:1');
      expect(tree).toMatch(/linux\/amd64/);

      // Before API 1.47 the parameter does not exist (dockerd drops the field).
      const old = (await d.request('GET', '/v1.46/images/json?manifests=1')).json<Summary[]>();
      expect(old.every((i) => !('Manifests' in i))).toBe(true);
    } finally {
      await ok(['rm', cid]);
      await ok(['rmi', 'berth-shared:1']);
      rmSync(ctx, { recursive: true, force: true });
    }
  });
});

describe('docker save / load round trip', () => {
  it('save, rmi, load gives the same image ID and layer digests; skopeo reads the archive', async () => {
    const before = inspect('busybox');
    const file = join(work, 'bb.tar');
    await ok(['save', '-o', file, 'busybox']);
    const skopeo = JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${file}`], { encoding: 'utf8' }));
    expect(skopeo.Layers).toEqual(before.RootFS.Layers);
    const rmi = await ok(['rmi', 'busybox']);
    expect(rmi).toMatch(/^Untagged: busybox:latest$/m);
    expect(rmi).toContain(`Deleted: ${before.Id}`);
    expect((await ok(['load', '-i', file])).trim()).toBe('Loaded image: busybox:latest');
    const after = inspect('busybox');
    expect(after.Id).toBe(before.Id);
    expect(after.RootFS.Layers).toEqual(before.RootFS.Layers);
  });

  it('loads an OCI image layout: named images by annotation, unnamed ones by ID', async () => {
    const tar = await ociLayoutArchive([
      { layers: [threeLayers[0] ?? []], name: 'docker.io/library/oci-named:2', refName: '2' },
      { layers: [[{ path: 'only', type: 'file', content: 'x' }]], config: { Labels: { anon: '1' } } },
    ]);
    const out = await ok(['load'], tar);
    expect(out).toMatch(/^Loaded image: oci-named:2$/m);
    const m = /^Loaded image ID: (sha256:[a-f0-9]{64})$/m.exec(out);
    expect(m).not.toBeNull();
    expect(inspect('oci-named:2').RepoTags).toEqual(['oci-named:2']);
    expect(inspect(m?.[1] as string).RepoTags).toEqual([]);
    await ok(['rmi', m?.[1] as string, 'oci-named:2']);
  });
});

describe('docker import', () => {
  it('imports a rootfs tarball with --change and --message', async () => {
    const tgz = join(work, 'rootfs.tgz');
    execFileSync('tar', ['-C', busyboxRootfs(), '-czf', tgz, '.']);
    const out = await ok(['import', '-c', 'CMD ["sh"]', '-c', 'ENV A=1', '-c', 'WORKDIR /tmp', '-c', 'EXPOSE 80', '-c', 'USER nobody', '-c', 'LABEL x=y', '-m', 'imported', tgz, 'demo-imp:1']);
    expect(out.trim()).toMatch(/^sha256:[a-f0-9]{64}$/);
    const img = inspect('demo-imp:1');
    expect(img.Id).toBe(out.trim());
    expect(img.Config).toMatchObject({ Cmd: ['sh'], Env: ['A=1'], WorkingDir: '/tmp', ExposedPorts: { '80/tcp': {} }, User: 'nobody', Labels: { x: 'y' } });
    expect(img.Comment).toBe('imported');
    const hist = await ok(['history', '--format', '{{.Comment}}|{{.Size}}', 'demo-imp:1']);
    expect(hist.trim()).toBe('imported|1.98MB');
    await ok(['rmi', 'demo-imp:1']);
  });

  it('refuses an invalid change instruction with 400', async () => {
    const r = await d.docker(['import', '-c', 'RUN true', '-', 'x:1'], { input: await layerTar([{ path: 'a', type: 'file' }]) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/RUN is not a valid change command/);
  });
});

describe('tag / rmi / history / prune', () => {
  it('tags, untags (keeping the image) and deletes with dockerd\'s Untagged/Deleted list', async () => {
    await ok(['tag', 'busybox', 'demo-img:tagged']);
    const r = await d.request('POST', `/images/busybox/tag?repo=${encodeURIComponent('docker.io/library/demo-img')}&tag=two`);
    expect(r.status).toBe(201);
    const id = inspect('busybox').Id;
    expect(inspect('demo-img:two').Id).toBe(id);
    expect((await ok(['rmi', 'demo-img:tagged'])).trim()).toBe('Untagged: demo-img:tagged');
    const del = await d.request('DELETE', '/images/demo-img:two');
    expect(del.json()).toEqual([{ Untagged: 'demo-img:two' }]);
    expect(inspect('busybox').Id).toBe(id);
  });

  it('refuses to delete by ID an image referenced by several repositories unless forced', async () => {
    await ok(['tag', 'busybox', 'other-repo:1']);
    const id = inspect('busybox').Id as string;
    const r = await d.docker(['rmi', id.slice(7, 19)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`conflict: unable to delete ${id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`);
    await ok(['rmi', 'other-repo:1']);
  });

  it('answers 409 for an image a container uses, with dockerd\'s messages', async () => {
    const created = await d.docker(['create', '--name', 'img-user', 'busybox', 'true']);
    if (created.code !== 0) throw new Error(`docker create failed: ${created.stderr}`);
    try {
      const byName = await d.docker(['rmi', 'busybox']);
      expect(byName.code).toBe(1);
      expect(byName.stderr).toMatch(/conflict: unable to remove repository reference "busybox" \(must force\) - container [a-f0-9]{12} is using its referenced image [a-f0-9]{12}/);
      const id = inspect('busybox').Id as string;
      const byId = await d.docker(['rmi', id.slice(7, 19)]);
      expect(byId.stderr).toMatch(/conflict: unable to delete [a-f0-9]{12} \(must be forced\) - image is being used by stopped container [a-f0-9]{12}/);
      expect(inspect('busybox').Id).toBe(id);
    } finally {
      await d.docker(['rm', '-f', 'img-user']);
    }
  });

  it('deleting one of two images built on a shared cached step keeps that parent quietly; the last one prunes it', async () => {
    // As testcontainers' reaper (Ryuk) deletes a session's built images: by ID, without noprune. dockerd's parent
    // pruning stops without an error at a parent that is not dangling (it has another child).
    const ctx = mkdtempSync(join(work, 'shared-parent-'));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nVOLUME /shared\n');
    for (const name of ['sib-a', 'sib-b']) {
      const r = await d.docker(['build', '-q', '--label', `sib=${name}`, '-t', name, ctx], { env: { DOCKER_BUILDKIT: '0' } });
      if (r.code !== 0) throw new Error(`docker build failed: ${r.stderr}`);
    }
    const a = inspect('sib-a');
    const b = inspect('sib-b');
    expect(a.Parent).not.toBe('');
    expect(b.Parent).toBe(a.Parent);
    const del = await d.request('DELETE', `/v1.50/images/${a.Id as string}`);
    expect(del.status, del.text()).toBe(200);
    expect(del.json()).toEqual([{ Untagged: 'sib-a:latest' }, { Deleted: a.Id }]);
    expect((await d.request('GET', `/images/${a.Parent as string}/json`)).status).toBe(200);
    const last = await d.request('DELETE', `/v1.50/images/${b.Id as string}`);
    expect(last.status, last.text()).toBe(200);
    expect(last.json()).toEqual(expect.arrayContaining([{ Untagged: 'sib-b:latest' }, { Deleted: b.Id }, { Deleted: a.Parent }]));
    expect((await d.request('GET', `/images/${a.Parent as string}/json`)).status).toBe(404);
  });

  it('shows history newest first like dockerd', async () => {
    const tar = await dockerSaveArchive([{ layers: threeLayers, repoTags: ['hist:1'] }]);
    await ok(['load'], tar);
    const out = await ok(['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}', 'hist:1']);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(`${inspect('hist:1').Id}|test layer 2`);
    expect(lines[2]).toBe('<missing>|test layer 0');
    const api = (await d.request('GET', '/images/hist:1/history')).json<Record<string, unknown>[]>();
    expect(api[0]?.Tags).toContain('hist:1');
  });

  it('prunes dangling images by default and unused tagged ones with --all, reporting space reclaimed', async () => {
    const dangling = await dockerSaveArchive([{ layers: [[{ path: 'dangle', type: 'file', content: 'd'.repeat(5000) }]], repoTags: [] }]);
    const out = await ok(['load'], dangling);
    const id = /Loaded image ID: (sha256:\S+)/.exec(out)?.[1];
    expect(id).toBeDefined();
    const pruneOut = await ok(['image', 'prune', '-f']);
    expect(pruneOut).toContain(`deleted: ${id}`);
    expect(pruneOut).toMatch(/Total reclaimed space: 5kB/);
    expect(await ok(['images', '-q', '--filter', 'reference=hist'])).not.toBe('');
    const labeled = await d.request('POST', `/images/prune?filters=${encodeURIComponent(JSON.stringify({ dangling: { false: true }, label: { nothing: true } }))}`);
    expect(labeled.json()).toEqual({ ImagesDeleted: null, SpaceReclaimed: 0 });
    const all = await ok(['image', 'prune', '-a', '-f', '--filter', 'until=2030-01-01T00:00:00Z']);
    expect(all).toMatch(/untagged: hist:1/);
    expect(await ok(['images', '-q'])).toBe('');
    expect(storageState(), d.logs().slice(-4000)).toEqual({ layers: ['l'], blobs: [], tmp: [] });
    await ok(['load', '-i', await busyboxImageTar()]);
  });

  it('filters docker images by reference, label, dangling, before and since', async () => {
    await ok(['load'], await dockerSaveArchive([{ layers: [[{ path: 'n', type: 'file', content: 'new' }]], repoTags: ['newer:1'], created: '2025-06-01T00:00:00Z', config: { Labels: { tier: 'web' } } }]));
    const q = async (...f: string[]) => (await ok(['images', '--format', '{{.Repository}}:{{.Tag}}', ...f.flatMap((x) => ['--filter', x])])).trim().split('\n').filter(Boolean).sort();
    expect(await q('reference=newer')).toEqual(['newer:1']);
    expect(await q('reference=busy*:latest')).toEqual(['busybox:latest']);
    expect(await q('label=tier=web')).toEqual(['newer:1']);
    expect(await q('dangling=true')).toEqual([]);
    expect(await q('since=busybox')).toEqual(['newer:1']);
    expect(await q('before=newer:1')).toEqual(['busybox:latest']);
    await ok(['rmi', 'newer:1']);
  });
});

describe('hostile archives', () => {
  const refuse = async (name: string, archive: Buffer, message: RegExp) => {
    const before = storageState();
    const images = await ok(['images', '-q', '--no-trunc']);
    const r = await d.docker(['load'], { input: archive });
    expect(r.code, name).not.toBe(0);
    expect(r.stderr, name).toMatch(message);
    expect(storageState(), name).toEqual(before);
    expect(await ok(['images', '-q', '--no-trunc'])).toBe(images);
  };

  it('refuses path traversal, symlink escapes, truncated gzip and wrong digests, leaving nothing behind', async () => {
    const evil = rawTar([{ name: '../../escape', data: 'x' }]);
    await refuse('traversal', await rawDockerSave([evil], [`sha256:${sha256(evil)}`], ['evil:1']), /outside of the layer/);
    const sym = rawTar([{ name: 'up', type: '2', linkname: '../../../../../tmp' }, { name: 'up/pwned', data: 'x' }]);
    await refuse('symlink', await rawDockerSave([sym], [`sha256:${sha256(sym)}`], ['evil:2']), /invalid symlink/);
    const good = await layerTar([{ path: 'f', type: 'file', content: 'y'.repeat(100_000) }]);
    const gz = gzipSync(good);
    await refuse('truncated gzip', await rawDockerSave([gz.subarray(0, gz.length - 100)], [`sha256:${sha256(good)}`], ['evil:3']), /unexpected end of file|truncated|corrupt/);
    await refuse('wrong digest', await rawDockerSave([good], [`sha256:${'0'.repeat(64)}`], ['evil:4']), /layer digest mismatch/);
    await refuse('not a tar', Buffer.from('this is not an archive at all, just text'.repeat(20)), /invalid archive|invalid tar header/);
    const full = await busyboxImageTar();
    const bytes = readFileSync(full);
    await refuse('truncated archive', bytes.subarray(0, Math.floor(bytes.length / 2)), /truncated|unexpected EOF/);
    expect(existsSync('/tmp/pwned')).toBe(false);
    // The daemon keeps serving.
    expect((await d.request('GET', '/_ping')).status).toBe(200);
    expect(inspect('busybox').RepoTags).toEqual(['busybox:latest']);
  });
});

describe('crash leftovers', () => {
  it('start-up removes half-written blobs and orphan layer directories', async () => {
    writeFileSync(join(d.dataRoot, 'blobs', 'tmp', 'half-written'), 'x');
    writeFileSync(join(d.dataRoot, 'blobs', 'sha256', 'ab'.repeat(32)), 'orphan');
    execFileSync('mkdir', ['-p', join(d.dataRoot, 'layers', 'tmp-123', 'diff')]);
    await d.signal('SIGTERM');
    await d.launch();
    expect(existsSync(join(d.dataRoot, 'blobs', 'tmp', 'half-written'))).toBe(false);
    expect(existsSync(join(d.dataRoot, 'blobs', 'sha256', 'ab'.repeat(32)))).toBe(false);
    expect(existsSync(join(d.dataRoot, 'layers', 'tmp-123'))).toBe(false);
    expect(inspect('busybox').RepoTags).toEqual(['busybox:latest']);
  });
});
