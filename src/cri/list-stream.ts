import type * as grpc from '@grpc/grpc-js';
import type { Msg } from './messages.js';

/**
 * The Stream* list RPCs (KEP-5825, feature gate CRIListStreaming): the items of the List* counterpart, sent as lists of
 * at least one item, each item once, then EOF. No items: no message at all, only the end of the stream (as containerd).
 * A list holds at most MAX_ITEMS items and about MAX_BYTES of JSON (protobuf is smaller than JSON, so a list stays
 * under gRPC's default 4 MiB receive limit, well under the kubelet's 16 MiB).
 */
export const MAX_ITEMS = 5000;
export const MAX_BYTES = 3 * 1024 * 1024;

type Call = grpc.ServerWritableStream<Record<string, unknown>, Record<string, unknown>>;

/** Splits items into the lists sent: by count and by approximate size; an item larger than the bound goes alone. */
export function batches(items: Msg[], maxItems = MAX_ITEMS, maxBytes = MAX_BYTES): Msg[][] {
  const out: Msg[][] = [];
  let cur: Msg[] = [];
  let bytes = 0;
  for (const it of items) {
    const size = JSON.stringify(it).length;
    if (cur.length > 0 && (cur.length >= maxItems || bytes + size > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(it);
    bytes += size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Writes the items under `field` in batches, waiting for the transport to drain; stops if the client cancelled. */
export async function sendInBatches(call: Call, field: string, items: Msg[]): Promise<void> {
  for (const batch of batches(items)) {
    if (call.cancelled) return;
    if (!call.write({ [field]: batch })) await new Promise<void>((resolve) => {
      const done = (): void => {
        call.off('drain', done);
        call.off('cancelled', done);
        call.off('close', done);
        resolve();
      };
      call.on('drain', done);
      call.on('cancelled', done);
      call.on('close', done);
    });
  }
}
