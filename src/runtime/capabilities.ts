// Linux capability names ↔ numbers, Docker's default set and its CapAdd/CapDrop rules
// (moby daemon/pkg/oci/caps: DefaultCapabilities, TweakCapabilities, NormalizeLegacyCapabilities).

import { readFileSync } from 'node:fs';
import { InvalidParameterError } from '../errors.js';

/** Every capability Linux defines up to 6.x, by number. */
export const CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', // 0
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL', // 5
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE', // 10
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', // 15
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', // 20
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', // 25
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL', // 30
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM', // 35
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE', // 40
];

const BY_NAME: ReadonlyMap<string, number> = new Map(CAPABILITIES.map((n, i) => [n, i]));

/** Docker's default capability set, in Docker's order (bitmask 0xa80425fb). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export function capabilityNumber(name: string): number | undefined {
  return BY_NAME.get(name);
}

export function capabilityName(n: number): string | undefined {
  return CAPABILITIES[n];
}

/** Bitmask of a list of `CAP_X` names (unknown names throw). */
export function capabilityMask(names: readonly string[]): bigint {
  let m = 0n;
  for (const n of names) {
    const i = BY_NAME.get(n);
    if (i === undefined) throw new InvalidParameterError(`unknown capability: ${JSON.stringify(n)}`);
    m |= 1n << BigInt(i);
  }
  return m;
}

/** `CAP_X` names in a bitmask, ascending (bits above the table are ignored). */
export function capabilityNames(mask: bigint): string[] {
  return CAPABILITIES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

/** Docker's NormalizeLegacyCapabilities for one name: upper-cased, `CAP_` prefixed; "all" → "ALL". */
export function normalizeCapability(name: string): string {
  const u = name.toUpperCase();
  if (u === 'ALL') return u;
  return u.startsWith('CAP_') ? u : `CAP_${u}`;
}

function normalizeList(list: readonly string[], valid: readonly string[]): string[] {
  return list.map((raw) => {
    const c = normalizeCapability(raw);
    if (c !== 'ALL' && !valid.includes(c)) throw new InvalidParameterError(`unknown capability: ${JSON.stringify(c)}`);
    return c;
  });
}

/**
 * Docker's TweakCapabilities (§3.1): names normalised and validated; `ALL` in capAdd = every capability
 * (`all`) minus capDrop; `ALL` in capDrop = exactly capAdd; otherwise (defaults − drops) followed by the
 * adds (appended as given, like Docker). `all` defaults to every capability Linux defines; berthd passes
 * its own bounding set (privilegedCapabilities()).
 */
export function tweakCapabilities(
  defaults: readonly string[],
  capAdd: readonly string[] = [],
  capDrop: readonly string[] = [],
  all: readonly string[] = CAPABILITIES,
): string[] {
  if (capAdd.length === 0 && capDrop.length === 0) return [...defaults];
  const drops = normalizeList(capDrop, CAPABILITIES);
  const adds = normalizeList(capAdd, CAPABILITIES);
  if (adds.includes('ALL')) return all.filter((c) => !drops.includes(c));
  if (drops.includes('ALL')) return adds;
  return [...defaults.filter((c) => !drops.includes(c)), ...adds];
}

/** The capabilities in a /proc/<pid>/status `CapBnd:` line. */
export function parseCapBnd(statusText: string): bigint {
  const m = /^CapBnd:\s*([0-9a-fA-F]+)$/m.exec(statusText);
  if (!m?.[1]) throw new Error('no CapBnd line in status');
  return BigInt(`0x${m[1]}`);
}

/**
 * What `--privileged` grants: every capability in berthd's own bounding set (moby HEAD takes the
 * daemon's current caps), so privileged containers work on hosts whose bounding set is reduced.
 */
export function privilegedCapabilities(statusText?: string): string[] {
  return capabilityNames(parseCapBnd(statusText ?? readFileSync('/proc/self/status', 'utf8')));
}
