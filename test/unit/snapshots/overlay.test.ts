import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { removeLeftoverMounts } from '../../../src/snapshots/overlay.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-leftovers-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('removeLeftoverMounts', () => {
  it('removes the empty mount points a previous daemon left, keeps (and logs) a directory that is not empty', () => {
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    mkdirSync(join(dir, 'kept'));
    writeFileSync(join(dir, 'kept', 'f'), 'x');
    const warnings: unknown[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
    removeLeftoverMounts(dir, log, 'test view');
    expect(readdirSync(dir)).toEqual(['kept']);
    expect(warnings).toEqual([expect.objectContaining({ path: join(dir, 'kept'), msg: 'removing a leftover test view failed' })]);
  });

  it('does nothing when the directory does not exist', () => {
    expect(() => removeLeftoverMounts(join(dir, 'missing'), pino({ level: 'silent' }), 'test view')).not.toThrow();
  });
});
