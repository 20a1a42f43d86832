import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadBerthSpec } from '../helpers/api-spec.js';

type Schema = { properties?: Record<string, Schema>; items?: Schema; $ref?: string; allOf?: Schema[]; 'x-docker-schema'?: string };

const docker = parse(readFileSync(new URL('../../api-spec/docker-engine-api-v1.50.yaml', import.meta.url), 'utf8')) as {
  definitions: Record<string, Schema>;
};

/** Follows $ref and allOf in Docker's swagger so nested objects can be compared. */
function resolveDocker(s: Schema | undefined): Schema | undefined {
  if (!s) return undefined;
  if (s.$ref) return resolveDocker(docker.definitions[s.$ref.replace('#/definitions/', '')]);
  if (s.allOf) {
    const props: Record<string, Schema> = {};
    for (const part of s.allOf) Object.assign(props, resolveDocker(part)?.properties ?? {});
    return { properties: props };
  }
  return s;
}

/** Every property Berth documents must exist, under the same name, in Docker's definition. */
function drift(ours: Schema, theirs: Schema | undefined, at: string): string[] {
  const t = resolveDocker(theirs);
  if (!t) return [];
  const out: string[] = [];
  if (ours.properties && t.properties) {
    for (const [name, sub] of Object.entries(ours.properties)) {
      if (!(name in t.properties)) out.push(`${at}.${name}`);
      else out.push(...drift(sub, t.properties[name], `${at}.${name}`));
    }
  }
  if (ours.items && t.items) out.push(...drift(ours.items, t.items, `${at}[]`));
  return out;
}

describe('api-spec/berth.yaml', () => {
  const spec = loadBerthSpec();
  const mapped = Object.entries(spec.components.schemas).filter(([, s]) => typeof s['x-docker-schema'] === 'string');

  it('maps its schemas onto Docker definitions that exist', () => {
    expect(mapped.length).toBeGreaterThan(0);
    for (const [name, s] of mapped) {
      expect(docker.definitions[s['x-docker-schema'] as string], `${name} → ${String(s['x-docker-schema'])}`).toBeDefined();
    }
  });

  it("uses only field names found in Docker's v1.50 spec", () => {
    const problems = mapped.flatMap(([name, s]) =>
      drift(s as Schema, docker.definitions[s['x-docker-schema'] as string], name),
    );
    expect(problems).toEqual([]);
  });
});
