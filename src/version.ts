import { readFileSync } from 'node:fs';
import { packagePath } from './package-root.js';

/** Berth's own version, from package.json. */
export const BERTH_VERSION: string = (
  JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }
).version;

/** The API versions Berth serves: it advertises the maximum. */
export const API_VERSION = '1.50';
export const MIN_API_VERSION = '1.24';
