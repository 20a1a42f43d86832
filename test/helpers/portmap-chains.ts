import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname } from 'node:path';

/**
 * The CNI portmap plugin (CRI pods with host ports) creates three shared nat chains, with their jumps from
 * PREROUTING/OUTPUT/POSTROUTING, in the family of each pod address, and never removes them (containerd leaves them
 * on a node too). Tests must leave the host as they found it, so these are removed once no test session needs them
 * any more, and only those that no session found already there.
 *
 * Test sessions (vitest runs: the CRI files run concurrently in one, and several runs can share a machine) hold the
 * chains while they run. The first holder records which chains were there before (a state file); the last one to
 * let go removes the others, if nothing but portmap's own fixed rules is left in them. The bookkeeping is race-free:
 * - the lock and each holder are abstract unix socket names (`\0berth-test/...`, as claimSubnet in cri.ts): bound by
 *   one process at a time, released when closed or when the process ends however it ends, so no stale lock or holder;
 * - the removal is one iptables-restore transaction that deletes the jumps, portmap's fixed rules and the chains: a
 *   chain that someone else filled or references in the meantime makes it fail as a whole, leaving everything as is;
 * - a session that died before letting go, or ended while a chain was still in use, leaves the state file: the next
 *   first holder keeps that baseline, so its own end removes what was created since.
 */
export const PORTMAP_CHAINS = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK'];

const FAMILIES = ['iptables', 'ip6tables'] as const;
type Family = (typeof FAMILIES)[number];
type Baseline = Record<Family, string[]>;

const STATE_FILE = '/run/berth-test/portmap-chains.json';
const LOCK_NAME = 'berth-test/portmap-lock';
const HOLDER_PREFIX = 'berth-test/portmap-holder/';
/** Test sessions that can hold the chains at once (a handful in practice: each vitest run on the machine is one). */
const HOLDER_SLOTS = 32;

/** The family's nat rules as `-S` prints them, or undefined where that tool is missing or unusable. */
function natRules(family: Family): string[] | undefined {
  try {
    return execFileSync(family, ['-w', '-t', 'nat', '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n');
  } catch {
    return undefined;
  }
}

function portmapChainsIn(rules: string[] | undefined): string[] {
  return (rules ?? []).filter((r) => r.startsWith('-N ')).map((r) => r.slice(3).trim()).filter((c) => PORTMAP_CHAINS.includes(c));
}

/** Binds an abstract unix socket name; undefined when another process holds it. */
function bindAbstract(name: string): Promise<Server | undefined> {
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(undefined) : reject(err)));
    server.listen({ path: `\0${name}` }, () => {
      server.unref();
      resolve(server);
    });
  });
}

const closeServer = (s: Server): Promise<void> => new Promise((resolve) => s.close(() => resolve()));

/** Runs `fn` holding the machine-wide lock (waiting for another holder to finish: these sections are short). */
async function withLock<T>(fn: () => T | Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const lock = await bindAbstract(LOCK_NAME);
    if (lock) {
      try {
        return await fn();
      } finally {
        await closeServer(lock);
      }
    }
    if (Date.now() > deadline) throw new Error(`the portmap chain lock (@${LOCK_NAME}) was not free within 120 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Which holder slots are taken now. Each is probed by binding its name, which the kernel refuses while another
 * process holds it (listing /proc/net/unix instead can miss a line when sockets come and go during the read).
 */
async function heldSlots(): Promise<number[]> {
  const held: number[] = [];
  for (let i = 0; i < HOLDER_SLOTS; i++) {
    const probe = await bindAbstract(`${HOLDER_PREFIX}${i}`);
    if (probe) await closeServer(probe);
    else held.push(i);
  }
  return held;
}

function readBaseline(): Baseline | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  try {
    const v = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as Partial<Baseline>;
    return { iptables: Array.isArray(v.iptables) ? v.iptables : [], ip6tables: Array.isArray(v.ip6tables) ? v.ip6tables : [] };
  } catch {
    return undefined;
  }
}

/**
 * The restore script that removes `created` (portmap chains of this family that the baseline did not have), or
 * undefined when there is nothing to remove or a chain holds a rule that is not portmap's fixed one (a pod's jump:
 * something still uses them).
 */
export function removalScript(rules: string[], created: string[]): string | undefined {
  if (created.length === 0) return undefined;
  const lines: string[] = [];
  for (const r of rules) {
    if (!r.startsWith('-A ')) continue;
    const chain = r.split(' ')[1] ?? '';
    const target = /(?:^| )-j (\S+)/.exec(r)?.[1] ?? '';
    if (['PREROUTING', 'OUTPUT', 'POSTROUTING'].includes(chain) && created.includes(target)) lines.push(`-D${r.slice(2)}`);
    else if (!created.includes(chain)) continue;
    else if (chain === 'CNI-HOSTPORT-MASQ' && target === 'MASQUERADE' && r.includes(' --mark ')) lines.push(`-D${r.slice(2)}`);
    else if (chain === 'CNI-HOSTPORT-SETMARK' && target === 'MARK' && r.includes(' --set-xmark ')) lines.push(`-D${r.slice(2)}`);
    else return undefined;
  }
  for (const c of created) lines.push(`-X ${c}`);
  return `*nat\n${lines.join('\n')}\nCOMMIT\n`;
}

/**
 * Removes the portmap chains the baseline did not have, family by family. Returns those removed and those left
 * (still in use, or taken over by someone else meanwhile).
 */
function removeCreatedChains(baseline: Baseline): { removed: string[]; left: string[] } {
  const removed: string[] = [];
  const left: string[] = [];
  for (const family of FAMILIES) {
    const rules = natRules(family);
    if (!rules) continue;
    const created = portmapChainsIn(rules).filter((c) => !baseline[family].includes(c));
    const named = created.map((c) => `${family} ${c}`);
    const script = removalScript(rules, created);
    if (!script) {
      left.push(...named);
      continue;
    }
    try {
      execFileSync(`${family}-restore`, ['-w', '--noflush'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
      removed.push(...named);
    } catch {
      // filled or referenced by someone else since the look: left as is
      left.push(...named);
    }
  }
  return { removed, left };
}

/**
 * Holds the portmap chains for this process until the returned function is called (or the process ends). The
 * first holder on the machine records the baseline; the last one to let go removes what is not in it.
 */
export async function holdPortmapChains(): Promise<() => Promise<string[]>> {
  const holder = await withLock(async () => {
    const held = await heldSlots();
    if (held.length === 0 && !readBaseline()) {
      const baseline: Baseline = { iptables: portmapChainsIn(natRules('iptables')), ip6tables: portmapChainsIn(natRules('ip6tables')) };
      mkdirSync(dirname(STATE_FILE), { recursive: true });
      writeFileSync(STATE_FILE, JSON.stringify(baseline));
    }
    // the lock is ours: a free slot stays free until it is bound here
    const slot = [...Array(HOLDER_SLOTS).keys()].find((i) => !held.includes(i));
    const s = slot === undefined ? undefined : await bindAbstract(`${HOLDER_PREFIX}${slot}`);
    if (!s) throw new Error(`all ${HOLDER_SLOTS} portmap chain holder slots are taken`);
    return s;
  });
  return () =>
    withLock(async () => {
      await closeServer(holder);
      if ((await heldSlots()).length > 0) return [];
      const baseline = readBaseline();
      if (!baseline) return [];
      const { removed, left } = removeCreatedChains(baseline);
      // a chain still in use keeps the baseline, so the end of a later session removes it once it is free
      if (left.length === 0) rmSync(STATE_FILE, { force: true });
      return removed;
    });
}
