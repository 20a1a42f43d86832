// Image archives for the benchmarks, made here (no network): docker-save format, any number of images.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { request } from 'undici';
import { freePort } from './common.js';

const entry = (p, name, data) => new Promise((r, j) => p.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (e) => (e ? j(e) : r())));

/** A layer tar in memory: `files` files of `fileBytes` random bytes under dir `l<tag>/`. */
async function layerTar(tag, files, fileBytes) {
  const p = pack();
  const chunks = [];
  p.on('data', (c) => chunks.push(c));
  const done = new Promise((r) => p.on('end', r));
  for (let i = 0; i < files; i++) await entry(p, `l${tag}/f${i}`, fileBytes > 0 ? randomBytes(fileBytes) : Buffer.from(`${tag}/${i}\n`));
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * Writes a docker-save archive of `images` images named `<name>:<i>`, each one layer of `files` files of
 * `fileBytes` bytes (0: a tiny distinct file), to `path`.
 */
export async function writeImageArchive(path, { images = 1, name = 'bench/img', files = 1, fileBytes = 0 } = {}) {
  const p = pack();
  const done = pipeline(p, createWriteStream(path));
  const manifest = [];
  for (let i = 0; i < images; i++) {
    const layer = await layerTar(`${i}-${randomBytes(4).toString('hex')}`, files, fileBytes);
    const diffId = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
    const config = Buffer.from(JSON.stringify({
      architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z', config: { Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created: '2024-01-01T00:00:00Z', created_by: `bench ${i}` }],
    }));
    const hex = createHash('sha256').update(config).digest('hex');
    await entry(p, `${hex}.json`, config);
    await entry(p, `l${i}/layer.tar`, layer);
    manifest.push({ Config: `${hex}.json`, RepoTags: [`${name}:${i}`], Layers: [`l${i}/layer.tar`] });
  }
  await entry(p, 'manifest.json', Buffer.from(JSON.stringify(manifest)));
  p.finalize();
  await done;
  return path;
}

/** Debian's docker-registry on 127.0.0.1 with fresh storage; stop() ends it by pid and removes its files. */
export async function startRegistry() {
  const dir = mkdtempSync(join(tmpdir(), 'breg-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  writeFileSync(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n  secret: ${randomBytes(8).toString('hex')}\n`);
  const log = openSync(join(dir, 'registry.log'), 'a');
  const child = spawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', log, log] });
  closeSync(log);
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 200; i++) {
    try {
      if ((await request(`http://${host}/v2/`)).statusCode === 200) return { host, stop };
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error('docker-registry did not start');
}
