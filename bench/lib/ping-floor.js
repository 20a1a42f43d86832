// The floor of the /_ping figure: do-nothing HTTP servers (bench/ping-floor) in Node and in Go, asked by the same
// client as the daemons. A kept-alive ping on an idle machine is mostly two processes waking up; these show how
// much of each daemon's figure its runtime's wake-up and HTTP stack take before the daemon does anything.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'ping-floor');
const CACHE = process.env.BERTH_TOOLS_CACHE ?? '/var/cache/berth-tools';

/** The Go floor server's binary, built into the tool cache when missing or older than its source; undefined without go. */
function goFloorBinary() {
  const bin = join(CACHE, 'ping-floor', 'ping-floor');
  const src = join(SRC, 'main.go');
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return bin;
  if (spawnSync('go', ['version']).status !== 0) return undefined;
  mkdirSync(dirname(bin), { recursive: true });
  const env = { ...process.env, GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local', GOCACHE: join(CACHE, 'go-build') };
  const r = spawnSync('go', ['build', '-o', bin, '.'], { cwd: SRC, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the Go ping floor: ${r.stderr}`);
  return bin;
}

/** Starts the floor server in `lang` ('node' or 'go'); resolves to { sock, stop } or undefined when go is missing. */
export async function startPingFloor(lang) {
  const cmd = lang === 'go' ? goFloorBinary() : process.execPath;
  if (!cmd) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bpf-'));
  const sock = join(dir, 'floor.sock');
  const child = spawn(cmd, lang === 'go' ? [sock] : [join(SRC, 'server.js'), sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', (code) => reject(new Error(`${lang} ping floor exited (${code})`)));
  });
  return {
    sock,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
