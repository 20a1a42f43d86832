import { existsSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { extract } from 'tar-stream';
import { createReadStream } from 'node:fs';
import { busyboxImageTar, busyboxRootfs } from '../helpers/busybox-image.js';

describe('busybox fixture', () => {
  it('builds a rootfs with every applet linked to /bin/busybox', () => {
    const root = busyboxRootfs();
    expect(statSync(join(root, 'bin/busybox')).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(root, 'bin/sh'))).toBe('/bin/busybox');
    expect(lstatSync(join(root, 'usr/bin/wget')).isSymbolicLink()).toBe(true);
    expect(statSync(join(root, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(existsSync(join(root, 'etc/passwd'))).toBe(true);
  });

  it('builds a docker save archive with manifest.json and repositories', async () => {
    const tar = await busyboxImageTar();
    const names: string[] = [];
    const ex = extract();
    ex.on('entry', (h, stream, next) => {
      names.push(h.name);
      stream.resume();
      stream.on('end', next);
    });
    await new Promise<void>((resolve, reject) => {
      ex.on('finish', resolve);
      ex.on('error', reject);
      createReadStream(tar).pipe(ex);
    });
    expect(names).toContain('manifest.json');
    expect(names).toContain('repositories');
    expect(names.filter((n) => n.endsWith('/layer.tar'))).toHaveLength(1);
  });
});
