/**
 * Pulls exact byte counts out of an async chunk source without copying more than needed.
 * Every chunk that passes through is handed to `onChunk` first (used to hash the whole stream).
 */
export class ByteReader {
  private readonly it: AsyncIterator<Buffer | Uint8Array | string>;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private done = false;
  /** Bytes consumed from the source so far. */
  position = 0;

  constructor(
    source: AsyncIterable<Buffer | Uint8Array | string>,
    private readonly onChunk?: (chunk: Buffer) => void,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const v = r.value;
    const chunk = typeof v === 'string' ? Buffer.from(v) : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    this.onChunk?.(chunk);
    if (chunk.length > 0) {
      this.pending.push(chunk);
      this.pendingLen += chunk.length;
    }
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the source (callers check the length). */
  async read(n: number): Promise<Buffer> {
    while (this.pendingLen < n) if (!(await this.fill())) break;
    const take = Math.min(n, this.pendingLen);
    let out: Buffer;
    const first = this.pending[0];
    if (first !== undefined && first.length >= take) {
      out = first.subarray(0, take);
      if (first.length === take) this.pending.shift();
      else this.pending[0] = first.subarray(take);
    } else {
      const all = Buffer.concat(this.pending, this.pendingLen);
      out = all.subarray(0, take);
      this.pending = take < all.length ? [all.subarray(take)] : [];
    }
    this.pendingLen -= take;
    this.position += take;
    return out;
  }

  /** Yields the next n bytes in source-sized pieces; throws on a short source. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.pendingLen === 0 && !(await this.fill())) {
        throw new Error(`unexpected EOF: ${what} is truncated (${left} of ${n} bytes missing)`);
      }
      const first = this.pending[0];
      if (first === undefined) continue;
      const take = Math.min(left, first.length);
      const piece = first.subarray(0, take);
      if (take === first.length) this.pending.shift();
      else this.pending[0] = first.subarray(take);
      this.pendingLen -= take;
      this.position += take;
      left -= take;
      yield piece;
    }
  }

  /** Skips n bytes; throws on a short source. */
  async skip(n: number, what: string): Promise<void> {
    for await (const piece of this.stream(n, what)) void piece;
  }

  /** Consumes the rest of the source (so onChunk sees every byte). */
  async drain(): Promise<void> {
    this.pending = [];
    this.pendingLen = 0;
    while (await this.fill()) {
      this.pending = [];
      this.pendingLen = 0;
    }
  }
}
