import { ConflictError, InvalidParameterError, NotFoundError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { ImageRepo, ImageRefRow, ImageRow } from '../metadata/image-repo.js';
import type { ContentStore } from '../content/content-store.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import { Filters } from '../util/filters.js';
import type { Logger } from '../util/logger.js';
import { parseTimestampParam, rfc3339Nano } from '../util/time.js';
import { createdNano, parseImageConfig, type ImageConfigJson } from './image-config.js';
import { manifestSummary } from './image-manifest.js';
import {
  familiarName,
  familiarOf,
  familiarString,
  isValidTag,
  parseReference,
  refString,
  repoName,
  withDefaultTag,
  type ImageReference,
} from './reference.js';
import { goPathMatch } from '../util/go-path-match.js';

/** An image as the rest of Berth sees it. */
export interface ImageRecord {
  /** sha256:<hex> of the config. */
  id: string;
  /** Top layer's chain ID; null for an image without layers. */
  chainId: string | null;
  /** Local parent image ID (commit/build), '' when none. */
  parent: string;
  size: number;
  createdNano: bigint;
  lastTagNano: bigint;
  /** Canonical tag references (docker.io/library/busybox:latest). */
  tags: string[];
  /** Canonical digest references (name@sha256:…). */
  digests: string[];
  config: ImageConfigJson;
}

/** A container using an image (supplied by the containers service). */
export interface ImageUser {
  id: string;
  running: boolean;
}

export type ImageUsageChecker = (imageId: string) => ImageUser[];

export interface DeleteItem {
  Untagged?: string;
  Deleted?: string;
}

const ID_PREFIX_RE = /^(?:sha256:)?([a-f0-9]{1,64})$/;
const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

/**
 * Image records, references and their lifecycle (tag, untag, delete, prune), on top of the content store
 * (configs) and the layer store (rootfs layers).
 */
export class ImageService {
  private usage: ImageUsageChecker = () => [];
  private readonly log: Logger;
  private readonly configCache = new Map<string, ImageConfigJson>();

  constructor(
    readonly repo: ImageRepo,
    readonly layers: LayerStore,
    readonly content: ContentStore,
    readonly events: EventBus,
    log: Logger,
  ) {
    this.log = log.child({ sub: 'images' });
  }

  /** The containers service plugs in here so rmi/prune know which images are in use. */
  setUsageChecker(checker: ImageUsageChecker): void {
    this.usage = checker;
  }

  count(): number {
    return this.repo.count();
  }

  config(id: string): ImageConfigJson {
    let c = this.configCache.get(id);
    if (!c) {
      c = parseImageConfig(this.content.read(id), id);
      this.configCache.set(id, c);
    }
    return c;
  }

  private record(row: ImageRow, refs?: ImageRefRow[]): ImageRecord {
    const rs = refs ?? this.repo.refsOf(row.id);
    return {
      id: row.id,
      chainId: row.chain_id,
      parent: row.parent,
      size: Number(row.size),
      createdNano: row.created_nano,
      lastTagNano: row.last_tag_nano,
      tags: rs.filter((r) => r.kind === 'tag').map((r) => r.ref),
      digests: rs.filter((r) => r.kind === 'digest').map((r) => r.ref),
      config: this.config(row.id),
    };
  }

  get(id: string): ImageRecord | undefined {
    const row = this.repo.get(id);
    return row ? this.record(row) : undefined;
  }

  /** Finds an image by reference, full ID or ID prefix; undefined when none matches. */
  tryResolve(refOrId: string): ImageRecord | undefined {
    return this.lookup(refOrId).image;
  }

  /** Finds an image by reference, full ID or ID prefix, or throws 404 "No such image: …" (400 for a malformed ref). */
  resolve(refOrId: string): ImageRecord {
    const { image, notFound } = this.lookup(refOrId);
    if (!image) throw new NotFoundError(`No such image: ${notFound}`);
    return image;
  }

  private lookup(refOrId: string): { image?: ImageRecord; notFound: string; ref?: ImageReference } {
    if (/^sha256:[a-f0-9]{64}$/.test(refOrId)) {
      const row = this.repo.get(refOrId);
      return row ? { image: this.record(row), notFound: refOrId } : { notFound: refOrId };
    }
    let ref: ImageReference | undefined;
    let parseError: unknown;
    try {
      ref = withDefaultTag(parseReference(refOrId));
    } catch (e) {
      parseError = e;
    }
    if (ref) {
      const hit = this.repo.getRef(refString(ref));
      if (hit) {
        const row = this.repo.get(hit.image_id);
        if (row) return { image: this.record(row), notFound: familiarString(ref), ref };
      }
    }
    const m = ID_PREFIX_RE.exec(refOrId);
    if (m && (ref === undefined || (!refOrId.includes(':') && !refOrId.includes('/')))) {
      const ids = this.repo.byIdPrefix(`sha256:${m[1] as string}`);
      if (ids.length === 1) {
        const row = this.repo.get(ids[0] as string);
        if (row) return { image: this.record(row), notFound: refOrId };
      }
      if (ids.length > 1 && ref === undefined) throw new InvalidParameterError(`ambiguous image ID prefix ${refOrId}`);
    }
    if (!ref && parseError) throw parseError;
    return { notFound: ref ? familiarString(ref) : refOrId, ...(ref ? { ref } : {}) };
  }

  /** True when the argument names the image by (a prefix of) its ID rather than by a reference. */
  private isIdPrefix(id: string, refOrId: string): boolean {
    return id.startsWith(refOrId) || id.startsWith(`sha256:${refOrId}`);
  }

  // ---- creation (used by load, import, commit, pull) ----------------------------------------------

  /**
   * Stores an image whose config is already in the content store and whose top layer (chainId) is held by
   * `holder`; the image takes over the hold. Tags are set in the same transaction. Returns messages about
   * tags that moved from another image (dockerd's "renaming the old one" notice).
   */
  createImage(
    configDigest: string,
    chainId: string | null,
    opts: { holder?: string; parent?: string; tags?: ImageReference[] } = {},
  ): { image: ImageRecord; notices: string[] } {
    const config = this.config(configDigest);
    const chain = chainId ? this.layers.chain(chainId) : [];
    const size = chain.reduce((n, l) => n + l.size, 0);
    const now = BigInt(Date.now()) * 1_000_000n;
    const notices: string[] = [];
    const tagged: string[] = [];
    this.repo.db.transaction(() => {
      if (!this.repo.get(configDigest)) {
        this.repo.insert({
          id: configDigest,
          chain_id: chainId,
          parent: opts.parent ?? '',
          size,
          created_nano: createdNano(config.created),
          added_nano: now,
          last_tag_nano: 0n,
        });
      }
      if (opts.holder !== undefined && chainId !== null) this.layers.dropHold(opts.holder, chainId);
      for (const t of opts.tags ?? []) {
        const canonical = refString(t);
        const prev = this.repo.getRef(canonical);
        if (prev && prev.image_id !== configDigest) {
          notices.push(`The image ${familiarString(t)} already exists, renaming the old one with ID ${prev.image_id} to empty string`);
        }
        this.repo.setRef(canonical, configDigest, t.digest !== undefined ? 'digest' : 'tag', now);
        tagged.push(familiarString(t));
      }
      if ((opts.tags ?? []).length > 0) this.repo.setLastTagTime(configDigest, now);
    })();
    for (const t of tagged) this.events.publish('image', 'tag', configDigest, { name: t });
    return { image: this.get(configDigest) as ImageRecord, notices };
  }

  // ---- tag / untag / delete -----------------------------------------------------------------------

  /** POST /images/{name}/tag?repo=&tag= */
  tag(source: string, repo: string, tag: string | undefined): void {
    const img = this.resolve(source);
    if (tag !== undefined && tag !== '' && !isValidTag(tag)) throw new InvalidParameterError(`invalid tag format`);
    let ref: ImageReference;
    try {
      ref = parseReference(repo);
    } catch (e) {
      throw e;
    }
    if (ref.digest !== undefined) throw new InvalidParameterError('refusing to create a tag with a digest reference');
    if (tag !== undefined && tag !== '') {
      if (ref.tag !== undefined) throw new InvalidParameterError('invalid reference format');
      ref = { ...ref, tag };
    }
    ref = withDefaultTag(ref);
    const now = BigInt(Date.now()) * 1_000_000n;
    this.repo.db.transaction(() => {
      this.repo.setRef(refString(ref), img.id, 'tag', now);
      this.repo.setLastTagTime(img.id, now);
    })();
    this.events.publish('image', 'tag', img.id, { name: familiarString(ref) });
  }

  private removeRef(canonical: string, imageId: string, records: DeleteItem[]): void {
    this.repo.deleteRef(canonical);
    records.push({ Untagged: familiarOf(canonical) });
    this.events.publish('image', 'untag', imageId, { name: imageId });
  }

  private isSingleReference(refs: ImageRefRow[]): boolean {
    let tags = 0;
    const names = new Set<string>();
    for (const r of refs) {
      const p = parseReference(r.ref);
      names.add(repoName(p));
      if (r.kind === 'tag') tags++;
    }
    return tags <= 1 && names.size <= 1;
  }

  private conflict(id: string, hard: boolean, message: string): ConflictError {
    return new ConflictError(`conflict: unable to delete ${short(id)} (${hard ? 'cannot be forced' : 'must be forced'}) - ${message}`);
  }

  /** Docker's checkImageDeleteConflict: children and running containers are hard, refs and stopped containers soft. */
  private checkConflict(id: string, soft: boolean, checkRefs: boolean): { err: ConflictError; used: boolean } | undefined {
    if (this.repo.children(id).length > 0) return { err: this.conflict(id, true, 'image has dependent child images'), used: false };
    const users = this.usage(id);
    const running = users.find((u) => u.running);
    if (running) return { err: this.conflict(id, true, `image is being used by running container ${short(running.id)}`), used: true };
    if (!soft) return undefined;
    if (checkRefs && this.repo.refsOf(id).length > 0) return { err: this.conflict(id, false, 'image is referenced in multiple repositories'), used: false };
    const stopped = users.find((u) => !u.running);
    if (stopped) return { err: this.conflict(id, false, `image is being used by stopped container ${short(stopped.id)}`), used: true };
    return undefined;
  }

  /** DELETE /images/{name}: untag or delete, as dockerd's ImageDelete. */
  remove(refOrId: string, opts: { force?: boolean; noprune?: boolean } = {}): DeleteItem[] {
    const force = opts.force ?? false;
    const prune = !(opts.noprune ?? false);
    const img = this.resolve(refOrId);
    const records: DeleteItem[] = [];
    let refs = this.repo.refsOf(img.id);
    let removedRepositoryRef = false;
    if (!this.isIdPrefix(img.id, refOrId)) {
      if (!force && this.isSingleReference(refs)) {
        const user = this.usage(img.id)[0];
        if (user) {
          throw new ConflictError(
            `conflict: unable to remove repository reference "${refOrId}" (must force) - container ${short(user.id)} is using its referenced image ${short(img.id)}`,
          );
        }
      }
      const parsed = withDefaultTag(parseReference(refOrId));
      const canonical = refString(parsed);
      this.removeRef(canonical, img.id, records);
      refs = this.repo.refsOf(img.id);
      if (parsed.digest === undefined) {
        const name = repoName(parsed);
        const sameRepoTag = refs.some((r) => r.kind === 'tag' && repoName(parseReference(r.ref)) === name);
        if (!sameRepoTag) {
          for (const r of refs) {
            if (r.kind === 'digest' && repoName(parseReference(r.ref)) === name) this.removeRef(r.ref, img.id, records);
          }
          refs = this.repo.refsOf(img.id);
        }
      }
      if (refs.length > 0) return records;
      removedRepositoryRef = true;
    } else if (this.isSingleReference(refs)) {
      const c = this.checkConflict(img.id, !force, false);
      if (c) throw c.err;
      for (const r of refs) this.removeRef(r.ref, img.id, records);
    }
    this.deleteHelper(img.id, records, force, prune, removedRepositoryRef);
    return records;
  }

  private deleteHelper(id: string, records: DeleteItem[], force: boolean, prune: boolean, quiet: boolean): void {
    const c = this.checkConflict(id, !force, true);
    if (c) {
      // dockerd's parent pruning stops quietly at a parent that is not dangling (tagged, or a parent of other images
      // too) or is in use; only a dangling unused parent's conflict is reported.
      const dangling = this.repo.refsOf(id).length === 0 && this.repo.children(id).length === 0;
      if (quiet && (!dangling || c.used)) return;
      throw c.err;
    }
    const row = this.repo.get(id);
    if (!row) return;
    for (const r of this.repo.refsOf(id)) this.removeRef(r.ref, id, records);
    this.repo.delete(id);
    this.configCache.delete(id);
    this.events.publish('image', 'delete', id, { name: id });
    records.push({ Deleted: id });
    if (row.chain_id) for (const chain of this.layers.gc(row.chain_id)) records.push({ Deleted: chain });
    this.content.delete(id);
    if (prune && row.parent !== '' && this.repo.get(row.parent)) this.deleteHelper(row.parent, records, false, true, true);
  }

  // ---- list / inspect / history / prune -----------------------------------------------------------

  /** GET /images/json */
  /**
   * GET /images/json. `sharedSize`: SharedSize is the size of the image's layers that other images use too (else -1,
   * as dockerd leaves it). `manifests` (API 1.47+): each image gets `Manifests`, the summary of the manifest Berth
   * describes it by (empty when its layers keep no blobs).
   */
  list(opts: { all?: boolean; filters?: string; digests?: boolean; sharedSize?: boolean; manifests?: boolean } = {}): Record<string, unknown>[] {
    const f = Filters.parse(opts.filters, ['dangling', 'label', 'label!', 'before', 'since', 'reference', 'until']);
    const dangling = f.bool('dangling');
    const before = f.has('before') ? this.resolve(f.get('before')[0] as string).createdNano : undefined;
    const since = f.has('since') ? this.resolve(f.get('since')[0] as string).createdNano : undefined;
    const until = f.has('until') ? parseTimestampParam('until', f.get('until')[0] as string) : undefined;
    const refsByImage = new Map<string, ImageRefRow[]>();
    for (const r of this.repo.allRefs()) {
      const list = refsByImage.get(r.image_id) ?? [];
      list.push(r);
      refsByImage.set(r.image_id, list);
    }
    const out: Record<string, unknown>[] = [];
    const rows = this.repo.all();
    const hasChildren = new Set(rows.map((r) => r.parent).filter((p) => p !== ''));
    // How many images use each layer (by chain ID), over every image as dockerd counts them, not only those listed.
    const layerUsers = new Map<string, number>();
    if (opts.sharedSize) {
      for (const row of rows) {
        if (row.chain_id) for (const l of this.layers.chain(row.chain_id)) layerUsers.set(l.chainId, (layerUsers.get(l.chainId) ?? 0) + 1);
      }
    }
    for (const row of rows) {
      const img = this.record(row, refsByImage.get(row.id) ?? []);
      if (before !== undefined && !(img.createdNano < before)) continue;
      if (since !== undefined && !(img.createdNano > since)) continue;
      if (until !== undefined && !(img.createdNano < until)) continue;
      const labels = img.config.config?.Labels ?? {};
      if (!f.matchesLabels(labels)) continue;
      if (f.has('label!') && f.get('label!').some((t) => f.matchesLabels(labels) && labelHolds(labels, t))) continue;
      let repoTags = img.tags.map(familiarOf);
      const repoDigests = img.digests.map(familiarOf);
      if (f.has('reference')) {
        const patterns = f.get('reference');
        repoTags = repoTags.filter((t) => patterns.some((p) => referenceMatches(p, t)));
        if (repoTags.length === 0) continue;
      }
      const isDangling = img.tags.length === 0 && img.digests.length === 0;
      if (dangling === true && !isDangling) continue;
      if (dangling === false && isDangling) continue;
      if (isDangling && !opts.all && hasChildren.has(row.id)) continue; // intermediate build image
      const chain = img.chainId && (opts.sharedSize || opts.manifests) ? this.layers.chain(img.chainId) : [];
      const summary: Record<string, unknown> = {
        Containers: -1,
        Created: Number(img.createdNano / 1_000_000_000n),
        Id: img.id,
        Labels: labels,
        ParentId: img.parent,
        RepoDigests: repoDigests,
        RepoTags: repoTags,
        SharedSize: opts.sharedSize ? chain.reduce((n, l) => n + ((layerUsers.get(l.chainId) ?? 0) > 1 ? l.size : 0), 0) : -1,
        Size: img.size,
      };
      if (opts.manifests) {
        const m = manifestSummary({
          configDigest: img.id,
          configSize: this.content.has(img.id) ? this.content.size(img.id) : 0,
          layers: chain,
          platform: { architecture: img.config.architecture ?? '', os: img.config.os ?? '', ...(img.config.variant ? { variant: img.config.variant } : {}) },
          unpackedSize: img.size,
          containers: this.usage(img.id).map((u) => u.id),
        });
        summary.Manifests = m ? [m] : [];
      }
      out.push(summary);
    }
    return out;
  }

  /** GET /images/{name}/json */
  inspect(refOrId: string): Record<string, unknown> {
    const img = this.resolve(refOrId);
    const c = img.config;
    const layers = img.chainId ? this.layers.chain(img.chainId) : [];
    const top = layers[layers.length - 1];
    let graphData: Record<string, string> | null = null;
    if (top && this.layers.driver === 'overlay2') {
      const lower = layers.slice(0, -1).reverse().map((l) => l.dir);
      graphData = {
        ...(lower.length > 0 ? { LowerDir: lower.join(':') } : {}),
        MergedDir: `${this.layers.layerDir(top.chainId)}/merged`,
        UpperDir: top.dir,
        WorkDir: `${this.layers.layerDir(top.chainId)}/work`,
      };
    } else if (top) {
      graphData = { Dir: top.dir };
    }
    const out: Record<string, unknown> = {
      Id: img.id,
      RepoTags: img.tags.map(familiarOf),
      RepoDigests: img.digests.map(familiarOf),
      Parent: img.parent,
      Comment: c.comment ?? '',
      Created: c.created ?? '',
      DockerVersion: c.docker_version ?? '',
      Author: c.author ?? '',
      Config: c.config ?? {},
      Architecture: c.architecture ?? '',
      ...(c.variant ? { Variant: c.variant } : {}),
      Os: c.os ?? '',
      ...(c['os.version'] ? { OsVersion: c['os.version'] } : {}),
      Size: img.size,
      GraphDriver: { Data: graphData, Name: this.layers.driver },
      RootFS: { Type: c.rootfs.type || 'layers', ...(c.rootfs.diff_ids.length > 0 ? { Layers: c.rootfs.diff_ids } : {}) },
      Metadata: { LastTagTime: img.lastTagNano > 0n ? rfc3339Nano(img.lastTagNano) : '0001-01-01T00:00:00Z' },
    };
    return out;
  }

  /** GET /images/{name}/history: newest first, like dockerd. */
  history(refOrId: string): Record<string, unknown>[] {
    const img = this.resolve(refOrId);
    const layers = img.chainId ? this.layers.chain(img.chainId) : [];
    const out: Record<string, unknown>[] = [];
    let layerIndex = 0;
    for (const h of img.config.history ?? []) {
      let size = 0;
      if (!h.empty_layer) {
        size = layers[layerIndex]?.size ?? 0;
        layerIndex++;
      }
      out.push({
        Comment: h.comment ?? '',
        Created: Number(createdNano(h.created) / 1_000_000_000n),
        CreatedBy: h.created_by ?? '',
        Id: '<missing>',
        Size: size,
        Tags: null,
      });
    }
    out.reverse();
    const first = out[0];
    if (first) {
      first.Id = img.id;
      first.Tags = img.tags.length > 0 ? img.tags.map(familiarOf) : null;
    }
    return out;
  }

  /** POST /images/prune */
  prune(filters: string | undefined): { ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number } {
    const f = Filters.parse(filters, ['dangling', 'label', 'label!', 'until']);
    const danglingOnly = f.has('dangling') ? (f.bool('dangling') ?? true) : true;
    const until = f.has('until') ? parseTimestampParam('until', f.get('until')[0] as string) : undefined;
    const deleted: DeleteItem[] = [];
    let reclaimed = 0;
    const rows = this.repo.all();
    const parents = new Set(rows.map((r) => r.parent).filter((p) => p !== ''));
    const sizes = new Map<string, number>();
    for (const row of rows) {
      if (parents.has(row.id)) continue; // only heads, as dockerd
      const img = this.get(row.id);
      if (!img) continue;
      const isDangling = img.tags.length === 0 && img.digests.length === 0;
      if (danglingOnly && !isDangling) continue;
      if (until !== undefined && !(img.createdNano < until)) continue;
      const labels = img.config.config?.Labels ?? {};
      if (!f.matchesLabels(labels)) continue;
      if (f.has('label!') && f.get('label!').some((t) => labelHolds(labels, t))) continue;
      if (this.usage(img.id).length > 0) continue;
      if (img.chainId) for (const l of this.layers.chain(img.chainId)) sizes.set(l.chainId, l.size);
      try {
        const records: DeleteItem[] = [];
        if (isDangling) records.push(...this.remove(img.id, { force: false, noprune: false }));
        else for (const t of [...img.tags, ...img.digests]) if (this.repo.getRef(t)) records.push(...this.remove(t, { force: false, noprune: false }));
        for (const r of records) if (r.Deleted && sizes.has(r.Deleted)) reclaimed += sizes.get(r.Deleted) ?? 0;
        deleted.push(...records);
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
        this.log.debug({ image: img.id, err: e.message }, 'prune skipped an image');
      }
    }
    if (deleted.length > 0) this.events.publish('image', 'prune', '', { reclaimed: String(reclaimed) });
    return { ImagesDeleted: deleted.length > 0 ? deleted : null, SpaceReclaimed: reclaimed };
  }

  /** Names for save: a name-only reference means every tag of that repository (dockerd's exporter). */
  expandForSave(names: readonly string[]): { image: ImageRecord; tags: string[] }[] {
    const byId = new Map<string, { image: ImageRecord; tags: string[] }>();
    const add = (image: ImageRecord, tag?: string): void => {
      const e = byId.get(image.id) ?? { image, tags: [] };
      if (tag !== undefined && !e.tags.includes(tag)) e.tags.push(tag);
      byId.set(image.id, e);
    };
    for (const name of names) {
      let parsed: ImageReference | undefined;
      try {
        parsed = parseReference(name);
      } catch {
        parsed = undefined;
      }
      if (parsed && parsed.tag === undefined && parsed.digest === undefined && !this.looksLikeId(name)) {
        const repo = repoName(parsed);
        const hits = this.repo.allRefs().filter((r) => r.kind === 'tag' && repoName(parseReference(r.ref)) === repo);
        if (hits.length > 0) {
          for (const h of hits) add(this.get(h.image_id) as ImageRecord, familiarOf(h.ref));
          continue;
        }
      }
      const img = this.resolve(name);
      if (parsed && !this.isIdPrefix(img.id, name)) {
        const full = withDefaultTag(parsed);
        if (full.digest === undefined) add(img, familiarString(full));
        else add(img);
      } else add(img);
    }
    return [...byId.values()];
  }

  private looksLikeId(name: string): boolean {
    const m = ID_PREFIX_RE.exec(name);
    return m !== null && this.repo.byIdPrefix(`sha256:${m[1] as string}`).length > 0;
  }

  familiarName(ref: ImageReference): string {
    return familiarName(ref);
  }
}

function safeParse(s: string): ImageReference | undefined {
  try {
    return parseReference(s);
  } catch {
    return undefined;
  }
}

function labelHolds(labels: Record<string, string>, term: string): boolean {
  const i = term.indexOf('=');
  if (i < 0) return Object.prototype.hasOwnProperty.call(labels, term);
  return labels[term.slice(0, i)] === term.slice(i + 1);
}

/** Docker's reference filter: the pattern matches the familiar "name:tag" or just the familiar name. */
function referenceMatches(pattern: string, familiarTag: string): boolean {
  if (goPathMatch(pattern, familiarTag)) return true;
  const name = familiarTag.replace(/:[^:/]+$/, '');
  return goPathMatch(pattern, name);
}
