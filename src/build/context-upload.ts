// The uploaded build context, received once: decompressed, hashed and scanned for the Dockerfile and .dockerignore
// while it streams in. A small context stays in memory (a fully cached rebuild writes nothing to disk and reads
// nothing back); a large one spills to a file as it arrives. The tree is unpacked only when a step first reads it.

import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { InvalidParameterError } from '../errors.js';
import { ByteReader } from '../archive/byte-reader.js';
import { decompressStream } from '../archive/decompress.js';
import { readTar } from '../archive/tar-reader.js';
import { applyTar } from '../snapshots/layer-apply.js';
import { dockerfileRel } from './build-context.js';
import { cleanPath } from './dockerignore.js';

/** Contexts up to this size are held in memory; larger ones go to the spill file. */
const MEMORY_LIMIT = 16 * 1024 * 1024;
/** Dockerfile and .dockerignore members larger than this are left to the unpacked tree. */
const MAX_BUILD_FILE = 64 * 1024 * 1024;

export interface BuildFiles {
  text: string;
  /** The Dockerfile's path in the context (the default also tries `dockerfile`). */
  name: string;
  ignore?: string;
}

export interface ReceivedContext {
  /** sha256 of the decompressed tar: the same context gives the same digest. */
  digest: string;
  /** The Dockerfile and .dockerignore when both are plain members; undefined when only the tree can tell. */
  found: BuildFiles | undefined;
  /** Unpacks the tar into `dir` (created), then lets go of the held bytes. */
  unpack(dir: string): Promise<void>;
  /** Lets go of the held bytes and removes the spill file. */
  dispose(): void;
}

/** Receives an uploaded (possibly compressed) context tar; the file at `spillPath()` is written only when it is large. */
export async function receiveContext(
  body: Readable,
  dockerfile: string,
  spillPath: () => string,
  memoryLimit = MEMORY_LIMIT,
): Promise<ReceivedContext> {
  const rel = dockerfileRel(dockerfile);
  const wanted = new Set([rel, '.dockerignore', ...(dockerfile === 'Dockerfile' ? ['dockerfile'] : [])]);
  const d = await decompressStream(body);
  const hash = createHash('sha256');
  let held: Buffer[] = [];
  let heldLen = 0;
  let spill: FileHandle | undefined;
  let spillFile = '';
  let spilled = 0;
  let writing: Promise<unknown> = Promise.resolve();
  const dispose = (): void => {
    held = [];
    if (spill !== undefined) {
      const fh = spill;
      void writing.finally(() => fh.close()).catch(() => undefined);
      spill = undefined;
      rmSync(spillFile, { force: true });
    }
  };
  // Every chunk is hashed and kept (in memory, or written with one write in flight) as the tar reader pulls it.
  async function* tee(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const c of src) {
      hash.update(c);
      if (spill === undefined && heldLen + c.length <= memoryLimit) {
        held.push(c);
        heldLen += c.length;
      } else {
        if (spill === undefined) {
          spillFile = spillPath();
          spill = await open(spillFile, 'w', 0o600);
          const first = Buffer.concat(held, heldLen);
          held = [];
          heldLen = 0;
          await spill.write(first, 0, first.length, 0);
          spilled = first.length;
        }
        await writing;
        writing = spill.write(c, 0, c.length, spilled);
        spilled += c.length;
      }
      yield c;
    }
    await writing;
  }
  const members = new Map<string, Buffer | null>();
  try {
    for await (const e of readTar(new ByteReader(tee(d.stream)), { lenientEnd: true })) {
      const n = cleanPath(e.header.name).replace(/^\/+/, '');
      if (!wanted.has(n)) continue;
      if (e.header.type !== 'file' || e.header.size > MAX_BUILD_FILE) {
        members.set(n, null);
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const c of e.body) chunks.push(c);
      members.set(n, Buffer.concat(chunks));
    }
  } catch (e) {
    d.stream.destroy();
    dispose();
    throw new InvalidParameterError(`failed to read the build context: ${(e as Error).message}`);
  }
  return {
    digest: hash.digest('hex'),
    found: buildFiles(members, rel, dockerfile),
    unpack: async (dir) => {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const source = spill !== undefined ? createReadStream(spillFile) : Readable.from(held);
      try {
        await applyTar(readTar(new ByteReader(source), { lenientEnd: true }), dir, 'naive');
      } catch (e) {
        source.destroy();
        throw new InvalidParameterError(`failed to read the build context: ${(e as Error).message}`);
      } finally {
        dispose();
      }
    },
    dispose,
  };
}

/** The Dockerfile and .dockerignore found among the members; undefined when one is a link or special file. */
function buildFiles(members: Map<string, Buffer | null>, rel: string, dockerfile: string): BuildFiles | undefined {
  let used = rel;
  let df = members.get(rel);
  if (df === undefined && dockerfile === 'Dockerfile') {
    used = 'dockerfile';
    df = members.get('dockerfile');
  }
  const ignore = members.get('.dockerignore');
  // a link or special file, or a member under a symlinked directory: resolved in the unpacked tree
  if (df === null || df === undefined || ignore === null) return undefined;
  return { text: df.toString('utf8'), name: used, ...(ignore ? { ignore: ignore.toString('utf8') } : {}) };
}
