// The shim's parts tested on their own in C (native/shim/test/): the plan parser (plan_test.c) and the
// pinned namespace joins (ns_test.c, root only), user namespaces and their detached mounts (userns_test.c, root only),
// the json-file log's string escaping (escape_test.c) and its writer (log_test.c), built and run by
// `make -C native test-plan|test-ns|test-userns|test-escape|test-log`.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const NATIVE = fileURLToPath(new URL('../../../native', import.meta.url));
const make = (target: string): string =>
  execFileSync('make', ['-s', '-C', NATIVE, target], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('berth-shim C parts', () => {
  it('plan.c parses every record kind and refuses malformed plans', () => {
    expect(make('test-plan')).toContain('plan_test: ok');
  });

  it("util.c's json_escape writes what a byte-at-a-time reference of Docker's jsonlog escaping writes", () => {
    expect(make('test-escape')).toContain('escape_test: ok');
  });

  it('log.c writes the entries a plain reference writes whatever sizes the output arrives in, rotated files included, and keeps no block reserved past a file\'s end', () => {
    expect(make('test-log')).toContain('log_test: ok');
  });

  it.skipIf(process.getuid?.() !== 0)('ns.c joins a pinned process through the pidfd and the /proc fallback, and refuses a recycled or gone pid', () => {
    expect(make('test-ns')).toContain('ns_test: ok');
  });

  it.skipIf(process.getuid?.() !== 0)('userns.c makes a user namespace with its maps, and the rootfs (overlay over idmapped layers) and binds (idmapped or not, flags set) as detached mounts', () => {
    expect(make('test-userns')).toContain('userns_test: ok');
  });
});
