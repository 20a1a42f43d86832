#!/usr/bin/env node
// Build step: Docker's API description (api-spec/docker-engine-api-v1.50.yaml, the one source of the request
// schemas) as JSON in dist/, without its prose, so berthd does not parse 400 kB of YAML at every start.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));
const spec = parse(readFileSync(`${root}api-spec/docker-engine-api-v1.50.yaml`, 'utf8'));
const strip = (v) => {
  if (Array.isArray(v)) return v.map(strip);
  if (typeof v !== 'object' || v === null) return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) if (k !== 'description' && k !== 'example' && k !== 'examples') out[k] = strip(x);
  return out;
};
const out = `${root}dist/api/docker-engine-api-v1.50.json`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ definitions: strip(spec.definitions), paths: strip(spec.paths) }));
