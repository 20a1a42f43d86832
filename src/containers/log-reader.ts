import { close, fstatSync, openSync, read, readFile } from 'node:fs';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { stat } from 'node:fs/promises';
import { isUtf8 } from 'node:buffer';
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

let cachedSecond = '';
let cachedSecondMs = 0;

function timeToNano(t: string): bigint {
  // fast path for what the shim writes: "YYYY-MM-DDTHH:MM:SS[.fraction]Z", the second parsed once
  if (t.length >= 20 && t.charCodeAt(10) === 84 /* T */ && t.charCodeAt(t.length - 1) === 90 /* Z */ && (t.length === 20 || t.charCodeAt(19) === 46)) {
    const second = t.slice(0, 19);
    if (second !== cachedSecond) {
      const ms = Date.parse(`${second}Z`);
      if (Number.isNaN(ms)) return slowTimeToNano(t);
      cachedSecond = second;
      cachedSecondMs = ms;
    }
    const frac = t.length > 21 ? t.slice(20, -1) : '';
    if (frac.length > 9 || !/^\d*$/.test(frac)) return slowTimeToNano(t);
    return BigInt(cachedSecondMs) * 1_000_000n + BigInt(frac.padEnd(9, '0') || '0');
  }
  return slowTimeToNano(t);
}

function slowTimeToNano(t: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return 0n;
  const ms = Date.parse(`${m[1] ?? ''}${m[3] ?? 'Z'}`);
  const frac = BigInt((m[2] ?? '').slice(0, 9).padEnd(9, '0') || '0');
  return BigInt(ms) * 1_000_000n + frac;
}

const STREAM_KEY = Buffer.from('","stream":"std');
const BACKSLASH = 0x5c;
const TIME_KEY = '"time":"';

/** An entry decoded by the fast path: the time string and its nanoseconds are made only when asked for. */
class FastEntry implements LogEntry {
  private t: string | undefined;
  private ns: bigint | undefined;
  constructor(
    readonly stream: 'stdout' | 'stderr',
    readonly data: Buffer,
    /** The chunk the line was read in, and where its time string is. */
    private readonly buf: Buffer,
    private readonly timeAt: number,
    private readonly timeEnd: number,
  ) {}

  get time(): string {
    return (this.t ??= this.buf.toString('latin1', this.timeAt, this.timeEnd));
  }

  get timeNano(): bigint {
    return (this.ns ??= timeToNano(this.time));
  }
}

function startsWithLogKey(l: Buffer, s: number): boolean {
  // {"log":"
  return (
    l[s] === 0x7b && l[s + 1] === 0x22 && l[s + 2] === 0x6c && l[s + 3] === 0x6f && l[s + 4] === 0x67 && l[s + 5] === 0x22 && l[s + 6] === 0x3a && l[s + 7] === 0x22
  );
}

function isTimeKey(l: Buffer, at: number): boolean {
  for (let i = 0; i < 8; i++) if (l[at + i] !== TIME_KEY.charCodeAt(i)) return false;
  return true;
}

/** Content longer than this is checked for escapes in a view of its own (a search of the chunk could run far). */
const SHORT_CONTENT = 512;

/**
 * The line buf[s, e) (without its \n) in the shim's exact layout, {"log":"<escaped>","stream":"stdout|stderr",
 * "time":"<ts>"}, without a JSON parse and without a view of the line: a log string that is valid UTF-8 with no
 * escape but a final \n is decoded in place (the chunk is private to the reader), so the payload is the one view
 * made. `utf8`: the whole chunk is valid UTF-8, hence every log string in it (each lies between ASCII quotes).
 * Anything else (other escapes, attrs, other writers) goes through JSON.parse.
 */
function parseLineAt(buf: Buffer, s: number, e: number, utf8: boolean): LogEntry | undefined {
  const n = e - s;
  // tail: ","stream":"stdout","time":"…"}  — the stream key is the last place a bare quote-comma-quote can be
  if (n > 60 && buf[e - 1] === 0x7d && buf[e - 2] === 0x22 && startsWithLogKey(buf, s)) {
    const k = buf.lastIndexOf(STREAM_KEY, e - 30);
    if (k >= s + 8 && buf[k + 18] === 0x22 && buf[k + 19] === 0x2c && isTimeKey(buf, k + 20)) {
      const a = buf[k + 15], b = buf[k + 16], c = buf[k + 17];
      const stream = a === 0x6f && b === 0x75 && c === 0x74 ? 'stdout' : a === 0x65 && b === 0x72 && c === 0x72 ? 'stderr' : undefined;
      const cs = s + 8;
      const len = k - cs;
      let bs: number;
      if (len <= SHORT_CONTENT) {
        // past the content the search meets the tail (no backslash) and at most the next line's content
        bs = buf.indexOf(BACKSLASH, cs);
        if (bs >= k) bs = -1;
      } else {
        bs = buf.subarray(cs, k).indexOf(BACKSLASH);
        if (bs >= 0) bs += cs;
      }
      // the usual line: no escapes but its final "\n"
      const nlOnly = bs === k - 2 && buf[k - 1] === 0x6e;
      if (stream && (bs < 0 || nlOnly) && buf.indexOf(0x22, k + 28) === e - 2 && (utf8 || isUtf8(buf.subarray(cs, k)))) {
        let data: Buffer;
        if (nlOnly) {
          buf[k - 2] = 0x0a;
          data = buf.subarray(cs, k - 1);
        } else data = buf.subarray(cs, k);
        return new FastEntry(stream, data, buf, k + 28, e - 2);
      }
    }
  }
  return parseJsonLine(buf.subarray(s, e));
}

/** The entries of the whole lines in buf[0, end) (each ends with \n). */
function parseLines(buf: Buffer, end: number): LogEntry[] {
  const out: LogEntry[] = [];
  const utf8 = isUtf8(buf.subarray(0, end));
  let s = 0;
  while (s < end) {
    const nl = buf.indexOf(10, s);
    if (nl < 0 || nl >= end) break;
    const e = parseLineAt(buf, s, nl, utf8);
    if (e) out.push(e);
    s = nl + 1;
  }
  return out;
}

/** The kubelet's CRI format ("<RFC3339Nano> stdout|stderr F|P <content>") that CRI containers log in. */
function parseCriLine(line: Buffer): LogEntry | undefined {
  const a = line.indexOf(0x20);
  if (a < 20 || line.length < a + 10) return undefined;
  const stream = line.subarray(a + 1, a + 7).toString('latin1');
  const tag = line[a + 8];
  if ((stream !== 'stdout' && stream !== 'stderr') || line[a + 7] !== 0x20 || (tag !== 0x46 && tag !== 0x50) || line[a + 9] !== 0x20) return undefined;
  const time = line.subarray(0, a).toString('latin1');
  const content = line.subarray(a + 10);
  const data = tag === 0x46 ? Buffer.concat([content, Buffer.from('\n')]) : Buffer.from(content);
  return { stream, data, time, timeNano: timeToNano(time) };
}

function parseJsonLine(line: Buffer): LogEntry | undefined {
  if (line[0] !== 0x7b) return parseCriLine(line);
  try {
    const j = JSON.parse(line.toString('utf8')) as { log?: string; stream?: string; time?: string };
    if (typeof j.log !== 'string' || (j.stream !== 'stdout' && j.stream !== 'stderr')) return undefined;
    const time = j.time ?? '';
    return { stream: j.stream, data: Buffer.from(j.log, 'utf8'), time, timeNano: timeToNano(time) };
  } catch {
    return undefined; // a torn last line from a crash is skipped, as dockerd does
  }
}

/** Where the whole lines of a chunked byte stream end; the unterminated rest is kept for the next chunk. */
class LineSplitter {
  rest: Buffer = Buffer.alloc(0);

  /** `buf` must be private to the reader: entries are views into it and it may be modified in place. */
  push(buf: Buffer): LogEntry[] {
    const end = buf.lastIndexOf(10) + 1;
    this.rest = buf.subarray(end);
    return end > 0 ? parseLines(buf, end) : [];
  }
}

async function inode(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch {
    return undefined;
  }
}

/**
 * A chunk's entries (views into it) stay alive while the chunk is sent, and the young generation is small
 * (--max-semi-space-size=2): at 1 MiB (~17k entries) every scavenge copied them and promoted them to the old
 * generation; at 256 KiB berthd spends ~70 ms of CPU on 100k lines instead of ~120.
 */
const CHUNK = 256 * 1024;

/** An open log file: opened synchronously, so a container removed right after the request cannot take it away. */
interface LogFile {
  ino: number;
  read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/**
 * Opens `path` now. The close is idempotent: an fd number must never be closed twice (by then it may belong to
 * another file).
 */
function openOnce(path: string): { fd: number; ino: number; close(): Promise<void> } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  let closed = false;
  return {
    fd,
    ino: fstatSync(fd).ino,
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise((resolve) => close(fd, () => resolve()));
    },
  };
}

function openLogFile(path: string): LogFile | undefined {
  const f = openOnce(path);
  if (!f) return undefined;
  return {
    ino: f.ino,
    read: (buf, offset, length, position) =>
      new Promise((resolve, reject) => {
        read(f.fd, buf, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead })));
      }),
    close: f.close,
  };
}

const gunzipAsync = promisify(gunzip);

/** A compressed rotated file: opened at once like the others, decompressed on the first read. */
function openGzipLogFile(path: string): LogFile | undefined {
  const f = openOnce(path);
  if (!f) return undefined;
  let data: Promise<Buffer> | undefined;
  const load = (): Promise<Buffer> =>
    (data ??= new Promise<Buffer>((resolve, reject) => readFile(f.fd, (err, b) => (err ? reject(err) : resolve(b)))).then((b) =>
      gunzipAsync(b).catch(() => Buffer.alloc(0)),
    ));
  return {
    ino: f.ino,
    read: async (buf, offset, length, position) => {
      const d = await load();
      const n = Math.max(0, Math.min(length, d.length - position));
      d.copy(buf, offset, position, position + n);
      return { bytesRead: n };
    },
    close: f.close,
  };
}

/** Reads the next chunk of one file from `pos`: the entries of its whole lines, or undefined at the current end. */
async function readEntries(fh: LogFile, pos: { at: number }, splitter: LineSplitter): Promise<LogEntry[] | undefined> {
  // a fresh buffer per read (entries are views into it), the unterminated rest copied in front
  const rest = splitter.rest;
  const buf = Buffer.allocUnsafeSlow(rest.length + CHUNK);
  rest.copy(buf, 0);
  const { bytesRead } = await fh.read(buf, rest.length, CHUNK, pos.at);
  if (bytesRead === 0) return undefined;
  pos.at += bytesRead;
  return splitter.push(buf.subarray(0, rest.length + bytesRead));
}

/**
 * Docker's json-file reader: rotated files oldest first, then the live file; `tail` keeps the last N;
 * `follow` keeps reading across rotation until the container stops (or the client goes away).
 * The files are opened at the call, before anything else runs: `docker-py run(remove=True)` asks for the
 * logs and removes the container before it reads them.
 */
export function readLogs(path: string, o: LogReadOptions): AsyncGenerator<LogEntry> {
  return flatten(readLogBatches(path, o));
}

async function* flatten(batches: AsyncGenerator<LogEntry[]>): AsyncGenerator<LogEntry> {
  for await (const b of batches) yield* b;
}

/**
 * readLogs in batches: the wanted entries of each chunk read (up to 256 KiB of file) come as one array, so a
 * reader pays one await per chunk instead of a few microtasks per line (100k lines: one await per ~4k lines).
 * A follower gets each batch as soon as it is read, so nothing waits for a batch to fill.
 */
export function readLogBatches(path: string, o: LogReadOptions): AsyncGenerator<LogEntry[]> {
  const files: [string, LogFile | undefined][] = [];
  // A rotated file is <log>.N, or <log>.N.gz with the compress option (the newest may still be <log>.1 while
  // the shim compresses it).
  for (let i = o.maxFile - 1; i >= 1; i--) files.push([`${path}.${i}`, openGzipLogFile(`${path}.${i}.gz`) ?? openLogFile(`${path}.${i}`)]);
  files.push([path, openLogFile(path)]);
  return readOpenedLogs(path, files, o);
}

async function* readOpenedLogs(path: string, files: [string, LogFile | undefined][], o: LogReadOptions): AsyncGenerator<LogEntry[]> {
  const wanted = (e: LogEntry): boolean =>
    ((e.stream === 'stdout' && o.stdout) || (e.stream === 'stderr' && o.stderr)) &&
    (o.since === undefined || e.timeNano >= o.since) &&
    (o.until === undefined || e.timeNano <= o.until);

  // Existing content: tail keeps a ring of the last N wanted entries.
  const ring: LogEntry[] = [];
  const tail = o.tail;
  let live: { fh: LogFile; pos: { at: number }; ino: number | undefined; splitter: LineSplitter } | undefined;
  try {
    for (const [f, fh] of files) {
      if (!fh) continue;
      const pos = { at: 0 };
      const splitter = new LineSplitter();
      for (;;) {
        const entries = await readEntries(fh, pos, splitter);
        if (!entries) break;
        const batch: LogEntry[] = [];
        for (const e of entries) {
          if (!wanted(e)) continue;
          if (tail === undefined) batch.push(e);
          else if (tail > 0) {
            ring.push(e);
            if (ring.length > tail) ring.shift();
          }
        }
        if (batch.length > 0) yield batch;
        if (o.signal?.aborted) break;
      }
      if (f === path) live = { fh, pos, ino: fh.ino, splitter };
      else await fh.close();
    }
    if (ring.length > 0) yield ring;
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
    let rotated = false;
    try {
      for (;;) {
        // Whether the container had stopped before this pass: a pass that starts after the stop has read
        // everything the shim wrote (it writes the log before it reports the exit).
        const finishing = stopped || o.signal?.aborted === true;
        if (live) {
          for (;;) {
            const entries = await readEntries(live.fh, live.pos, live.splitter);
            if (!entries) break;
            const batch: LogEntry[] = [];
            let past = false;
            for (const e of entries) {
              if (o.until !== undefined && e.timeNano > o.until) {
                past = true;
                break;
              }
              if (wanted(e)) batch.push(e);
            }
            if (batch.length > 0) yield batch;
            if (past) return;
          }
        }
        // Rotation (or the first output): the live file was replaced; finish it above, then switch. The old
        // file is known to be complete only once the new one is seen (what the container wrote between the last
        // read above and the rename is in it): one more pass reads it before the switch.
        const ino = await inode(path);
        if (ino !== undefined && ino !== live?.ino) {
          if (live && !rotated) {
            rotated = true;
            continue;
          }
          rotated = false;
          const next = openLogFile(path);
          if (!next) continue;
          await live?.fh.close();
          live = { fh: next, pos: { at: 0 }, ino: next.ino, splitter: new LineSplitter() };
          continue;
        }
        if (finishing) return;
        if (stopped || o.signal?.aborted) continue; // stopped during this pass: one more pass reads the rest
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
    for (const [, fh] of files) await fh?.close();
  }
}
