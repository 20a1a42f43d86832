import { existsSync, mkdtempSync, rmSync, copyFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestDaemon } from './daemon.js';

/**
 * The testcontainers reaper (Ryuk, github.com/testcontainers/moby-ryuk) for the tests that run testcontainers-node
 * with its reaper on. The Go module proxy refuses that module (403 "not available"), so scripts/install-ryuk.sh
 * cannot build it in CI; a binary put into the tool cache by other means is used when present. Nothing of it is in
 * the repo. The image is packaged on the test's own daemon under the name testcontainers-node asks for by default.
 */

const require = createRequire(import.meta.url);

/** testcontainers-node's default reaper image, e.g. `testcontainers/ryuk:0.14.0`. */
export function reaperImageName(): string {
  const reaper = require('testcontainers/build/reaper/reaper.js') as { getReaperImage(): string };
  return reaper.getReaperImage();
}

/** The cached static Ryuk binary for the version testcontainers-node asks for. */
export function ryukBinary(): string {
  const version = reaperImageName().split(':').pop() ?? '';
  return join(process.env.BERTH_TOOLS_CACHE ?? '/var/cache/berth-tools', 'ryuk', version, 'ryuk');
}

/** Why the reaper tests cannot run here, or undefined when the binary is in the cache. */
export function ryukUnavailable(): string | undefined {
  const bin = ryukBinary();
  if (existsSync(bin)) return undefined;
  return `no Ryuk binary at ${bin}: the Go module proxy refuses github.com/testcontainers/moby-ryuk (403), so CI cannot build it (scripts/install-ryuk.sh)`;
}

/** Builds the reaper image on `d` from the cached binary: a scratch image as upstream ships it (binary at /bin/ryuk). */
export async function buildRyukImage(d: TestDaemon): Promise<string> {
  const image = reaperImageName();
  const ctx = mkdtempSync(join(tmpdir(), 'ryuk-ctx-'));
  try {
    copyFileSync(ryukBinary(), join(ctx, 'ryuk'));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY ryuk /bin/ryuk\nCMD ["/bin/ryuk"]\nLABEL org.testcontainers.ryuk=true\n');
    const r = await d.docker(['build', '-q', '-t', image, ctx], { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`building ${image}: ${r.stderr}`);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return image;
}
