/**
 * The small part of the DNS wire format (RFC 1035) the embedded resolver needs: parse a query's header
 * and question, build answers with A records, NODATA and NXDOMAIN / SERVFAIL responses.
 */

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DnsQuery {
  id: number;
  flags: number;
  opcode: number;
  recursionDesired: boolean;
  questions: DnsQuestion[];
  /** Byte offset just after the question section. */
  questionEnd: number;
}

export class DnsFormatError extends Error {}

/** Reads a (possibly compressed) domain name at `offset`; returns it lower-cased without the trailing dot. */
export function readName(buf: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  let jumps = 0;
  for (;;) {
    if (pos >= buf.length) throw new DnsFormatError('name runs past the message');
    const len = buf[pos]!;
    if (len === 0) {
      pos += 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) throw new DnsFormatError('truncated compression pointer');
      if (++jumps > 32) throw new DnsFormatError('compression loop');
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsFormatError('unsupported label type');
    if (pos + 1 + len > buf.length) throw new DnsFormatError('label runs past the message');
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), next: next < 0 ? pos : next };
}

export function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((l) => l !== '');
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const b = Buffer.from(p, 'latin1');
    if (b.length > 63) throw new DnsFormatError(`label too long: ${p}`);
    chunks.push(Buffer.from([b.length]), b);
  }
  chunks.push(Buffer.from([0]));
  return Buffer.concat(chunks);
}

export function parseQuery(buf: Buffer): DnsQuery {
  if (buf.length < 12) throw new DnsFormatError('message shorter than a header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) throw new DnsFormatError('not a query');
  const qdcount = buf.readUInt16BE(4);
  const questions: DnsQuestion[] = [];
  let pos = 12;
  for (let i = 0; i < qdcount; i++) {
    const { name, next } = readName(buf, pos);
    if (next + 4 > buf.length) throw new DnsFormatError('truncated question');
    questions.push({ name, type: buf.readUInt16BE(next), class: buf.readUInt16BE(next + 2) });
    pos = next + 4;
  }
  return { id, flags, opcode: (flags >> 11) & 0xf, recursionDesired: (flags & 0x0100) !== 0, questions, questionEnd: pos };
}

/** Builds a query (used by tests and health probes). */
export function buildQuery(id: number, name: string, type = TYPE_A): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const q = Buffer.alloc(4);
  q.writeUInt16BE(type, 0);
  q.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, encodeName(name), q]);
}

export interface AnswerA {
  /** IPv4 address, dotted. */
  address: string;
  ttl: number;
}

/**
 * A response to `query` that echoes its first question and carries the given A answers
 * (answers point back at the question name with a compression pointer).
 */
export function buildResponse(query: DnsQuery, rcode: number, answers: readonly AnswerA[] = []): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.id, 0);
  // QR, opcode echoed, AA, RD echoed, RA.
  let flags = 0x8000 | (query.opcode << 11) | 0x0400 | 0x0080 | (rcode & 0xf);
  if (query.recursionDesired) flags |= 0x0100;
  header.writeUInt16BE(flags, 2);
  const first = query.questions[0];
  header.writeUInt16BE(first ? 1 : 0, 4);
  header.writeUInt16BE(first ? answers.length : 0, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(0, 10);
  const chunks: Buffer[] = [header];
  if (first) {
    chunks.push(encodeName(first.name));
    const qt = Buffer.alloc(4);
    qt.writeUInt16BE(first.type, 0);
    qt.writeUInt16BE(first.class, 2);
    chunks.push(qt);
    for (const a of answers) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question name at offset 12
      rr.writeUInt16BE(TYPE_A, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(a.ttl, 6);
      rr.writeUInt16BE(4, 10);
      const parts = a.address.split('.').map(Number);
      for (let i = 0; i < 4; i++) rr[12 + i] = parts[i] ?? 0;
      chunks.push(rr);
    }
  }
  return Buffer.concat(chunks);
}

/** A FORMERR reply for a message we could not parse (only when at least the header is present). */
export function buildFormErr(raw: Buffer): Buffer | undefined {
  if (raw.length < 12) return undefined;
  const header = Buffer.alloc(12);
  raw.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8000 | RCODE_FORMERR, 2);
  return header;
}

export interface ParsedAnswer {
  name: string;
  type: number;
  ttl: number;
  data: Buffer;
  /** dotted IPv4 for A records */
  address?: string;
}

/** Parses a response (tests and the forwarder's sanity checks). */
export function parseResponse(buf: Buffer): { id: number; rcode: number; answers: ParsedAnswer[]; flags: number } {
  if (buf.length < 12) throw new DnsFormatError('message shorter than a header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let pos = 12;
  for (let i = 0; i < qd; i++) pos = readName(buf, pos).next + 4;
  const answers: ParsedAnswer[] = [];
  for (let i = 0; i < an; i++) {
    const { name, next } = readName(buf, pos);
    if (next + 10 > buf.length) throw new DnsFormatError('truncated answer');
    const type = buf.readUInt16BE(next);
    const ttl = buf.readUInt32BE(next + 4);
    const len = buf.readUInt16BE(next + 8);
    const data = buf.subarray(next + 10, next + 10 + len);
    const a: ParsedAnswer = { name, type, ttl, data };
    if (type === TYPE_A && len === 4) a.address = [...data].join('.');
    answers.push(a);
    pos = next + 10 + len;
  }
  return { id, rcode: flags & 0xf, answers, flags };
}
