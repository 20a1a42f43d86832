import { open, stat, type FileHandle } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';

/** One entry of a json-file log as the shim writes it. */
export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** The payload bytes (a line with its "\n", or a partial chunk without). */
  data: Buffer;
  /** RFC 3339 with nanoseconds, as stored. */
  time: string;
  timeNano: bigint;
}

export interface LogReadOptions {
  stdout: boolean;
  stderr: boolean;
  /** Nanoseconds; entries before it are skipped. */
  since?: bigint;
  /** Nanoseconds; entries after it are skipped (and follow stops there). */
  until?: bigint;
  /** Only the last N entries of what exists now (undefined: all). */
  tail?: number;
  follow: boolean;
  /** Resolves when the container has stopped: a follower drains what is left, then ends. */
  stopped?: Promise<void>;
  signal?: AbortSignal;
  maxFile: number;
}

function timeToNano(t: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return 0n;
  const ms = Date.parse(`${m[1] ?? ''}${m[3] ?? 'Z'}`);
  const frac = BigInt((m[2] ?? '').slice(0, 9).padEnd(9, '0') || '0');
  return BigInt(ms) * 1_000_000n + frac;
}

function parseLine(line: Buffer): LogEntry | undefined {
  try {
    const j = JSON.parse(line.toString('utf8')) as { log?: string; stream?: string; time?: string };
    if (typeof j.log !== 'string' || (j.stream !== 'stdout' && j.stream !== 'stderr')) return undefined;
    const time = j.time ?? '';
    return { stream: j.stream, data: Buffer.from(j.log, 'utf8'), time, timeNano: timeToNano(time) };
  } catch {
    return undefined; // a torn last line from a crash is skipped, as dockerd does
  }
}

/** Splits a chunked byte stream into lines, keeping the unterminated rest for the next chunk. */
class LineSplitter {
  private rest: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    const buf = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    const lines: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      lines.push(buf.subarray(start, nl));
      start = nl + 1;
    }
    this.rest = Buffer.from(buf.subarray(start));
    return lines;
  }
}

async function inode(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch {
    return undefined;
  }
}

const CHUNK = 256 * 1024;

/** Reads one file from `pos` to its current end, yielding whole lines. */
async function* readFrom(fh: FileHandle, pos: { at: number }, splitter: LineSplitter): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafe(CHUNK);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, CHUNK, pos.at);
    if (bytesRead === 0) return;
    pos.at += bytesRead;
    yield* splitter.push(Buffer.from(buf.subarray(0, bytesRead)));
  }
}

/**
 * Docker's json-file reader: rotated files oldest first, then the live file; `tail` keeps the last N;
 * `follow` keeps reading across rotation until the container stops (or the client goes away).
 */
export async function* readLogs(path: string, o: LogReadOptions): AsyncGenerator<LogEntry> {
  const wanted = (e: LogEntry): boolean =>
    ((e.stream === 'stdout' && o.stdout) || (e.stream === 'stderr' && o.stderr)) &&
    (o.since === undefined || e.timeNano >= o.since) &&
    (o.until === undefined || e.timeNano <= o.until);

  const files: string[] = [];
  for (let i = o.maxFile - 1; i >= 1; i--) files.push(`${path}.${i}`);
  files.push(path);

  // Existing content: tail keeps a ring of the last N wanted entries.
  const ring: LogEntry[] = [];
  const tail = o.tail;
  let live: { fh: FileHandle; pos: { at: number }; ino: number | undefined; splitter: LineSplitter } | undefined;
  try {
    for (const f of files) {
      let fh: FileHandle;
      try {
        fh = await open(f, 'r');
      } catch {
        continue;
      }
      const pos = { at: 0 };
      const splitter = new LineSplitter();
      for await (const line of readFrom(fh, pos, splitter)) {
        const e = parseLine(line);
        if (!e || !wanted(e)) continue;
        if (tail === undefined) yield e;
        else if (tail > 0) {
          ring.push(e);
          if (ring.length > tail) ring.shift();
        }
        if (o.signal?.aborted) break;
      }
      if (f === path) live = { fh, pos, ino: (await fh.stat()).ino, splitter };
      else await fh.close();
    }
    yield* ring;
    if (!o.follow || o.signal?.aborted) return;

    let stopped = false;
    void o.stopped?.then(() => {
      stopped = true;
      wake();
    });
    let wake: () => void = () => undefined;
    let watcher: FSWatcher | undefined;
    const dir = path.slice(0, path.lastIndexOf('/'));
    try {
      watcher = watch(dir, () => wake());
    } catch {
      // no inotify: the poll timer below still finds new data
    }
    const onAbort = (): void => wake();
    o.signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (live) {
          for await (const line of readFrom(live.fh, live.pos, live.splitter)) {
            const e = parseLine(line);
            if (e && wanted(e)) yield e;
            if (o.until !== undefined && e && e.timeNano > o.until) return;
          }
        }
        // Rotation: the live file was renamed away; finish it above, then switch to the new one.
        const ino = await inode(path);
        if (ino !== undefined && ino !== live?.ino) {
          await live?.fh.close();
          live = { fh: await open(path, 'r'), pos: { at: 0 }, ino, splitter: new LineSplitter() };
          continue;
        }
        if (stopped || o.signal?.aborted) {
          if (live) for await (const line of readFrom(live.fh, live.pos, live.splitter)) {
            const e = parseLine(line);
            if (e && wanted(e)) yield e;
          }
          return;
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 250);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    } finally {
      watcher?.close();
      o.signal?.removeEventListener('abort', onAbort);
    }
  } finally {
    await live?.fh.close();
  }
}
