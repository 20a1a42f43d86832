// cgroup v2 device rules: the ordered OCI `linux.resources.devices` list is reduced to the state the v1 devices
// controller would end in (a default action plus exceptions, like runc's emulator), then compiled into an eBPF
// program of type BPF_PROG_TYPE_CGROUP_DEVICE. The C addon only loads and attaches the bytes built here.
//
// The program sees struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; } where
// access_type = (access << 16) | type, type BPF_DEVCG_DEV_BLOCK = 1 / CHAR = 2, access MKNOD = 1 / READ = 2 /
// WRITE = 4. It returns 1 to allow, 0 to deny (the kernel answers EPERM).

import { BerthError } from '../../errors.js';
import type { LinuxDeviceCgroup } from './resources.js';

export const BPF_DEVCG_DEV_BLOCK = 1;
export const BPF_DEVCG_DEV_CHAR = 2;
export const BPF_DEVCG_ACC_MKNOD = 1;
export const BPF_DEVCG_ACC_READ = 2;
export const BPF_DEVCG_ACC_WRITE = 4;
const ACC_ALL = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

/** One exception of the emulated v1 state: access is a BPF_DEVCG_ACC_* mask, −1 = wildcard number. */
export interface DeviceException {
  type: 'b' | 'c';
  major: number;
  minor: number;
  access: number;
}

/** What the v1 devices controller would hold after the rules: default action plus exceptions to it. */
export interface EmulatedDeviceRules {
  defaultAllow: boolean;
  exceptions: DeviceException[];
}

const UINT32_MAX = 0xffffffff;

function accessMask(access: string | undefined): number {
  let mask = 0;
  for (const ch of access ?? '') {
    if (ch === 'r') mask |= BPF_DEVCG_ACC_READ;
    else if (ch === 'w') mask |= BPF_DEVCG_ACC_WRITE;
    else if (ch === 'm') mask |= BPF_DEVCG_ACC_MKNOD;
    else throw new BerthError(`unknown device access ${JSON.stringify(ch)} in device rule`);
  }
  return mask;
}

function accessString(mask: number): string {
  return `${mask & BPF_DEVCG_ACC_READ ? 'r' : ''}${mask & BPF_DEVCG_ACC_WRITE ? 'w' : ''}${mask & BPF_DEVCG_ACC_MKNOD ? 'm' : ''}`;
}

function num(n: number | undefined): number {
  return n === undefined || n < 0 ? -1 : n;
}

function describe(type: string, major: number, minor: number, access: number): string {
  const part = (n: number): string => (n < 0 ? '*' : String(n));
  return `${type} ${part(major)}:${part(minor)} ${accessString(access)}`;
}

/**
 * Replays the rules as the v1 devices controller would (and as runc's emulator does for v2): a type `a` rule
 * resets to allow-all or deny-all; other rules add to, or take access away from, the exact exception with the same
 * type/major/minor. Taking access away from a device a wildcard exception also covers cannot work (v1 silently
 * ignores it), so that is refused, as runc refuses it.
 */
export function emulateDeviceRules(rules: readonly LinuxDeviceCgroup[]): EmulatedDeviceRules {
  let defaultAllow = false;
  let map = new Map<string, DeviceException>();
  const key = (type: string, major: number, minor: number): string => `${type} ${major}:${minor}`;
  for (const rule of rules) {
    const type = rule.type ?? 'a';
    if (type === 'a') {
      defaultAllow = rule.allow;
      map = new Map();
      continue;
    }
    const major = num(rule.major);
    const minor = num(rule.minor);
    if (major > UINT32_MAX || minor > UINT32_MAX) {
      throw new BerthError(`invalid device rule ${key(type, major, minor)}: number out of range`);
    }
    const access = accessMask(rule.access);
    const k = key(type, major, minor);
    const existing = map.get(k);
    if (rule.allow !== defaultAllow) {
      // Adds an exception (an allow on a deny-all cgroup or a deny on an allow-all one).
      map.set(k, { type, major, minor, access: (existing?.access ?? 0) | access });
      continue;
    }
    // Removes access from the exact exception; refuse when a wider wildcard exception would keep granting it.
    for (const [pmaj, pmin] of [
      [-1, minor],
      [major, -1],
      [-1, -1],
    ] as const) {
      if (pmaj === major && pmin === minor) continue;
      const partial = map.get(key(type, pmaj, pmin));
      if (partial !== undefined && (partial.access & access) !== 0) {
        throw new BerthError(
          `requested rule [${describe(type, major, minor, access)}] not supported by devices cgroupv1 ` +
            `(cannot punch hole in existing wildcard rule [${describe(type, pmaj, pmin, partial.access)}])`,
        );
      }
    }
    if (existing === undefined) continue;
    const left = existing.access & ~access;
    if (left === 0) map.delete(k);
    else map.set(k, { ...existing, access: left });
  }
  const exceptions = [...map.values()].sort(
    (a, b) => a.major - b.major || a.minor - b.minor || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
  );
  return { defaultAllow, exceptions };
}

// --- eBPF encoding (struct bpf_insn: u8 code; u8 dst:4, src:4; s16 off; s32 imm; little-endian) ---------------

const BPF_LDX_MEM_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const BPF_ALU_AND_K = 0x54; // BPF_ALU (32-bit) | BPF_AND | BPF_K
const BPF_ALU_RSH_K = 0x74;
const BPF_ALU_MOV_K = 0xb4;
const BPF_ALU_MOV_X = 0xbc;
const BPF_JMP_JNE_K = 0x55; // BPF_JMP (64-bit compare) | BPF_JNE | BPF_K
const BPF_JMP_JNE_X = 0x5d;
const BPF_EXIT = 0x95;

export const BPF_OPCODES = {
  BPF_LDX_MEM_W,
  BPF_ALU_AND_K,
  BPF_ALU_RSH_K,
  BPF_ALU_MOV_K,
  BPF_ALU_MOV_X,
  BPF_JMP_JNE_K,
  BPF_JMP_JNE_X,
  BPF_EXIT,
} as const;

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** For jumps: index of the block to go to when not matching (resolved to `off` at the end). */
  next?: number;
}

const R0 = 0;
const R1 = 1;
const R2 = 2; // device type
const R3 = 3; // requested access
const R4 = 4; // major
const R5 = 5; // minor

/** The unsigned 32-bit value as the signed immediate the instruction carries. */
function imm32(v: number): number {
  return v | 0;
}

/** Exactly one instruction that jumps to the next block unless `reg` equals the u32 `value`, or two if it cannot. */
function jumpUnlessEquals(reg: number, value: number, next: number): Insn[] {
  // JNE with an immediate compares 64 bits against the sign-extended imm: fine below 2^31, else compare registers
  // after a 32-bit mov (which zero-extends).
  if (value <= 0x7fffffff) return [{ code: BPF_JMP_JNE_K, dst: reg, src: 0, off: 0, imm: value, next }];
  return [
    { code: BPF_ALU_MOV_K, dst: R1, src: 0, off: 0, imm: imm32(value) },
    { code: BPF_JMP_JNE_X, dst: reg, src: R1, off: 0, imm: 0, next },
  ];
}

/** Instructions of an emulated rule set: one block per exception returning !defaultAllow, then the default. */
export function deviceFilterInstructions(emulated: EmulatedDeviceRules): Insn[] {
  const insns: Insn[] = [
    { code: BPF_LDX_MEM_W, dst: R2, src: R1, off: 0, imm: 0 },
    { code: BPF_ALU_AND_K, dst: R2, src: 0, off: 0, imm: 0xffff },
    { code: BPF_LDX_MEM_W, dst: R3, src: R1, off: 0, imm: 0 },
    { code: BPF_ALU_RSH_K, dst: R3, src: 0, off: 0, imm: 16 },
    { code: BPF_LDX_MEM_W, dst: R4, src: R1, off: 4, imm: 0 },
    { code: BPF_LDX_MEM_W, dst: R5, src: R1, off: 8, imm: 0 },
  ];
  const blockStart: number[] = [];
  const verdict = emulated.defaultAllow ? 0 : 1;
  emulated.exceptions.forEach((ex, i) => {
    const next = i + 1;
    blockStart.push(insns.length);
    const type = ex.type === 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
    insns.push({ code: BPF_JMP_JNE_K, dst: R2, src: 0, off: 0, imm: type, next });
    if ((ex.access & ACC_ALL) !== ACC_ALL) {
      // The requested access must be a subset of the exception's: (R3 & access) == R3.
      insns.push({ code: BPF_ALU_MOV_X, dst: R1, src: R3, off: 0, imm: 0 });
      insns.push({ code: BPF_ALU_AND_K, dst: R1, src: 0, off: 0, imm: ex.access });
      insns.push({ code: BPF_JMP_JNE_X, dst: R1, src: R3, off: 0, imm: 0, next });
    }
    if (ex.major >= 0) insns.push(...jumpUnlessEquals(R4, ex.major, next));
    if (ex.minor >= 0) insns.push(...jumpUnlessEquals(R5, ex.minor, next));
    insns.push({ code: BPF_ALU_MOV_K, dst: R0, src: 0, off: 0, imm: verdict });
    insns.push({ code: BPF_EXIT, dst: 0, src: 0, off: 0, imm: 0 });
  });
  blockStart.push(insns.length);
  insns.push({ code: BPF_ALU_MOV_K, dst: R0, src: 0, off: 0, imm: emulated.defaultAllow ? 1 : 0 });
  insns.push({ code: BPF_EXIT, dst: 0, src: 0, off: 0, imm: 0 });
  insns.forEach((insn, idx) => {
    if (insn.next === undefined) return;
    const target = blockStart[insn.next];
    if (target === undefined) throw new BerthError('internal error: device filter jump without a target');
    const off = target - idx - 1;
    if (off > 0x7fff) throw new BerthError('too many device rules for one eBPF program');
    insn.off = off;
  });
  return insns;
}

/** struct bpf_insn[] bytes. */
export function encodeInstructions(insns: readonly Insn[]): Buffer {
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    const o = i * 8;
    buf.writeUInt8(insn.code, o);
    buf.writeUInt8((insn.dst & 0xf) | ((insn.src & 0xf) << 4), o + 1);
    buf.writeInt16LE(insn.off, o + 2);
    buf.writeInt32LE(insn.imm, o + 4);
  });
  return buf;
}

/** The BPF_PROG_TYPE_CGROUP_DEVICE program enforcing `rules` (ordered OCI rules, default deny). */
export function compileDeviceFilter(rules: readonly LinuxDeviceCgroup[]): Buffer {
  return encodeInstructions(deviceFilterInstructions(emulateDeviceRules(rules)));
}

/** runc's test for ignoring an attach failure: every rule allows everything it names (nothing is taken away). */
export function deviceRulesOnlyAllowAll(rules: readonly LinuxDeviceCgroup[]): boolean {
  return rules.every((r) => r.allow && accessMask(r.access) === ACC_ALL);
}
