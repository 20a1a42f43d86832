import { createReadStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { NotFoundError } from '../errors.js';
import type { ImageRecord } from '../images/image-service.js';
import { progressBar } from '../images/image-load.js';
import { familiarString, parseReference, refString, repoName, type ImageReference } from '../images/reference.js';
import type { LayerRecord } from '../snapshots/layer-store.js';
import { credentialsOf, type AuthConfig } from './auth-config.js';
import { repositoryScope } from './auth.js';
import type { RepositoryClient } from './client.js';
import { connectRepository, shortDigest, type Emit, type RegistryContext } from './context.js';
import { isRetryable } from './errors.js';
import { sleep } from './limiter.js';
import { buildManifest } from '../images/image-manifest.js';
import type { Descriptor } from './manifest.js';

const UPLOAD_ATTEMPTS = 3;

/** The local tags a push of `name` (+ `tag`) covers: one tag, or every tag of the repository. */
export function tagsToPush(ctx: RegistryContext, name: string, tag: string | undefined): { repo: ImageReference; tags: string[] } {
  const parsed = parseReference(name);
  const repo: ImageReference = { domain: parsed.domain, path: parsed.path };
  const explicit = tag !== undefined && tag !== '' ? tag : parsed.tag;
  if (explicit !== undefined) {
    const ref = { ...repo, tag: explicit };
    if (!ctx.images.repo.getRef(refString(ref))) throw new NotFoundError(`An image does not exist locally with the tag: ${familiarString(ref)}`);
    return { repo, tags: [explicit] };
  }
  const prefix = `${repoName(repo)}:`;
  const tags = ctx.images.repo
    .allRefs()
    .filter((r) => r.kind === 'tag' && r.ref.startsWith(prefix) && !r.ref.slice(prefix.length).includes('/'))
    .map((r) => r.ref.slice(prefix.length))
    .sort();
  if (tags.length === 0) throw new NotFoundError(`An image does not exist locally with the tag: ${familiarString(repo)}`);
  return { repo, tags };
}

function counting(source: Readable, onBytes: (n: number) => void): Readable {
  let n = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onBytes(n);
      cb(null, chunk);
    },
  });
  source.on('error', (e) => t.destroy(e));
  return source.pipe(t);
}

/** Uploads one blob from the content store: one PUT when small, PATCH chunks then PUT when big. */
async function uploadBlob(ctx: RegistryContext, client: RepositoryClient, location: string, digest: string, size: number, onBytes: (n: number) => void): Promise<void> {
  const path = ctx.images.content.path(digest);
  if (size <= ctx.monolithicMax) {
    await client.putBlob(location, digest, size, () => counting(createReadStream(path), onBytes));
    return;
  }
  let loc = location;
  for (let start = 0; start < size; start += ctx.chunkSize) {
    const len = Math.min(ctx.chunkSize, size - start);
    const base = start;
    loc = await client.patchChunk(loc, start, len, () => counting(createReadStream(path, { start, end: start + len - 1 }), (n) => onBytes(base + n)));
  }
  await client.finishUpload(loc, digest);
}

async function pushLayer(ctx: RegistryContext, client: RepositoryClient, repo: ImageReference, layer: LayerRecord, emit: Emit): Promise<Descriptor> {
  const id = shortDigest(layer.diffId);
  const blob = layer.blob;
  if (!blob || !ctx.images.content.has(blob.digest)) {
    throw new Error(`layer ${layer.diffId} has no stored blob (it was not pulled or loaded); it cannot be pushed yet`);
  }
  const size = ctx.images.content.size(blob.digest);
  const desc: Descriptor = { mediaType: blob.mediaType, digest: blob.digest, size };
  if (ctx.uploads.busy) emit({ status: 'Waiting', progressDetail: {}, id });
  const release = await ctx.uploads.acquire();
  try {
    if ((await client.statBlob(blob.digest)) !== undefined) {
      emit({ status: 'Layer already exists', progressDetail: {}, id });
      ctx.sources.add(blob.digest, repo.domain, repo.path);
      return desc;
    }
    let location: string | undefined;
    for (const from of ctx.sources.candidates(blob.digest, repo.domain, repo.path).slice(0, 3)) {
      client.addScope(repositoryScope(from, ['pull']));
      try {
        const r = await client.startUpload({ digest: blob.digest, from });
        if (r.mounted) {
          emit({ status: `Mounted from ${from}`, progressDetail: {}, id });
          ctx.sources.add(blob.digest, repo.domain, repo.path);
          return desc;
        }
        location = r.location;
        break;
      } catch (e) {
        ctx.log.debug({ from, digest: blob.digest, err: (e as Error).message }, 'cross-repository mount failed');
        ctx.sources.forget(blob.digest, repo.domain, from);
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        location ??= (await client.startUpload().then((r) => (r.mounted ? undefined : r.location))) as string;
        let last = -1;
        const step = Math.max(64 * 1024, Math.floor(size / 100));
        emit({ status: 'Pushing', progressDetail: { current: 0, total: size }, progress: progressBar(0, size), id });
        await uploadBlob(ctx, client, location, blob.digest, size, (n) => {
          if (n - last < step && n < size) return;
          last = n;
          emit({ status: 'Pushing', progressDetail: { current: n, total: size }, progress: progressBar(n, size), id });
        });
        break;
      } catch (e) {
        if (location) await client.cancelUpload(location);
        location = undefined;
        if (!isRetryable(e) || attempt >= UPLOAD_ATTEMPTS) throw e;
        emit({ status: `Retrying in ${attempt * 2} seconds`, progressDetail: {}, id });
        await sleep(attempt * 2000);
      }
    }
    emit({ status: 'Pushed', progressDetail: {}, id });
    ctx.sources.add(blob.digest, repo.domain, repo.path);
    return desc;
  } finally {
    release();
  }
}

/** Pushes one tagged image: layers (parallel, limited), config, then the manifest; records the RepoDigest. */
async function pushTag(ctx: RegistryContext, client: RepositoryClient, repo: ImageReference, tag: string, emit: Emit): Promise<void> {
  const ref = { ...repo, tag };
  const image: ImageRecord = ctx.images.resolve(refString(ref));
  const chain = image.chainId ? ctx.images.layers.chain(image.chainId) : [];
  const topFirst = [...chain].reverse();
  for (const l of topFirst) emit({ status: 'Preparing', progressDetail: {}, id: shortDigest(l.diffId) });
  const results = topFirst.map((l) => pushLayer(ctx, client, repo, l, emit));
  results.forEach((p) => p.catch(() => undefined));
  const descs = (await Promise.all(results)).reverse();
  const configBytes = ctx.images.content.read(image.id);
  if ((await client.statBlob(image.id)) === undefined) {
    const { location } = (await client.startUpload()) as { location: string };
    await client.putBlob(location, image.id, configBytes.length, () => createReadStream(ctx.images.content.path(image.id)));
  }
  const manifest = buildManifest(image.id, configBytes.length, descs);
  const digest = await client.putManifest(tag, manifest.bytes, manifest.mediaType);
  const now = BigInt(Date.now()) * 1_000_000n;
  ctx.images.repo.setRef(refString({ ...repo, digest }), image.id, 'digest', now);
  emit({ status: `${tag}: digest: ${digest} size: ${manifest.bytes.length}` });
  emit({ progressDetail: {}, aux: { Tag: tag, Digest: digest, Size: manifest.bytes.length } });
  ctx.images.events.publish('image', 'push', familiarString(ref), { name: familiarString(ref) });
}

/** POST /images/{name}/push after the local tags were checked: connects, then pushes each tag. */
export async function pushRepository(ctx: RegistryContext, repo: ImageReference, tags: string[], auth: AuthConfig, emit: Emit): Promise<void> {
  emit({ status: `The push refers to repository [${repoName(repo)}]` });
  const { client } = await connectRepository(ctx, ctx.hosts.endpoints(repo.domain, true), repo.path, credentialsOf(auth), ['pull', 'push'], async () => undefined);
  try {
    for (const tag of tags) await pushTag(ctx, client, repo, tag, emit);
  } finally {
    ctx.sources.flush();
  }
}
