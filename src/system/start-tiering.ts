import { setFlagsFromString } from 'node:v8';

/**
 * V8's tiering during the daemon's start. A start runs a burst of code once (module evaluation, the store, ~30
 * `ip`/`iptables` runs for the default bridge, each going through Node's child_process, stream and validator code)
 * and is then idle. With V8's default thresholds that burst is just enough to get a handful of Node's internal
 * helpers (path.normalize's loop, the argument validators, async_hooks' hasHooks) compiled by TurboFan: the first
 * TurboFan compile maps in the optimizing compiler's code and zone memory, ~4 MiB of an idle berthd's RSS, for
 * functions that will not run again until real work arrives. So while the daemon starts, functions tier up after
 * four times V8's budget and small ones no longer on their first tick; once it serves, V8's defaults are back and
 * the load it meets optimizes as before (the thresholds are read when a function's budget is next reset).
 *
 * Node 20's V8 (11.x) only: later V8s replaced these flags (invocation counts, Maglev), and a user who sets either
 * flag on the command line keeps it.
 */
const START_FLAGS = ['--interrupt-budget=270336', '--max-bytecode-size-for-early-opt=0'];
const DEFAULT_FLAGS = ['--interrupt-budget=67584', '--max-bytecode-size-for-early-opt=81'];

// Raised for the start as this module is evaluated: main.ts imports it first, before the daemon's modules run.
let relaxed =
  process.versions.v8.startsWith('11.') && !process.execArgv.some((a) => /^--(interrupt-budget|max-bytecode-size-for-early-opt)\b/.test(a.replace(/_/g, '-')));
if (relaxed) for (const f of START_FLAGS) setFlagsFromString(f);

/** Back to V8's defaults: the daemon serves. */
export function restoreTiering(): void {
  if (!relaxed) return;
  for (const f of DEFAULT_FLAGS) setFlagsFromString(f);
  relaxed = false;
}
