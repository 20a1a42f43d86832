import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLayeredFile } from '../../../src/containers/layered-root.js';
import { nativeAddon, S_IFCHR } from '../../../src/native.js';

const isRoot = process.getuid?.() === 0;

describe('readLayeredFile: a file of the merged layers, resolved inside the root', () => {
  let dir: string;
  let upper: string;
  let lower: string;
  const read = (p: string, max = 1 << 20): string | undefined => readLayeredFile([upper, lower], p, max)?.toString();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-layered-'));
    upper = join(dir, 'upper');
    lower = join(dir, 'lower');
    mkdirSync(join(lower, 'etc'), { recursive: true });
    mkdirSync(upper);
    writeFileSync(join(lower, 'etc', 'passwd'), 'lower\n');
    writeFileSync(join(lower, 'etc', 'group'), 'lower-group\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the top-most layer holding the file, and merges directories', () => {
    expect(read('/etc/passwd')).toBe('lower\n');
    mkdirSync(join(upper, 'etc'));
    writeFileSync(join(upper, 'etc', 'passwd'), 'upper\n');
    expect(read('/etc/passwd')).toBe('upper\n');
    expect(read('etc/group')).toBe('lower-group\n');
    expect(read('/etc/missing')).toBeUndefined();
    expect(read('/etc')).toBeUndefined();
  });

  it.runIf(isRoot)('honours whiteouts and opaque directories', () => {
    mkdirSync(join(upper, 'etc'));
    nativeAddon().mknod(join(upper, 'etc', 'passwd'), S_IFCHR | 0o600, 0, 0);
    expect(read('/etc/passwd')).toBeUndefined();
    nativeAddon().lsetxattr(join(upper, 'etc'), 'trusted.overlay.opaque', Buffer.from('y'), 0);
    expect(read('/etc/group')).toBeUndefined();
  });

  it('follows symlinks inside the root only', () => {
    const host = join(dir, 'host');
    mkdirSync(host);
    writeFileSync(join(host, 'passwd'), 'HOST\n');
    // /etc -> <host dir> names <root>/<host dir> inside the container, which does not exist.
    symlinkSync(host, join(upper, 'etc'));
    expect(read('/etc/passwd')).toBeUndefined();
    rmSync(join(upper, 'etc'));
    mkdirSync(join(upper, 'etc'));
    symlinkSync(`../../../../../../../../..${host}/passwd`, join(upper, 'etc', 'passwd'));
    expect(read('/etc/passwd')).toBeUndefined();
    rmSync(join(upper, 'etc', 'passwd'));
    // A symlink resolved inside the root reaches the root's own file.
    mkdirSync(join(lower, 'real'));
    writeFileSync(join(lower, 'real', 'passwd'), 'inside\n');
    symlinkSync('/real/passwd', join(upper, 'etc', 'passwd'));
    expect(read('/etc/passwd')).toBe('inside\n');
  });

  it('never opens a device, and refuses a file over the cap', () => {
    mkdirSync(join(upper, 'etc'));
    symlinkSync('/dev/zero', join(upper, 'etc', 'passwd'));
    expect(read('/etc/passwd')).toBeUndefined();
    rmSync(join(upper, 'etc', 'passwd'));
    writeFileSync(join(upper, 'etc', 'passwd'), 'x'.repeat(100));
    expect(() => read('/etc/passwd', 99)).toThrow(/larger than 99 bytes/);
    expect(read('/etc/passwd', 100)).toBe('x'.repeat(100));
  });

  it('reads a file of any size under the cap whole, byte for byte', () => {
    mkdirSync(join(upper, 'etc'));
    for (const size of [0, 1, 4095, 4096, 8193, 150_000]) {
      const text = Array.from({ length: size }, (_, i) => String.fromCharCode(97 + ((i * 7) % 26))).join('');
      writeFileSync(join(upper, 'etc', 'passwd'), text);
      expect(read('/etc/passwd')).toBe(text);
    }
  });
});
