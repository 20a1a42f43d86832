import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfinedRoot } from '../../../src/containers/confined-root.js';
import { NotFoundError } from '../../../src/errors.js';

describe('ConfinedRoot path resolution', () => {
  let top: string;
  let rootDir: string;
  let root: ConfinedRoot;

  beforeEach(() => {
    top = mkdtempSync(join(tmpdir(), 'berth-confined-'));
    rootDir = join(top, 'root');
    // A host file beside the root that no resolution may reach.
    writeFileSync(join(top, 'host-secret'), 'host');
    mkdirSync(join(rootDir, 'etc'), { recursive: true });
    writeFileSync(join(rootDir, 'etc/passwd'), 'container');
    writeFileSync(join(rootDir, 'host-secret'), 'container-copy');
    symlinkSync('/etc', join(rootDir, 'abs-etc'));
    symlinkSync('../../../../../../..', join(rootDir, 'climb'));
    symlinkSync(top, join(rootDir, 'host-path'));
    symlinkSync('loop2', join(rootDir, 'loop1'));
    symlinkSync('loop1', join(rootDir, 'loop2'));
    symlinkSync('passwd', join(rootDir, 'etc/pw-link'));
    root = ConfinedRoot.open(rootDir);
  });

  afterEach(() => {
    root.close();
    rmSync(top, { recursive: true, force: true });
  });

  const resolve = (p: string, follow = false): { path: string; exists: boolean; symlink: boolean } => {
    const r = root.resolve(p, follow);
    try {
      return { path: r.containerPath, exists: r.st !== undefined, symlink: r.st?.isSymbolicLink() ?? false };
    } finally {
      r.close();
    }
  };

  it('follows absolute symlinks from the container root, not the host root', () => {
    expect(resolve('/abs-etc/passwd')).toEqual({ path: '/etc/passwd', exists: true, symlink: false });
  });

  it('stops `..` at the root, in paths and in symlink targets', () => {
    expect(resolve('/../../../etc/passwd').path).toBe('/etc/passwd');
    expect(resolve('/climb/host-secret').path).toBe('/host-secret');
    expect(resolve('/climb', true).path).toBe('/');
  });

  it('resolves a symlink to a host path inside the container', () => {
    expect(() => root.resolve('/host-path/host-secret', false)).toThrow(NotFoundError);
    mkdirSync(join(rootDir, top), { recursive: true });
    const r = root.resolve('/host-path/host-secret', false);
    try {
      expect(r.st).toBeUndefined();
      expect(r.containerPath).toBe(`${top}/host-secret`);
    } finally {
      r.close();
    }
  });

  it('keeps the last component unresolved unless asked', () => {
    expect(resolve('/etc/pw-link')).toEqual({ path: '/etc/pw-link', exists: true, symlink: true });
    expect(resolve('/etc/pw-link', true)).toEqual({ path: '/etc/passwd', exists: true, symlink: false });
  });

  it('reports a missing last component, and refuses a missing directory or a symlink loop', () => {
    expect(resolve('/etc/new-file')).toEqual({ path: '/etc/new-file', exists: false, symlink: false });
    expect(() => root.resolve('/nope/file', false)).toThrow(NotFoundError);
    expect(() => root.resolve('/etc/passwd/x', false)).toThrow(NotFoundError);
    expect(() => root.resolve('/loop1/x', false)).toThrow(/symbolic links/);
  });

  it('leaves no file descriptor open', () => {
    const before = countFds();
    for (let i = 0; i < 50; i++) resolve('/abs-etc/../etc/./pw-link', true);
    expect(countFds()).toBe(before);
  });
});

function countFds(): number {
  return readdirSync('/proc/self/fd').length;
}
