import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DaemonRegistry } from '../../../src/network/daemon-registry.js';
import { processStartTime } from '../../../src/daemon-lock.js';

describe('DaemonRegistry: which daemons are provably gone', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bdreg-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a registered daemon in a live process is not dead; forget removes its record', () => {
    const r = new DaemonRegistry(join(dir, 'daemons'));
    const id = randomUUID();
    r.register(id);
    expect(r.dead()).toEqual([]);
    r.forget(id);
    expect(readdirSync(join(dir, 'daemons'))).toEqual([]);
    r.forget(id); // twice is fine
  });

  it('a record whose process is gone, or whose PID now belongs to another process, is dead', () => {
    const r = new DaemonRegistry(dir);
    const gone = randomUUID();
    const recycled = randomUUID();
    writeFileSync(join(dir, gone), '999999999 12345\n');
    writeFileSync(join(dir, recycled), `${process.pid} ${Number(processStartTime(process.pid)) + 1}\n`);
    expect(r.dead().sort()).toEqual([gone, recycled].sort());
  });

  it('never judges what it cannot read: no records dir, foreign names, unparsable records', () => {
    expect(new DaemonRegistry(join(dir, 'missing')).dead()).toEqual([]);
    writeFileSync(join(dir, 'not-a-daemon-id'), '999999999 1\n');
    writeFileSync(join(dir, randomUUID()), 'garbage\n');
    writeFileSync(join(dir, randomUUID()), '999999999\n');
    expect(new DaemonRegistry(dir).dead()).toEqual([]);
  });
});
