import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Integration tests run the compiled daemon: make sure a build exists (npm test builds first). */
export default function setup(): void {
  const main = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
}
