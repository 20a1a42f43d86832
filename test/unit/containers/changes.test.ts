import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { containerChanges } from '../../../src/containers/changes.js';
import { ConfinedRoot } from '../../../src/containers/confined-root.js';
import { nativeAddon, S_IFCHR } from '../../../src/native.js';

/** An overlay upper dir and the lower view it sits on, as plain directories. */
describe('docker diff over an overlay upper dir', () => {
  let top: string;
  let upper: string;
  let lower: string;

  beforeEach(() => {
    top = mkdtempSync(join(tmpdir(), 'berth-changes-'));
    upper = join(top, 'upper');
    lower = join(top, 'lower');
    for (const d of ['bin', 'etc', 'opaque/old-sub']) mkdirSync(join(lower, d), { recursive: true });
    for (const f of ['bin/cat', 'bin/sh', 'etc/passwd', 'opaque/old', 'opaque/old-sub/x', 'same']) writeFileSync(join(lower, f), `${f}\n`);
    utimesSync(join(lower, 'same'), 1_700_000_000, 1_700_000_000);
    mkdirSync(upper);
  });

  afterEach(() => rmSync(top, { recursive: true, force: true }));

  const changes = (): string[] => {
    const u = ConfinedRoot.open(upper);
    const l = ConfinedRoot.open(lower);
    try {
      const out = containerChanges(u.rootFd, l.rootFd);
      return out.map((c) => `${'CAD'[c.Kind]} ${c.Path}`);
    } finally {
      u.close();
      l.close();
    }
  };

  it('reports nothing for an empty upper dir', () => {
    expect(changes()).toEqual([]);
  });

  it('reports a whiteout as D and its directory as C', () => {
    mkdirSync(join(upper, 'bin'));
    nativeAddon().mknod(join(upper, 'bin/cat'), S_IFCHR, 0, 0);
    expect(changes()).toEqual(['C /bin', 'D /bin/cat']);
  });

  it('reports new files and whole new trees as A', () => {
    writeFileSync(join(upper, 'newfile'), 'x');
    mkdirSync(join(upper, 'newdir/deeper'), { recursive: true });
    writeFileSync(join(upper, 'newdir/deeper/f'), 'x');
    expect(changes()).toEqual(['A /newdir', 'A /newdir/deeper', 'A /newdir/deeper/f', 'A /newfile']);
  });

  it('reports a copied-up file with new content as C, an identical copy-up as nothing', () => {
    mkdirSync(join(upper, 'etc'));
    writeFileSync(join(upper, 'etc/passwd'), 'changed, longer content\n');
    writeFileSync(join(upper, 'same'), 'same\n');
    utimesSync(join(upper, 'same'), 1_700_000_000, 1_700_000_000);
    expect(changes()).toEqual(['C /etc', 'C /etc/passwd']);
  });

  it('reports what an opaque directory hides as deleted', () => {
    mkdirSync(join(upper, 'opaque'));
    nativeAddon().lsetxattr(join(upper, 'opaque'), 'trusted.overlay.opaque', Buffer.from('y'), 0);
    writeFileSync(join(upper, 'opaque/new'), 'n');
    expect(changes()).toEqual(['C /opaque', 'A /opaque/new', 'D /opaque/old', 'D /opaque/old-sub']);
  });
});
