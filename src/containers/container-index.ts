// The containers in memory, found by full ID, name (with or without "/") or unique ID prefix as dockerd finds
// them. It holds ContainerService's records and hands them only to it; it never changes a record.

import { InvalidParameterError, NotFoundError } from '../errors.js';
import type { ContainerRecord } from './types.js';

export class ContainerIndex {
  private readonly byId = new Map<string, ContainerRecord>();

  add(r: ContainerRecord): void {
    this.byId.set(r.id, r);
  }

  delete(id: string): void {
    this.byId.delete(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** By full ID only. */
  withId(id: string): ContainerRecord | undefined {
    return this.byId.get(id);
  }

  all(): ContainerRecord[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  /** By full ID, name or unique ID prefix; InvalidParameterError when a prefix is ambiguous. */
  find(ref: string): ContainerRecord | undefined {
    const byId = this.byId.get(ref);
    if (byId) return byId;
    const name = ref.replace(/^\//, '');
    for (const r of this.byId.values()) if (r.name === name) return r;
    if (/^[0-9a-f]+$/.test(ref) && ref.length > 0) {
      const matches = this.all().filter((r) => r.id.startsWith(ref));
      if (matches.length > 1) throw new InvalidParameterError(`multiple IDs found with provided prefix: ${ref}`);
      return matches[0];
    }
    return undefined;
  }

  /** As find, with dockerd's 404 text when there is none. */
  require(ref: string): ContainerRecord {
    const c = this.find(ref);
    if (!c) throw new NotFoundError(`No such container: ${ref}`);
    return c;
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    let running = 0;
    let paused = 0;
    for (const r of this.byId.values()) {
      if (r.state.Paused) paused++;
      else if (r.state.Running) running++;
    }
    return { total: this.size, running, paused, stopped: this.size - running - paused };
  }
}
