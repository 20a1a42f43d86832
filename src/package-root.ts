import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The one place that knows where Berth's files are. This module sits one level below the project root in every
 * form Berth runs in: src/package-root.ts (tests), dist/package-root.js (tsc's output, which the benches import)
 * and dist/main.js or a dist/ chunk (the bundle berthd runs, which inlines this module). Everything else asks here
 * for a path under the root (native/build, api-spec, package.json) instead of resolving against its own
 * import.meta.url, which in the bundle is dist/main.js for every module.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** An absolute path under the project root: packagePath('native', 'build', 'berth-shim'). */
export function packagePath(...parts: string[]): string {
  return join(ROOT, ...parts);
}

/** `require` resolving from the project root: for the dependencies loaded at first use (ws, undici, ajv, yaml). */
export const packageRequire: NodeJS.Require = createRequire(join(ROOT, 'package.json'));
