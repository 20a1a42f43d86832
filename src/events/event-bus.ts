import { EventEmitter } from 'node:events';
import type { EventRepo } from '../metadata/event-repo.js';
import { nowNano } from '../util/time.js';
import type { Filters } from '../util/filters.js';

export type EventType = 'container' | 'image' | 'volume' | 'network' | 'daemon' | 'plugin' | 'node' | 'service' | 'secret' | 'config' | 'builder';

/** One event as Docker's /events serves it (the legacy status/id/from fields included). */
export interface DockerEvent {
  status?: string;
  id?: string;
  from?: string;
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
}

/** An upper bound past every stored event (int64 max, as nanoseconds). */
const END_OF_TIME = 2n ** 63n - 1n;

/** In-process publish/subscribe with a persisted ring behind it. */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor(private readonly repo: EventRepo) {
    this.emitter.setMaxListeners(0);
  }

  publish(type: EventType, action: string, actorId: string, attributes: Record<string, string> = {}): DockerEvent {
    const tn = nowNano();
    const event: DockerEvent = {
      Type: type,
      Action: action,
      Actor: { ID: actorId, Attributes: attributes },
      scope: 'local',
      time: Number(tn / 1_000_000_000n),
      timeNano: Number(tn),
    };
    if (type === 'container' || type === 'image') {
      // The legacy top-level fields older clients (and docker-py) still read.
      event.status = action;
      event.id = actorId;
      if (type === 'container' && attributes.image !== undefined) event.from = attributes.image;
    }
    this.repo.append(tn, JSON.stringify(event));
    this.emitter.emit('event', event);
    return event;
  }

  /** Stored events between two instants (nanoseconds, inclusive). */
  history(fromNano: bigint, toNano: bigint): DockerEvent[] {
    return this.repo.range(fromNano, toNano).map((b) => JSON.parse(b) as DockerEvent);
  }

  /**
   * The stored events from `since` (when given) followed by live ones, none after `until`, each once and in order.
   * Subscribes, then reads the stored ones (synchronously: nothing can be published between the two, so nothing is
   * both stored and live), and holds what is published while the replay runs (a listener may publish) until it ends.
   * Returns the unsubscribe.
   */
  follow(range: { since?: bigint | undefined; until?: bigint | undefined }, listener: (e: DockerEvent) => void): () => void {
    const { since, until } = range;
    const pending: DockerEvent[] = [];
    let replaying = true;
    const unsubscribe = this.subscribe((e) => {
      if (until !== undefined && BigInt(e.timeNano) > until) return;
      if (replaying) pending.push(e);
      else listener(e);
    });
    if (since !== undefined) for (const e of this.history(since, until ?? END_OF_TIME)) listener(e);
    replaying = false;
    for (const e of pending) listener(e);
    return unsubscribe;
  }

  subscribe(listener: (e: DockerEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  get listenerCount(): number {
    return this.emitter.listenerCount('event');
  }
}

export const EVENT_FILTER_KEYS = [
  'config', 'container', 'daemon', 'event', 'image', 'label', 'network', 'node', 'plugin', 'scope', 'secret', 'service', 'type', 'volume',
] as const;

/** Docker's event filter semantics: each key present must match; values of one key are alternatives. */
export function eventMatches(e: DockerEvent, f: Filters): boolean {
  const attrs = e.Actor.Attributes;
  if (!f.matches('type', e.Type)) return false;
  if (!f.matchesAny('event', [e.Action, e.Action.split(':')[0] ?? e.Action])) return false;
  if (!f.matches('scope', e.scope)) return false;
  if (!f.matchesLabels(attrs)) return false;
  const byActor = (key: string, type: EventType, names: (string | undefined)[]): boolean => {
    if (!f.has(key)) return true;
    if (e.Type !== type) return false;
    return f.get(key).some((v) => names.some((n) => n !== undefined && (n === v || (v.length >= 1 && n.startsWith(v) && n === e.Actor.ID))));
  };
  if (!byActor('container', 'container', [e.Actor.ID, attrs.name])) return false;
  if (!byActor('network', 'network', [e.Actor.ID, attrs.name])) return false;
  if (!byActor('volume', 'volume', [e.Actor.ID])) return false;
  if (!byActor('daemon', 'daemon', [e.Actor.ID, attrs.name])) return false;
  if (f.has('image')) {
    const image = e.Type === 'image' ? e.Actor.ID : attrs.image;
    const names = [image, attrs.name, e.Type === 'image' ? attrs.name : undefined];
    if (!f.get('image').some((v) => names.some((n) => n !== undefined && (n === v || n.replace(/:latest$/, '') === v)))) return false;
  }
  return true;
}
