// Shared pieces of the filesystem security tests (issue #19): a static "racer" binary that swaps names with
// RENAME_EXCHANGE as fast as the kernel allows, and a busybox image carrying it at /racer.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxEntries, busyboxImageTar } from '../helpers/busybox-image.js';
import type { TestDaemon } from '../helpers/daemon.js';
import { dockerSaveArchive, type LayerEntry } from '../helpers/image-builder.js';

const SOURCE = fileURLToPath(new URL('../fixtures/security/racer.c', import.meta.url));
const CACHE = fileURLToPath(new URL('../fixtures/cache/', import.meta.url));

/** The racer built static (cached per source version; concurrent workers race safely by rename). */
export function racerBinary(): string {
  const src = readFileSync(SOURCE);
  const out = join(CACHE, `racer-${createHash('sha256').update(src).digest('hex').slice(0, 16)}`);
  if (existsSync(out)) return out;
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  execFileSync('cc', ['-static', '-O2', '-Wall', '-Wextra', '-o', tmp, SOURCE]);
  try {
    renameSync(tmp, out);
  } catch {
    rmSync(tmp, { force: true });
  }
  return out;
}

/** Loads busybox:latest and an image `tag` = busybox + /racer + `extra` entries with `config`. */
export async function loadRacerImage(
  d: TestDaemon,
  dir: string,
  tag: string,
  extra: LayerEntry[] = [],
  config: Record<string, unknown> = {},
): Promise<void> {
  const bb = await d.docker(['load', '-i', await busyboxImageTar()]);
  if (bb.code !== 0) throw new Error(`loading busybox failed: ${bb.stderr}`);
  const tar = join(dir, `${tag.replace(/[^A-Za-z0-9]+/g, '_')}.tar`);
  writeFileSync(
    tar,
    await dockerSaveArchive([
      {
        repoTags: [tag],
        config: { Cmd: ['sh'], ...config },
        layers: [busyboxEntries(), [{ path: 'racer', type: 'file', mode: 0o755, content: readFileSync(racerBinary()) }, ...extra]],
      },
    ]),
  );
  const r = await d.docker(['load', '-i', tar]);
  if (r.code !== 0) throw new Error(`loading ${tag} failed: ${r.stderr}`);
}

/** Starts a detached container and waits until its racer printed "ready" (the race is on). */
export async function startRacer(d: TestDaemon, name: string, args: string[], waitReady = true): Promise<void> {
  const r = await d.docker(['run', '-d', '--name', name, ...args]);
  if (r.code !== 0) throw new Error(`starting racer ${name} failed: ${r.stderr}`);
  if (!waitReady) return;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const logs = await d.docker(['logs', name]);
    if (logs.stdout.includes('ready')) return;
    if (Date.now() > deadline) throw new Error(`racer ${name} never got ready: ${logs.stdout}${logs.stderr}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** Container ids this daemon holds (for cleanup). */
export async function removeAllContainers(d: TestDaemon): Promise<void> {
  const ids = (await d.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await d.docker(['rm', '-f', '-v', ...ids], { timeoutMs: 120_000 });
}
