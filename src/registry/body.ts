import type { Readable } from 'node:stream';

/** Error answers and pings are read this far and no further (containerd reads 64000 bytes of an error). */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** A token answer is a small JSON document; a JWT is a few kilobytes. */
export const MAX_TOKEN_BODY_BYTES = 1024 * 1024;
/** One page of tags/list or of v1 search results. */
export const MAX_LISTING_BODY_BYTES = 8 * 1024 * 1024;

/**
 * Reads a registry's response body up to `max` bytes. What lies beyond is never read: the body is destroyed,
 * so a registry that answers with an endless body costs at most `max` bytes. `complete` says whether the
 * body ended within the limit.
 */
export async function readAtMost(body: Readable, max: number): Promise<{ bytes: Buffer; complete: boolean }> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of body) {
      const b = c as Buffer;
      if (n + b.length > max) {
        chunks.push(b.subarray(0, max - n));
        n = max;
        body.destroy();
        return { bytes: Buffer.concat(chunks, n), complete: false };
      }
      chunks.push(b);
      n += b.length;
    }
  } catch (e) {
    // A body cut short by the registry: what arrived is what there is (an error text is still useful).
    if (n === 0) throw e;
    return { bytes: Buffer.concat(chunks, n), complete: false };
  }
  return { bytes: Buffer.concat(chunks, n), complete: true };
}

/** "1 MiB" style sizes for messages. */
export function sizeText(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}
