import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nativeAddon } from '../../../src/native.js';
import { clearVolatileMark, mountOverlay, overlayVolatileSupported, removeLeftoverMounts, unmount } from '../../../src/snapshots/overlay.js';

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

describe('volatile overlays', () => {
  it.skipIf(process.getuid?.() !== 0 || !overlayVolatileSupported())('a volatile mount marks its work dir so that overlayfs refuses it again, until clearVolatileMark', () => {
    for (const d of ['l', 'u', 'w', 'm']) mkdirSync(join(dir, d));
    const opts = `lowerdir=${join(dir, 'l')},upperdir=${join(dir, 'u')},workdir=${join(dir, 'w')}`;
    const mount = (): void => nativeAddon().mount('overlay', join(dir, 'm'), 'overlay', 0, `${opts},volatile`);
    try {
      mount();
      unmount(join(dir, 'm'));
      expect(mount).toThrow();
      clearVolatileMark(join(dir, 'w'));
      mount();
      unmount(join(dir, 'm'));
      clearVolatileMark(join(dir, 'w'));
      mountOverlay(join(dir, 'm'), { lower: [join(dir, 'l')], upper: join(dir, 'u'), work: join(dir, 'w') });
    } finally {
      try {
        unmount(join(dir, 'm'));
      } catch {
        // not mounted (a step above failed)
      }
    }
  });

  it('clearVolatileMark leaves a work dir without the mark as it is', () => {
    mkdirSync(join(dir, 'w', 'work'), { recursive: true });
    clearVolatileMark(join(dir, 'w'));
    clearVolatileMark(join(dir, 'missing'));
    expect(readdirSync(join(dir, 'w'))).toEqual(['work']);
  });
});
