import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { runTool } from '../util/run-tool.js';
import type { Logger } from '../util/logger.js';
import type { LayerRepo, LayerRow } from '../metadata/layer-repo.js';
import type { ContentStore } from '../content/content-store.js';
import { applyLayerStream, LayerApplyError } from './layer-apply.js';

export type StorageDriverName = 'overlay2' | 'vfs';

export interface LayerRecord {
  chainId: string;
  diffId: string;
  parent: string | null;
  /** Bytes of file content in this layer alone. */
  size: number;
  /** The blob as received (compressed or not), kept in the content store so save/push emit the same bytes. */
  blob: { digest: string; size: number; mediaType: string } | null;
  /** Layer directory: the diff (overlay2) or the full tree (vfs). */
  dir: string;
  createdNano: number;
}

/** The layer's diff ID was not what the image config promised (or the blob was corrupt). */
export class LayerDigestError extends Error {}

/** Docker's chain ID: diff ID for a base layer, else sha256 of "<parent chain ID> <diff ID>". */
export function chainIdOf(parent: string | null, diffId: string): string {
  if (parent === null) return diffId;
  return `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`;
}

export function chainIdsOf(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  let parent: string | null = null;
  for (const d of diffIds) {
    parent = chainIdOf(parent, d);
    out.push(parent);
  }
  return out;
}

const hex = (digest: string): string => digest.slice('sha256:'.length);

function shortId(): string {
  // 26 characters like Docker's l/ links: keeps long lowerdir lists short.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = randomBytes(26);
  let s = '';
  for (const b of bytes) s += alphabet[b & 31];
  return s;
}

/**
 * Extracted layers under <data-root>/layers/<chain-id hex>/diff, identified by chain ID, kept while an image,
 * a child layer or a holder (a container, a load in progress) references them. Each layer is extracted once.
 */
export class LayerStore {
  readonly root: string;
  private readonly linkDir: string;
  private readonly inflight = new Map<string, Promise<LayerRecord>>();
  private readonly log: Logger;

  constructor(
    dataRoot: string,
    readonly driver: StorageDriverName,
    private readonly repo: LayerRepo,
    private readonly content: ContentStore,
    log: Logger,
  ) {
    this.root = join(dataRoot, 'layers');
    this.linkDir = join(this.root, 'l');
    this.log = log.child({ sub: 'layers' });
    mkdirSync(this.linkDir, { recursive: true, mode: 0o700 });
  }

  private toRecord(r: LayerRow): LayerRecord {
    return {
      chainId: r.chain_id,
      diffId: r.diff_id,
      parent: r.parent,
      size: r.size,
      blob: r.blob_digest ? { digest: r.blob_digest, size: r.blob_size ?? 0, mediaType: r.blob_media_type ?? '' } : null,
      dir: this.diffDir(r.chain_id),
      createdNano: r.created_nano,
    };
  }

  layerDir(chainId: string): string {
    return join(this.root, hex(chainId));
  }

  diffDir(chainId: string): string {
    return join(this.layerDir(chainId), 'diff');
  }

  get(chainId: string): LayerRecord | undefined {
    const r = this.repo.get(chainId);
    return r ? this.toRecord(r) : undefined;
  }

  has(chainId: string): boolean {
    return this.repo.get(chainId) !== undefined;
  }

  /** The layers of a chain, bottom first. */
  chain(chainId: string): LayerRecord[] {
    const out: LayerRecord[] = [];
    let cur: string | null = chainId;
    while (cur !== null) {
      const r = this.repo.get(cur);
      if (!r) throw new Error(`layer ${cur} is missing from the layer store`);
      out.push(this.toRecord(r));
      cur = r.parent;
    }
    return out.reverse();
  }

  /**
   * The directories a container's root is made of, top-most first: every diff dir of the chain for overlay2
   * (use as lowerdir, joined by ':'); the single full tree for vfs.
   */
  lowerDirs(chainId: string): string[] {
    if (this.driver === 'vfs') return [this.diffDir(chainId)];
    return this.chain(chainId)
      .reverse()
      .map((l) => l.dir);
  }

  /** Like lowerDirs but as short names relative to `base` (`l/<26 chars>`), for chains too long for one mount page. */
  shortLowerDirs(chainId: string): { base: string; dirs: string[] } {
    if (this.driver === 'vfs') return { base: this.root, dirs: [join(hex(chainId), 'diff')] };
    const dirs = this.chain(chainId)
      .reverse()
      .map((l) => `l/${this.repo.get(l.chainId)?.short_id ?? ''}`);
    return { base: this.root, dirs };
  }

  /** Keeps a layer (and its chain) alive for `holder` (a container ID, a build...) until release(). */
  hold(holder: string, chainId: string): void {
    if (!this.has(chainId)) throw new Error(`layer ${chainId} does not exist`);
    this.repo.hold(holder, chainId);
  }

  /** Drops one hold and removes whatever is no longer referenced. */
  release(holder: string, chainId?: string): void {
    const chains = chainId === undefined ? this.repo.unholdAll(holder) : (this.repo.unhold(holder, chainId), [chainId]);
    for (const c of chains) this.gc(c);
  }

  /**
   * Makes a container's writable layer directories: <dir>/upper (0755) and <dir>/work (0700) for overlay2.
   * For vfs, <dir>/rootfs is a full copy of the image's tree (the container writes there directly).
   */
  async createRwLayer(dir: string, chainId: string | null): Promise<{ upper: string; work: string } | { rootfs: string }> {
    mkdirSync(dir, { recursive: true, mode: 0o710 });
    if (this.driver === 'vfs') {
      const rootfs = join(dir, 'rootfs');
      if (chainId === null) mkdirSync(rootfs, { mode: 0o755 });
      else await runTool(this.log, 'cp', ['-a', '--reflink=auto', this.diffDir(chainId), rootfs]);
      return { rootfs };
    }
    const upper = join(dir, 'upper');
    const work = join(dir, 'work');
    mkdirSync(upper, { mode: 0o755 });
    mkdirSync(work, { mode: 0o700 });
    return { upper, work };
  }

  /**
   * Extracts a blob from the content store on top of `parent`, holding the result for `holder`. When
   * `expectedDiffId` is known and the layer already exists, nothing is extracted. A diff ID mismatch fails
   * and leaves nothing behind.
   */
  async registerBlob(
    parent: string | null,
    blob: { digest: string; size: number; mediaType: string },
    expectedDiffId: string | undefined,
    holder: string,
    onProgress?: (bytes: number) => void,
  ): Promise<LayerRecord> {
    if (expectedDiffId !== undefined) {
      const chainId = chainIdOf(parent, expectedDiffId);
      const existing = await this.waitInflight(chainId);
      if (existing) {
        this.repo.hold(holder, chainId);
        return existing;
      }
    }
    // 1 MiB reads: with the default 64 KiB, a 200 MB layer costs thousands of read + stream round trips.
    const source = this.content.createReadStream(blob.digest, 1 << 20);
    if (onProgress) {
      let n = 0;
      source.on('data', (c: Buffer) => {
        n += c.length;
        onProgress(n);
      });
    }
    return this.extract(parent, source, blob, expectedDiffId, holder);
  }

  private async waitInflight(chainId: string): Promise<LayerRecord | undefined> {
    const p = this.inflight.get(chainId);
    if (p) await p.catch(() => undefined);
    return this.get(chainId);
  }

  private async extract(
    parent: string | null,
    source: Readable,
    blob: { digest: string; size: number; mediaType: string } | null,
    expectedDiffId: string | undefined,
    holder: string,
  ): Promise<LayerRecord> {
    if (parent !== null && !this.has(parent)) throw new Error(`parent layer ${parent} does not exist`);
    const tmp = join(this.root, `tmp-${randomBytes(8).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o710 });
    const diff = join(tmp, 'diff');
    let settle: ((r: LayerRecord | undefined) => void) | undefined;
    let registeredKey: string | undefined;
    try {
      if (this.driver === 'vfs' && parent !== null) {
        await runTool(this.log, 'cp', ['-a', '--reflink=auto', this.diffDir(parent), diff]);
      } else {
        mkdirSync(diff, { mode: 0o755 });
      }
      if (expectedDiffId !== undefined) {
        const key = chainIdOf(parent, expectedDiffId);
        registeredKey = key;
        const pending = new Promise<LayerRecord>((resolve, reject) => {
          settle = (r) => (r ? resolve(r) : reject(new Error('layer extraction failed')));
        });
        pending.catch(() => undefined); // waiters look the layer up again; a failure is reported to the extractor
        this.inflight.set(key, pending);
      }
      let applied;
      try {
        applied = await applyLayerStream(source, diff, this.driver === 'vfs' ? 'naive' : 'overlay', blob?.digest);
      } catch (e) {
        if (e instanceof LayerApplyError) throw e;
        throw new LayerApplyError(`failed to extract layer${blob ? ` ${blob.digest}` : ''}: ${(e as Error).message}`, { cause: e });
      }
      for (const w of applied.warnings) this.log.warn({ layer: applied.diffId }, w);
      if (expectedDiffId !== undefined && applied.diffId !== expectedDiffId) {
        throw new LayerDigestError(`layer digest mismatch: the image config expects ${expectedDiffId}, the layer${blob ? ` ${blob.digest}` : ''} has ${applied.diffId}`);
      }
      const chainId = chainIdOf(parent, applied.diffId);
      const existing = this.get(chainId);
      if (existing) {
        // Same content arrived by another path (import of an identical tar): keep the first copy.
        rmSync(tmp, { recursive: true, force: true });
        this.repo.hold(holder, chainId);
        settle?.(existing);
        return existing;
      }
      const dir = this.layerDir(chainId);
      rmSync(dir, { recursive: true, force: true }); // an orphan from a crash
      renameSync(tmp, dir);
      const short = shortId();
      const row: LayerRow = {
        chain_id: chainId,
        diff_id: applied.diffId,
        parent,
        short_id: short,
        size: applied.size,
        blob_digest: blob?.digest ?? null,
        blob_size: blob?.size ?? null,
        blob_media_type: blob?.mediaType ?? null,
        created_nano: Date.now() * 1e6,
      };
      this.repo.db.transaction(() => {
        this.repo.insert(row);
        this.repo.hold(holder, chainId);
      })();
      rmSync(join(this.linkDir, short), { force: true });
      symlinkSync(join('..', hex(chainId), 'diff'), join(this.linkDir, short));
      const rec = this.toRecord(row);
      settle?.(rec);
      return rec;
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      settle?.(undefined);
      throw e;
    } finally {
      if (registeredKey !== undefined) this.inflight.delete(registeredKey);
    }
  }

  /** How many layers were extracted from this blob (0: the blob may go). */
  layerUsersOfBlob(digest: string): number {
    return this.repo.blobUsers(digest);
  }

  /** Drops a hold without removing anything (the caller now references the layer another way, in its transaction). */
  dropHold(holder: string, chainId: string): void {
    this.repo.unhold(holder, chainId);
  }

  /** Removes a layer that nothing references any more, then its parent if that became unreferenced; returns the removed chain IDs. */
  gc(chainId: string): string[] {
    const removed: string[] = [];
    let cur: string | null = chainId;
    while (cur !== null) {
      const row = this.repo.get(cur);
      if (!row || this.repo.isReferenced(cur)) return removed;
      this.repo.delete(cur);
      rmSync(join(this.linkDir, row.short_id), { force: true });
      rmSync(this.layerDir(cur), { recursive: true, force: true });
      if (row.blob_digest && this.repo.blobUsers(row.blob_digest) === 0) this.content.delete(row.blob_digest);
      this.log.debug({ chainId: cur }, 'layer removed');
      removed.push(cur);
      cur = row.parent;
    }
    return removed;
  }

  /**
   * Start-up repair: drops holds of operations that died with the previous daemon (`tmp:` holders),
   * removes half-extracted and unknown directories, and every layer nothing references.
   */
  cleanup(): void {
    for (const h of this.repo.holdersLike('tmp:%')) this.repo.unholdAll(h);
    const known = new Map(this.repo.all().map((r) => [hex(r.chain_id), r]));
    for (const name of readdirSync(this.root)) {
      if (name === 'l') continue;
      if (!known.has(name)) {
        this.log.info({ dir: name }, 'removing orphan layer directory');
        rmSync(join(this.root, name), { recursive: true, force: true });
      }
    }
    const shorts = new Set([...known.values()].map((r) => r.short_id));
    for (const name of readdirSync(this.linkDir)) {
      if (!shorts.has(name)) rmSync(join(this.linkDir, name), { force: true });
    }
    for (const r of known.values()) {
      const link = join(this.linkDir, r.short_id);
      let ok = false;
      try {
        ok = lstatSync(link).isSymbolicLink() && readlinkSync(link) === join('..', hex(r.chain_id), 'diff');
      } catch {
        ok = false;
      }
      if (!ok) {
        rmSync(link, { force: true });
        symlinkSync(join('..', hex(r.chain_id), 'diff'), link);
      }
      if (!existsSync(this.diffDir(r.chain_id))) this.log.error({ chainId: r.chain_id }, 'layer directory is missing');
    }
    for (const r of this.repo.all()) this.gc(r.chain_id);
  }

  /** Temp holder names for an operation in progress (released at start-up if the daemon dies). */
  static tempHolder(what: string): string {
    return `tmp:${what}:${randomBytes(6).toString('hex')}`;
  }
}
