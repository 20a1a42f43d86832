import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The integration tests put bridges with fixed subnets on the real host (10.200.0.0/16 and up), and vitest runs
 * two test files at a time: two files with the same prefix would route it to two bridges at once. Each 10.N.0.0/16
 * from 10.200 up belongs to one file (test/helpers/cri.ts claims its /24s of 10.200 at run time).
 */
describe('fixed test subnets', () => {
  it('no two test files share a 10.N.0.0/16 of the routed test range (N >= 200)', () => {
    const root = fileURLToPath(new URL('../', import.meta.url));
    const owners = new Map<number, Set<string>>();
    for (const sub of ['integration', 'helpers']) {
      for (const f of readdirSync(join(root, sub)).filter((x) => x.endsWith('.ts'))) {
        const text = readFileSync(join(root, sub, f), 'utf8');
        for (const m of text.matchAll(/\b10\.(\d{1,3})\.(?:\d{1,3}|\$\{)/g)) {
          const n = Number(m[1]);
          if (n < 200) continue;
          const set = owners.get(n) ?? new Set<string>();
          set.add(`${sub}/${f}`);
          owners.set(n, set);
        }
      }
    }
    const shared = [...owners].filter(([, files]) => files.size > 1).map(([n, files]) => `10.${n}: ${[...files].join(', ')}`);
    expect(shared).toEqual([]);
    expect(owners.size).toBeGreaterThan(10);
  });
});
