import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContainerDirs } from '../../../src/containers/container-dirs.js';
import { containerPaths, sharedInitLayer } from '../../../src/containers/paths.js';

describe('container directories and the shared init layer', () => {
  let root: string;
  let dirs: ContainerDirs;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'berth-dirs-'));
    dirs = new ContainerDirs(root, pino({ level: 'silent' }));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('a new container gets upper and work dirs and the shared init layer with every placeholder', async () => {
    await dirs.prepare('c1');
    expect(statSync(join(dirs.dir('c1'), 'upper')).isDirectory()).toBe(true);
    expect(statSync(join(dirs.dir('c1'), 'work')).isDirectory()).toBe(true);
    expect(existsSync(join(dirs.dir('c1'), 'init'))).toBe(false);
    const init = sharedInitLayer(root);
    expect(dirs.initLayer('c1')).toBe(init);
    expect(containerPaths(root, 'c1').init).toBe(init);
    for (const d of ['dev', 'dev/pts', 'dev/shm', 'proc', 'sys', 'etc']) expect(statSync(join(init, d)).isDirectory()).toBe(true);
    for (const f of ['.dockerenv', 'dev/console', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf']) expect(statSync(join(init, f)).isFile()).toBe(true);
    expect(readlinkSync(join(init, 'etc/mtab'))).toBe('/proc/mounts');
  });

  it('a half-made shared layer (a daemon died while making it) is completed by the next daemon', async () => {
    mkdirSync(join(sharedInitLayer(root), 'etc'), { recursive: true });
    await new ContainerDirs(root, pino({ level: 'silent' })).prepare('c2');
    expect(statSync(join(sharedInitLayer(root), 'etc/hosts')).isFile()).toBe(true);
    expect(lstatSync(join(sharedInitLayer(root), 'etc/mtab')).isSymbolicLink()).toBe(true);
    // a second container of the same daemon reuses it
    await dirs.prepare('c3');
    expect(dirs.initLayer('c3')).toBe(sharedInitLayer(root));
  });

  it('a container made by an earlier berthd keeps its own init dir', () => {
    mkdirSync(join(dirs.dir('old'), 'init'), { recursive: true });
    expect(dirs.initLayer('old')).toBe(join(dirs.dir('old'), 'init'));
    expect(containerPaths(root, 'old').init).toBe(join(dirs.dir('old'), 'init'));
  });
});
