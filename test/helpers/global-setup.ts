import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { holdPortmapChains } from './portmap-chains.js';

/**
 * Integration tests run the compiled daemon: make sure a build exists (npm test builds first). The run holds the CNI
 * portmap plugin's shared nat chains until every test file is done (see portmap-chains.ts): test files run
 * concurrently, and the last session on the machine to end removes the chains that none found there.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const main = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  const release = await holdPortmapChains();
  return async () => {
    await release();
  };
}
