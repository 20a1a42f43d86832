import { ByteReader } from './byte-reader.js';

export type TarEntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo';

/** One member of a tar archive after GNU long-name and PAX records have been applied. */
export interface TarHeader {
  name: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch, with a fraction when a PAX record gave one. */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from SCHILY.xattr.* (and LIBARCHIVE.xattr.*) PAX records, values as raw bytes. */
  xattrs: Map<string, Buffer>;
}

export interface TarEntry {
  header: TarHeader;
  /** The member's content; must be consumed (or skipped with drain()) before the next entry. */
  body: AsyncIterable<Buffer>;
  drain(): Promise<void>;
}

export class TarFormatError extends Error {}

const BLOCK = 512;

/**
 * The largest PAX or GNU long-name/long-link header Go's archive/tar reads (maxSpecialFileSize). Each such header
 * replaces the one before it, as in Go, so at most one of each kind is held: memory stays bounded whatever an
 * archive repeats.
 */
export const MAX_SPECIAL_HEADER_BYTES = 1024 * 1024;
/** All the PAX/GNU headers in front of one member together: more is an archive built to waste our time. */
export const MAX_SPECIAL_HEADERS_PER_ENTRY = 8 * 1024 * 1024;

function cstr(buf: Buffer, off: number, len: number): string {
  const slice = buf.subarray(off, off + len);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function num(buf: Buffer, off: number, len: number, field: string): number {
  const b = buf.subarray(off, off + len);
  if ((b[0] ?? 0) & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit of the first byte as the marker.
    let v = BigInt((b[0] ?? 0) & 0x7f);
    for (let i = 1; i < b.length; i++) v = (v << 8n) | BigInt(b[i] ?? 0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`archive/tar: ${field} out of range`);
    return Number(v);
  }
  const s = b.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`archive/tar: invalid tar header (bad ${field} field)`);
  return parseInt(s, 8);
}

function checksumOk(block: Buffer): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 32 : (block[i] ?? 0);
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  const stored = num(block, 148, 8, 'checksum');
  return stored === unsigned || stored === signed;
}

/** PAX extended header records: `"%d %s=%s\n"`, values kept as bytes (xattrs may be binary). */
function parsePax(data: Buffer, into: Map<string, Buffer>): void {
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(data.subarray(off, sp).toString('latin1'), 10);
    if (!Number.isFinite(len) || len <= 0 || off + len > data.length) throw new TarFormatError('archive/tar: invalid PAX record');
    const rec = data.subarray(sp + 1, off + len - 1); // drop the trailing \n
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new TarFormatError('archive/tar: invalid PAX record');
    into.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

/**
 * Streams the members of a (decompressed) tar. Understands ustar, GNU (long names, base-256 numbers)
 * and PAX (path, linkpath, size, uid, gid, mtime, xattrs). A truncated archive or a bad header checksum is an
 * error. After the end-of-archive marker the rest of the source is consumed, so a hash over `source` covers
 * every byte.
 */
export async function* readTar(reader: ByteReader, opts: { lenientEnd?: boolean } = {}): AsyncGenerator<TarEntry> {
  let ended = false;
  let globalPax = new Map<string, Buffer>();
  let pax: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  let sawHeader = false;
  let specialBytes = 0; // PAX/GNU header bytes read since the last member
  for (;;) {
    if (ended) return;
    const block = await reader.read(BLOCK);
    if (block.length === 0 && !sawHeader) return; // an empty stream is an empty archive, as Go's archive/tar reads it
    // lenientEnd: a stream that stops at a member boundary without the end-of-archive blocks ends the archive, as Go's
    // archive/tar reads it (the docker CLI sends such a build context with `-f` outside the context)
    if (block.length === 0 && opts.lenientEnd) return;
    if (block.length < BLOCK) throw new TarFormatError('unexpected EOF: the tar archive is truncated');
    if (block.every((b) => b === 0)) {
      await reader.drain();
      return;
    }
    if (!checksumOk(block)) {
      throw new TarFormatError(sawHeader ? 'archive/tar: invalid tar header (checksum mismatch)' : 'not a tar archive (invalid tar header)');
    }
    sawHeader = true;
    const flag = String.fromCharCode(block[156] ?? 0);
    const size = num(block, 124, 12, 'size');
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_SPECIAL_HEADER_BYTES) {
        throw new TarFormatError(`archive/tar: header field too long (a ${flag} header of ${size} bytes; at most ${MAX_SPECIAL_HEADER_BYTES})`);
      }
      specialBytes += BLOCK + padded;
      if (specialBytes > MAX_SPECIAL_HEADERS_PER_ENTRY) {
        throw new TarFormatError(`archive/tar: more than ${MAX_SPECIAL_HEADERS_PER_ENTRY} bytes of extended headers before one entry`);
      }
      const data = await reader.read(padded);
      if (data.length < padded) throw new TarFormatError('unexpected EOF: the tar archive is truncated');
      const body = Buffer.from(data.subarray(0, size));
      // Each header replaces the previous one of its kind (Go's reader does the same for x, L and K).
      if (flag === 'x') parsePax(body, (pax = new Map()));
      else if (flag === 'g') parsePax(body, (globalPax = new Map()));
      else if (flag === 'L') longName = cstr(body, 0, body.length);
      else longLink = cstr(body, 0, body.length);
      continue;
    }
    const magic = block.subarray(257, 263).toString('latin1');
    const ustar = magic === 'ustar\0';
    let name = cstr(block, 0, 100);
    if (ustar) {
      const prefix = cstr(block, 345, 155);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    let type = TYPES[flag];
    if (type === undefined) {
      if (flag === 'S') throw new TarFormatError(`archive/tar: sparse files are not supported (${name})`);
      throw new TarFormatError(`archive/tar: unsupported entry type '${flag}' for ${name}`);
    }
    const h: TarHeader = {
      name,
      type,
      mode: num(block, 100, 8, 'mode') & 0o7777,
      uid: num(block, 108, 8, 'uid'),
      gid: num(block, 116, 8, 'gid'),
      size,
      mtime: num(block, 136, 12, 'mtime'),
      linkname: cstr(block, 157, 100),
      devmajor: ustar || magic.startsWith('ustar') ? num(block, 329, 8, 'devmajor') : 0,
      devminor: ustar || magic.startsWith('ustar') ? num(block, 337, 8, 'devminor') : 0,
      xattrs: new Map(),
    };
    if (longName !== undefined) h.name = longName;
    if (longLink !== undefined) h.linkname = longLink;
    const records = pax ? [...globalPax, ...pax] : globalPax;
    for (const [k, v] of records) {
      const s = (): string => v.toString('utf8');
      if (k === 'path') h.name = s();
      else if (k === 'linkpath') h.linkname = s();
      else if (k === 'size') h.size = Number(s());
      else if (k === 'uid') h.uid = Number(s());
      else if (k === 'gid') h.gid = Number(s());
      else if (k === 'mtime') h.mtime = Number(s());
      else if (k.startsWith('SCHILY.xattr.')) h.xattrs.set(k.slice('SCHILY.xattr.'.length), v);
      else if (k.startsWith('LIBARCHIVE.xattr.')) h.xattrs.set(decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(s(), 'base64'));
    }
    pax = undefined;
    specialBytes = 0;
    longName = undefined;
    longLink = undefined;
    if (!Number.isSafeInteger(h.size) || h.size < 0) throw new TarFormatError(`archive/tar: invalid size for ${h.name}`);
    if (type === 'file' && h.name.endsWith('/')) type = h.type = 'directory'; // old V7 archives
    // Only regular files carry data; a size on other types is skipped as Go's archive/tar does.
    const dataSize = h.size;
    const dataPadded = Math.ceil(dataSize / BLOCK) * BLOCK;
    if (type !== 'file') h.size = 0;
    let taken = 0; // bytes of the padded data region consumed so far
    const body = (async function* () {
      for await (const piece of reader.stream(dataSize - taken, h.name)) {
        taken += piece.length;
        yield piece;
      }
    })();
    const drain = async (): Promise<void> => {
      const left = dataPadded - taken;
      const dataLeft = Math.max(0, dataSize - taken);
      taken = dataPadded;
      if (left <= 0) return;
      if (opts.lenientEnd) {
        if (dataLeft > 0) await reader.skip(dataLeft, h.name);
        // data of a whole number of blocks has no padding: the next read is the next header (or the end)
        if (left === dataLeft) return;
        const pad = await reader.read(left - dataLeft);
        if (pad.length === 0) ended = true; // stopped right after the data: no padding, no end blocks
        else if (pad.length < left - dataLeft) throw new TarFormatError('unexpected EOF: the tar archive is truncated');
        return;
      }
      await reader.skip(left, h.name);
    };
    yield { header: h, body: type === 'file' ? body : (async function* () {})(), drain };
    await drain();
  }
}
