// The HTTP client of the registry code, loaded on the first registry request instead of at daemon start: undici
// is about 15 MiB of resident memory that a daemon which never pulls, pushes or logs in does not need.
import type * as Undici from 'undici';
import { packageRequire } from '../package-root.js';

const require = packageRequire;
let loaded: typeof Undici | undefined;

function undici(): typeof Undici {
  return (loaded ??= require('undici') as typeof Undici);
}

export const request: typeof Undici.request = (...args) => undici().request(...args);

export function createAgent(options: Undici.Agent.Options): Undici.Agent {
  return new (undici().Agent)(options);
}
