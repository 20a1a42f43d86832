import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../../src/metadata/database.js';
import { EventRepo } from '../../../src/metadata/event-repo.js';
import { EventBus, eventMatches } from '../../../src/events/event-bus.js';
import { Filters } from '../../../src/util/filters.js';

describe('event bus', () => {
  let dir: string;
  let db: Db;
  let bus: EventBus;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-events-'));
    db = openDatabase(join(dir, 'berth.db'), pino({ level: 'silent' }));
    bus = new EventBus(new EventRepo(db, 100));
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers events live and keeps them for --since replays', () => {
    const seen: string[] = [];
    const off = bus.subscribe((e) => seen.push(e.Action));
    const e = bus.publish('container', 'start', 'abc', { name: 'web', image: 'busybox' });
    off();
    bus.publish('container', 'die', 'abc', { name: 'web', image: 'busybox' });
    expect(seen).toEqual(['start']);
    expect(e).toMatchObject({ status: 'start', id: 'abc', from: 'busybox', Type: 'container', scope: 'local' });
    const all = bus.history(0n, BigInt(Date.now() + 1000) * 1_000_000n);
    expect(all.map((x) => x.Action)).toEqual(['start', 'die']);
  });

  it('follow replays stored events since an instant, then delivers live ones once each, none after until', () => {
    const t0 = BigInt(Date.now() - 1000) * 1_000_000n;
    bus.publish('volume', 'create', 'old');
    const seen: string[] = [];
    // A listener that publishes while the replay runs: its event is held and delivered after the replay, once.
    const off = bus.follow({ since: t0 }, (e) => {
      seen.push(e.Actor.ID);
      if (e.Actor.ID === 'old') bus.publish('volume', 'create', 'during');
    });
    bus.publish('volume', 'create', 'live');
    off();
    bus.publish('volume', 'create', 'after');
    expect(seen).toEqual(['old', 'during', 'live']);

    // until in the past: nothing stored is replayed, nothing live is delivered; far ahead: both are.
    const none: string[] = [];
    const off2 = bus.follow({ since: t0, until: t0 + 1n }, (e) => none.push(e.Actor.ID));
    bus.publish('volume', 'create', 'late');
    off2();
    expect(none).toEqual([]);
    const all: string[] = [];
    const off3 = bus.follow({ since: t0, until: t0 + 3_600_000_000_000n }, (e) => all.push(e.Actor.ID));
    bus.publish('volume', 'create', 'later');
    off3();
    expect(all).toEqual(['old', 'during', 'live', 'after', 'late', 'later']);
  });

  it('keeps only a bounded ring', () => {
    for (let i = 0; i < 600; i++) bus.publish('volume', 'create', `v${i}`);
    const n = bus.history(0n, BigInt(Date.now() + 1000) * 1_000_000n).length;
    expect(n).toBeLessThanOrEqual(100 + 256);
    expect(n).toBeGreaterThanOrEqual(100);
  });

  it('filters by type, event, container name and label', () => {
    const e = bus.publish('container', 'exec_start: sh', 'abc123', { name: 'web', image: 'busybox', tier: 'front' });
    expect(eventMatches(e, Filters.parse('{"type":{"container":true}}'))).toBe(true);
    expect(eventMatches(e, Filters.parse('{"type":{"image":true}}'))).toBe(false);
    expect(eventMatches(e, Filters.parse('{"event":{"exec_start":true}}'))).toBe(true);
    expect(eventMatches(e, Filters.parse('{"container":{"web":true}}'))).toBe(true);
    expect(eventMatches(e, Filters.parse('{"container":{"db":true}}'))).toBe(false);
    expect(eventMatches(e, Filters.parse('{"label":{"tier=front":true}}'))).toBe(true);
    expect(eventMatches(e, Filters.parse('{"image":{"busybox":true}}'))).toBe(true);
  });
});
