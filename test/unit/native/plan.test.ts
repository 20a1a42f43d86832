// The shim's plan parser (native/shim/plan.c) tested on its own in C: native/shim/test/plan_test.c,
// built and run by `make -C native test-plan`.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const NATIVE = fileURLToPath(new URL('../../../native', import.meta.url));

describe('berth-shim plan parser (C)', () => {
  it('parses every record kind and refuses malformed plans', () => {
    const out = execFileSync('make', ['-s', '-C', NATIVE, 'test-plan'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toContain('plan_test: ok');
  });
});
