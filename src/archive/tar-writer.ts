// Tar headers for the archives Berth produces (docker cp, export, commit layers): ustar blocks, with a PAX
// record in front when a name, link target, size, id or xattr does not fit (what Go's archive/tar writes).

export type TarWriteType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

export interface TarWriteHeader {
  name: string;
  type: TarWriteType;
  /** Permission and setuid/setgid/sticky bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Content bytes (regular files only). */
  size: number;
  /** Seconds since the epoch (fractions go into a PAX record). */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes (SCHILY.xattr.*), raw bytes. */
  xattrs?: ReadonlyMap<string, Buffer>;
}

const BLOCK = 512;
export const TAR_END = Buffer.alloc(BLOCK * 2);

const TYPEFLAG: Record<TarWriteType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

/** Zero bytes that round `size` up to the next block. */
export function tarPadding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

function fitsOctal(n: number, width: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 8 ** (width - 1);
}

function writeOctal(block: Buffer, off: number, width: number, n: number): void {
  block.write(`${Math.max(0, Math.floor(n)).toString(8).padStart(width - 1, '0')}\0`, off, width, 'latin1');
}

function writeString(block: Buffer, off: number, width: number, s: string): void {
  Buffer.from(s, 'utf8').copy(block, off, 0, width);
}

/** One PAX record: "<len> key=value\n" where len counts the whole record in bytes. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Splits a long name into ustar prefix (≤155) and name (≤100) at a slash, if possible. */
function splitUstarName(name: string): { prefix: string; base: string } | undefined {
  const bytes = Buffer.byteLength(name);
  if (bytes <= 100) return { prefix: '', base: name };
  if (bytes > 256) return undefined;
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const base = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(base) <= 100 && base !== '') return { prefix, base };
  }
  return undefined;
}

function ustarBlock(h: TarWriteHeader, name: string, prefix: string, linkname: string, typeflag: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  writeString(b, 0, 100, name);
  writeOctal(b, 100, 8, h.mode & 0o7777);
  writeOctal(b, 108, 8, fitsOctal(h.uid, 8) ? h.uid : 0);
  writeOctal(b, 116, 8, fitsOctal(h.gid, 8) ? h.gid : 0);
  writeOctal(b, 124, 12, fitsOctal(size, 12) ? size : 0);
  writeOctal(b, 136, 12, fitsOctal(Math.floor(h.mtime), 12) ? Math.floor(h.mtime) : 0);
  b.fill(0x20, 148, 156);
  b.write(typeflag, 156, 1, 'latin1');
  writeString(b, 157, 100, linkname);
  b.write('ustar\0', 257, 6, 'latin1');
  b.write('00', 263, 2, 'latin1');
  writeOctal(b, 329, 8, h.devmajor ?? 0);
  writeOctal(b, 337, 8, h.devminor ?? 0);
  writeString(b, 345, 155, prefix);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return b;
}

/** The header block(s) of one member; the caller writes `size` bytes of content and tarPadding(size) after it. */
export function tarHeader(h: TarWriteHeader): Buffer {
  const records: Buffer[] = [];
  let name = h.name;
  let prefix = '';
  const split = splitUstarName(h.name);
  if (split) {
    name = split.base;
    prefix = split.prefix;
  } else {
    records.push(paxRecord('path', Buffer.from(h.name, 'utf8')));
    name = Buffer.from(h.name, 'utf8').subarray(0, 100).toString('utf8');
  }
  let linkname = h.linkname ?? '';
  if (Buffer.byteLength(linkname) > 100) {
    records.push(paxRecord('linkpath', Buffer.from(linkname, 'utf8')));
    linkname = '';
  }
  const size = h.type === 'file' ? h.size : 0;
  if (!fitsOctal(size, 12)) records.push(paxRecord('size', Buffer.from(String(size))));
  if (!fitsOctal(h.uid, 8)) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (!fitsOctal(h.gid, 8)) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  if (!Number.isInteger(h.mtime) && h.mtime > 0) records.push(paxRecord('mtime', Buffer.from(h.mtime.toFixed(9).replace(/0+$/, ''))));
  for (const [k, v] of [...(h.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  }
  const main = ustarBlock(h, name, prefix, linkname, TYPEFLAG[h.type], size);
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const base = h.name.replace(/\/+$/, '').split('/').pop() ?? 'entry';
  const paxHeader = ustarBlock(
    { name: '', type: 'file', mode: 0o644, uid: 0, gid: 0, size: pax.length, mtime: Math.floor(h.mtime) },
    `PaxHeaders.0/${base}`.slice(0, 100),
    '',
    '',
    'x',
    pax.length,
  );
  return Buffer.concat([paxHeader, pax, tarPadding(pax.length), main]);
}
