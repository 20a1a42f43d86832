import { createHash } from 'node:crypto';

/** Hand-made tar members (for headers tar-stream will not write: binary PAX values, hostile names). */
export interface RawMember {
  name: string;
  type?: string; // typeflag character
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  data?: Buffer | string;
  pax?: Record<string, Buffer | string>;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(m: RawMember, size: number, type: string): Buffer {
  const b = Buffer.alloc(512);
  b.write(m.name, 0, 100, 'utf8');
  b.write(octal(m.mode ?? 0o644, 8), 100, 'latin1');
  b.write(octal(m.uid ?? 0, 8), 108, 'latin1');
  b.write(octal(m.gid ?? 0, 8), 116, 'latin1');
  b.write(octal(size, 12), 124, 'latin1');
  b.write(octal(m.mtime ?? 1704067200, 12), 136, 'latin1');
  b.write('        ', 148, 'latin1');
  b.write(type, 156, 'latin1');
  b.write(m.linkname ?? '', 157, 100, 'utf8');
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  let sum = 0;
  for (const c of b) sum += c;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

function pad(data: Buffer): Buffer {
  const rem = data.length % 512;
  return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rem)]);
}

/** PAX records as an extended header body: `"%d %s=%s\n"`. */
export function paxRecords(records: Record<string, Buffer | string>): Buffer {
  const recs: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const val = Buffer.isBuffer(v) ? v : Buffer.from(v);
    const body = Buffer.concat([Buffer.from(` ${k}=`), val, Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    recs.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return Buffer.concat(recs);
}

/** One PAX (`x`, `g`) or GNU long-name (`L`, `K`) header with its padded body. */
export function specialHeader(type: 'x' | 'g' | 'L' | 'K', body: Buffer): Buffer {
  return Buffer.concat([header({ name: type === 'x' || type === 'g' ? 'PaxHeader' : '././@LongLink' }, body.length, type), pad(body)]);
}

export function rawTar(members: readonly RawMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    if (m.pax) parts.push(specialHeader('x', paxRecords(m.pax)));
    const data = Buffer.from(m.data ?? '');
    const type = m.type ?? '0';
    parts.push(header(m, type === '0' ? data.length : 0, type));
    if (type === '0') parts.push(pad(data));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
