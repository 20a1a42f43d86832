import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * vitest runs two test files at a time, on the real host. The integration tests put bridges with fixed subnets
 * there (10.200.0.0/16 and up): two files with the same prefix would route it to two bridges at once. Each
 * 10.N.0.0/16 from 10.200 up belongs to one file (test/helpers/cri.ts claims its /24s of 10.200 at run time), and
 * so does each fixed host port of 18000-18999.
 */

/** For each value `re` captures (and `keep` accepts) in the integration tests and helpers, the files using it. */
function owners(re: RegExp, keep: (v: number) => boolean): Map<number, Set<string>> {
  const root = fileURLToPath(new URL('../', import.meta.url));
  const out = new Map<number, Set<string>>();
  for (const sub of ['integration', 'helpers']) {
    for (const f of readdirSync(join(root, sub)).filter((x) => x.endsWith('.ts'))) {
      for (const m of readFileSync(join(root, sub, f), 'utf8').matchAll(re)) {
        const n = Number(m[1]);
        if (!keep(n)) continue;
        const set = out.get(n) ?? new Set<string>();
        set.add(`${sub}/${f}`);
        out.set(n, set);
      }
    }
  }
  return out;
}

const shared = (m: Map<number, Set<string>>, show: (n: number) => string): string[] =>
  [...m].filter(([, files]) => files.size > 1).map(([n, files]) => `${show(n)}: ${[...files].join(', ')}`);

describe('fixed host resources of the integration tests', () => {
  it('no two test files share a 10.N.0.0/16 of the routed test range (N >= 200)', () => {
    const used = owners(/\b10\.(\d{1,3})\.(?:\d{1,3}|\$\{)/g, (n) => n >= 200);
    expect(shared(used, (n) => `10.${n}`)).toEqual([]);
    expect(used.size).toBeGreaterThan(10);
  });

  it('no two test files bind the same fixed host port (18000-18999)', () => {
    const used = owners(/\b(18\d{3})\b/g, () => true);
    expect(shared(used, String)).toEqual([]);
    expect(used.size).toBeGreaterThan(5);
  });
});
