import { BerthError, InvalidParameterError, NotFoundError } from '../errors.js';
import { parseImageConfig, type ImageConfigJson } from '../images/image-config.js';
import { progressBar } from '../images/image-load.js';
import { familiarName, familiarString, refString, type ImageReference } from '../images/reference.js';
import { DigestMismatchError } from '../content/content-store.js';
import { chainIdOf, LayerStore } from '../snapshots/layer-store.js';
import { credentialsOf, type AuthConfig } from './auth-config.js';
import type { RepositoryClient } from './client.js';
import { connectRepository, shortDigest, stashBlob, unuseBlob, useBlob, type Emit, type RegistryContext } from './context.js';
import type { DownloadEvent } from './downloads.js';
import { RegistryError } from './errors.js';
import { ManifestError, parseManifest, type Descriptor, type ImageManifest } from './manifest.js';
import { formatPlatform, hostPlatform, platformMatches, selectPlatform, type Platform } from './platform.js';

const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export interface PullRequest {
  /** Tag or digest reference; a name without either pulls every tag. */
  ref: ImageReference;
  auth: AuthConfig;
  /** --platform; the host's platform when absent. */
  platform?: Platform;
}

interface Resolved {
  client: RepositoryClient;
  /** Digest of what the reference names (the list/index when it is one): the RepoDigest. */
  digest: string;
  manifest: ImageManifest;
  manifestDigest: string;
  /** The platform was chosen from a list. */
  fromList: boolean;
}

/** dockerd's translatePullError wording, with its status codes. */
function pullError(e: unknown, ref: ImageReference): unknown {
  if (!(e instanceof RegistryError)) return e;
  const first = e.errors[0];
  const cause = first ? `${first.code.toLowerCase().replace(/_/g, ' ')}: ${first.message}` : e.message;
  if (e.has('MANIFEST_UNKNOWN')) return new NotFoundError(`manifest for ${familiarString(ref)} not found: ${cause}`, { cause: e });
  if (e.has('NAME_UNKNOWN')) return new NotFoundError(`repository ${familiarName(ref)} not found: ${cause}`, { cause: e });
  if (e.has('DENIED')) return new NotFoundError(`pull access denied for ${familiarName(ref)}, repository does not exist or may require 'docker login': ${cause}`, { cause: e });
  // Anything else is dockerd's errdefs.Unknown (500): a 401 would make the CLI prompt for a login.
  return new BerthError(e.message, { cause: e });
}

/**
 * Resolves a reference to an image manifest: fetches it (by tag or digest) from the first endpoint that answers,
 * verifies its digest, and descends a manifest list / OCI index to the entry for the platform.
 */
export async function resolveImage(ctx: RegistryContext, ref: ImageReference, auth: AuthConfig, platform: Platform | undefined): Promise<Resolved> {
  const want = platform ?? hostPlatform();
  const reference = ref.digest ?? ref.tag ?? 'latest';
  try {
    const { client, result } = await connectRepository(ctx, ctx.hosts.endpoints(ref.domain), ref.path, credentialsOf(auth), ['pull'], async (c) => {
      const top = await c.getManifest(reference);
      if (ref.digest !== undefined && top.digest !== ref.digest) {
        throw new DigestMismatchError(`manifest verification failed for digest ${ref.digest}`);
      }
      return top;
    });
    const top = result;
    let parsed = parseManifest(top.bytes, top.contentType);
    let manifestDigest = top.digest;
    let fromList = false;
    if (parsed.kind === 'index') {
      const pick = selectPlatform(parsed.manifests, want);
      if (!pick) {
        throw new NotFoundError(`no matching manifest for ${formatPlatform(want)} in the manifest list entries`);
      }
      const m = await client.getManifest(pick.digest);
      if (m.digest !== pick.digest) throw new DigestMismatchError(`manifest verification failed for digest ${pick.digest}`);
      parsed = parseManifest(m.bytes, m.contentType);
      if (parsed.kind !== 'image') throw new ManifestError(`manifest list entry ${pick.digest} is itself a list`);
      manifestDigest = m.digest;
      fromList = true;
    }
    return { client, digest: top.digest, manifest: parsed, manifestDigest, fromList };
  } catch (e) {
    throw pullError(e, ref);
  }
}

function layerEventMessage(id: string, e: DownloadEvent): Record<string, unknown> | undefined {
  switch (e.kind) {
    case 'waiting':
      return { status: 'Waiting', progressDetail: {}, id };
    case 'downloading':
      return { status: 'Downloading', progressDetail: { current: e.current, total: e.total }, progress: progressBar(e.current, e.total), id };
    case 'retrying':
      return { status: `Retrying in ${e.seconds} second${e.seconds === 1 ? '' : 's'}`, progressDetail: {}, id };
    case 'verifying':
      return { status: 'Verifying Checksum', progressDetail: {}, id };
    case 'complete':
      return { status: 'Download complete', progressDetail: {}, id };
  }
}

/**
 * Pulls one resolved image: config first, layers downloaded in parallel (daemon-wide limit) and extracted in
 * order, every blob verified before it enters the content store; the image and its references appear in one
 * transaction at the end, so a failure at any point leaves nothing visible.
 */
export async function pullResolved(ctx: RegistryContext, ref: ImageReference, r: Resolved, platform: Platform | undefined, emit: Emit): Promise<{ imageId: string; upToDate: boolean }> {
  const { images } = ctx;
  const { content, layers } = images;
  const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
  emit({ status: `Pulling from ${ref.path}`, id: tagOrDigest });
  const m = r.manifest;
  const configDesc = m.config;
  const used: string[] = [];
  const use = (d: string): void => {
    useBlob(ctx, d);
    used.push(d);
  };
  const holder = LayerStore.tempHolder('pull');
  let storedConfig = false;
  let createdImage = false;
  const downloads: Promise<unknown>[] = [];
  try {
    // The config: small, fetched whole and verified.
    use(configDesc.digest);
    let configBytes: Buffer;
    if (content.has(configDesc.digest)) configBytes = content.read(configDesc.digest);
    else {
      // The size comes from the manifest, i.e. from the registry: bounded as the manifest itself is.
      if (configDesc.size > MAX_CONFIG_BYTES) {
        throw new BerthError(`image config ${configDesc.digest} is too large: ${configDesc.size} bytes (at most ${MAX_CONFIG_BYTES})`);
      }
      configBytes = await r.client.getBlobBuffer(configDesc.digest, configDesc.size > 0 ? configDesc.size : MAX_CONFIG_BYTES);
      content.put(configBytes, configDesc.digest);
      storedConfig = true;
    }
    let config: ImageConfigJson;
    try {
      config = parseImageConfig(configBytes, configDesc.digest);
    } catch (e) {
      throw new BerthError(`invalid image config ${configDesc.digest}: ${(e as Error).message}`);
    }
    if (platform && !r.fromList) {
      const got: Platform = { os: config.os ?? '', architecture: config.architecture ?? '', ...(config.variant ? { variant: config.variant } : {}) };
      if (!platformMatches(got, platform)) {
        throw new NotFoundError(
          `image with reference ${familiarString(ref)} was found but its platform (${formatPlatform(got)}) does not match the specified platform (${formatPlatform(platform)})`,
        );
      }
    }
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== m.layers.length) {
      throw new BerthError(`invalid manifest: ${m.layers.length} layers but the image config lists ${diffIds.length} diff IDs`);
    }
    for (const l of m.layers) {
      if (l.urls && l.urls.length > 0 && !l.mediaType.includes('foreign')) continue;
      if (l.mediaType.includes('foreign') || l.mediaType.includes('nondistributable')) {
        throw new BerthError(`layer ${l.digest} is a foreign layer (${l.mediaType}); Berth does not fetch foreign layers`);
      }
    }
    // Which layers exist already (by chain ID), which blobs must be fetched.
    const chainIds: string[] = [];
    let parent: string | null = null;
    for (const d of diffIds) {
      parent = chainIdOf(parent, d);
      chainIds.push(parent);
    }
    const present = chainIds.map((c) => layers.has(c));
    const ids = m.layers.map((l) => shortDigest(l.digest));
    m.layers.forEach((l, i) => {
      if (present[i]) emit({ status: 'Already exists', progressDetail: {}, id: ids[i] });
      else emit({ status: 'Pulling fs layer', progressDetail: {}, id: ids[i] });
    });
    const seen = new Set<string>();
    m.layers.forEach((l: Descriptor, i) => {
      if (present[i] || seen.has(l.digest)) {
        downloads.push(Promise.resolve());
        return;
      }
      seen.add(l.digest);
      use(l.digest);
      const id = ids[i] as string;
      const p = ctx.downloader.fetch(r.client, l, (ev) => {
        const msg = layerEventMessage(id, ev);
        if (msg) emit(msg);
      }).then(({ downloaded }) => {
        if (!downloaded) {
          emit({ status: 'Verifying Checksum', progressDetail: {}, id });
          emit({ status: 'Download complete', progressDetail: {}, id });
        }
        ctx.sources.add(l.digest, ref.domain, ref.path);
      });
      p.catch(() => undefined);
      downloads.push(p);
    });
    // Extraction, bottom layer first, as soon as each blob is there.
    parent = null;
    for (let i = 0; i < m.layers.length; i++) {
      const l = m.layers[i] as Descriptor;
      const id = ids[i] as string;
      const chainId = chainIds[i] as string;
      if (present[i] && layers.has(chainId)) {
        layers.hold(holder, chainId);
        parent = chainId;
        continue;
      }
      await downloads[i];
      if (!content.has(l.digest)) {
        // A duplicate of an earlier layer's blob: that download put it in place.
        const first = m.layers.findIndex((x) => x.digest === l.digest);
        await downloads[first];
      }
      let last = -1;
      const step = Math.max(64 * 1024, Math.floor(l.size / 100));
      const rec = await layers.registerBlob(parent, { digest: l.digest, size: l.size, mediaType: l.mediaType }, diffIds[i], holder, (n) => {
        if (n - last < step && n < l.size) return;
        last = n;
        emit({ status: 'Extracting', progressDetail: { current: n, total: l.size }, progress: progressBar(n, l.size), id });
      });
      if (rec.chainId !== chainId) throw new BerthError(`layer ${l.digest} extracted to ${rec.chainId}, expected ${chainId}`);
      emit({ status: 'Pull complete', progressDetail: {}, id });
      parent = rec.chainId;
    }
    // The image and its references, atomically.
    const tags: ImageReference[] = [];
    if (ref.tag !== undefined && ref.digest === undefined) tags.push({ domain: ref.domain, path: ref.path, tag: ref.tag });
    tags.push({ domain: ref.domain, path: ref.path, digest: r.digest });
    const before = images.repo.getRef(refString(tags[0] as ImageReference));
    const existed = images.repo.get(configDesc.digest) !== undefined;
    images.createImage(configDesc.digest, parent, { holder, tags });
    createdImage = !existed;
    ctx.sources.flush();
    return { imageId: configDesc.digest, upToDate: existed && before?.image_id === configDesc.digest };
  } catch (e) {
    await Promise.allSettled(downloads);
    throw e instanceof RegistryError ? pullError(e, ref) : e;
  } finally {
    layers.release(holder);
    for (const d of used) unuseBlob(ctx, d);
    if (!createdImage && storedConfig && !images.repo.get(configDesc.digest)) content.delete(configDesc.digest);
    for (const d of used) if (d !== configDesc.digest) stashBlob(ctx, d);
  }
}

/** Statuses at the end of a pull, as dockerd prints them. */
export function finalStatus(ref: ImageReference, digest: string, upToDate: boolean, emit: Emit): void {
  emit({ status: `Digest: ${digest}` });
  emit({ status: upToDate ? `Status: Image is up to date for ${familiarString(ref)}` : `Status: Downloaded newer image for ${familiarString(ref)}` });
}

export function assertPullable(ref: ImageReference): void {
  if (ref.digest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(ref.digest)) {
    throw new InvalidParameterError(`unsupported digest algorithm: ${ref.digest}`);
  }
}
