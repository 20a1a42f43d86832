import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The CNI portmap plugin (CRI pods with host ports) creates top-level nat chains (CNI-HOSTPORT-*) and, as on a
// real node, never removes them. Those the run created are removed once every test file is done — not per file,
// since files run concurrently and another one may still have pods using them.
const PORTMAP_CHAINS = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK'];

function natRules(): string[] {
  try {
    return execFileSync('iptables', ['-w', '-t', 'nat', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n');
  } catch {
    return []; // no iptables here: nothing to clean
  }
}

const chainsIn = (rules: string[]): Set<string> => new Set(rules.filter((r) => r.startsWith('-N ')).map((r) => r.slice(3).trim()));

function removePortmapChains(createdByRun: string[]): void {
  const rules = natRules();
  // A chain still holding per-pod rules belongs to something alive: leave everything as it is.
  if (rules.some((r) => createdByRun.some((c) => r.startsWith(`-A ${c} `)) && !r.includes('MASQUERADE') && !r.includes('--set-xmark'))) return;
  const iptables = (args: string[]): void => {
    try {
      execFileSync('iptables', ['-w', '-t', 'nat', ...args], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  };
  for (const r of rules) {
    const m = /^-A (PREROUTING|OUTPUT|POSTROUTING) (.*-j (\S+))$/.exec(r);
    if (m && createdByRun.includes(m[3] as string)) iptables(['-D', m[1] as string, ...splitRule(m[2] as string)]);
  }
  for (const c of createdByRun) iptables(['-F', c]);
  for (const c of createdByRun) iptables(['-X', c]);
}

/** Splits an `iptables -S` rule into arguments (quoted comments stay one argument). */
function splitRule(rule: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(rule); m; m = re.exec(rule)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string));
  return out;
}

/** Integration tests run the compiled daemon: make sure a build exists (npm test builds first). */
export default function setup(): () => void {
  const main = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  const before = chainsIn(natRules());
  return () => {
    const created = [...chainsIn(natRules())].filter((c) => PORTMAP_CHAINS.includes(c) && !before.has(c));
    if (created.length > 0) removePortmapChains(created);
  };
}
