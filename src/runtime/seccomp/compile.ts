// OCI `linux.seccomp` → classic-BPF seccomp filter (struct sock_filter[]), with the decisions runc 1.1 +
// libseccomp 2.5 make for the same configuration (executor-notes §6.3):
// - arch check first; a syscall from an architecture not in the filter gets the bad-arch action (KILL_THREAD,
//   libseccomp's default); x86_64 and x32 share AUDIT_ARCH_X86_64 and one section keyed by the full number
//   (x32 numbers carry 0x40000000); with x86_64 alone, numbers with that bit are bad-arch except nr == -1;
// - runc's ENOSYS stub: ERRNO(ENOSYS) for numbers above the largest one any rule of the profile names on that
//   arch (not when the default action is allow/log/trace or ERRNO(ENOSYS) already);
// - rules whose action equals the default are dropped; names an arch lacks are skipped; several conditions on
//   the same argument index split into one rule per condition (OR), otherwise conditions are ANDed;
// - 64-bit arches compare both 32-bit halves of an argument, 32-bit arches (i386, x32, arm) the low half;
// - dispatch on the syscall number is a binary search over intervals of equal decision (the ENOSYS stub
//   and the x32 bad-arch range are intervals too).

import { InvalidParameterError } from '../../errors.js';
import { BpfProgram, type Label } from './bpf-assembler.js';
import type { LinuxSeccomp, LinuxSeccompArg, SeccompAction, SeccompArch, SeccompFlag } from './profile.js';
import { aarch64Syscalls, armSyscalls } from './syscalls-aarch64.js';
import { i386Syscalls, x32Syscalls, x86_64Syscalls } from './syscalls-x86_64.js';

export type SeccompTargetArch = 'x86_64' | 'aarch64';

/** SECCOMP_RET_* action values (linux/seccomp.h). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** AUDIT_ARCH_* values (linux/audit.h) for the arches Berth compiles. */
export const AUDIT_ARCH = {
  X86_64: 0xc000003e,
  I386: 0x40000003,
  AARCH64: 0xc00000b7,
  ARM: 0x40000028,
} as const;

/** SECCOMP_FILTER_FLAG_* for seccomp(SECCOMP_SET_MODE_FILTER, flags, …). */
export const SECCOMP_FILTER_FLAG: Readonly<Record<SeccompFlag, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
};

export interface SeccompCompileOptions {
  /** Action for syscalls made with an architecture the filter does not cover. Default SCMP_ACT_KILL_THREAD (libseccomp's). */
  badArchAction?: Exclude<SeccompAction, 'SCMP_ACT_NOTIFY'>;
}

const X32_SYSCALL_BIT = 0x40000000;
const ENOSYS = 38;
const EPERM = 1;
const SECCOMP_DATA_NR = 0;
const SECCOMP_DATA_ARCH = 4;
const SECCOMP_DATA_ARGS = 16;

interface SubArch {
  arch: SeccompArch;
  audit: number;
  /** Its syscall numbers by name (the tables are built at first use). */
  table: () => ReadonlyMap<string, number>;
  /** 64: compare both halves of an argument; 32: the low half only. */
  argBits: 32 | 64;
}

const SUB_ARCHES: Readonly<Record<SeccompTargetArch, readonly SubArch[]>> = {
  x86_64: [
    { arch: 'SCMP_ARCH_X86_64', audit: AUDIT_ARCH.X86_64, table: x86_64Syscalls, argBits: 64 },
    { arch: 'SCMP_ARCH_X86', audit: AUDIT_ARCH.I386, table: i386Syscalls, argBits: 32 },
    { arch: 'SCMP_ARCH_X32', audit: AUDIT_ARCH.X86_64, table: x32Syscalls, argBits: 32 },
  ],
  aarch64: [
    { arch: 'SCMP_ARCH_AARCH64', audit: AUDIT_ARCH.AARCH64, table: aarch64Syscalls, argBits: 64 },
    { arch: 'SCMP_ARCH_ARM', audit: AUDIT_ARCH.ARM, table: armSyscalls, argBits: 32 },
  ],
};

/** The SECCOMP_RET_* value of an action (runc getAction: ERRNO/TRACE default to EPERM). */
export function seccompActionValue(action: SeccompAction, errnoRet?: number): number {
  switch (action) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET.TRAP;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET.ERRNO | ((errnoRet ?? EPERM) & 0xffff)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET.TRACE | ((errnoRet ?? EPERM) & 0xffff)) >>> 0;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET.LOG;
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET.ALLOW;
    case 'SCMP_ACT_NOTIFY':
      throw new InvalidParameterError('seccomp action SCMP_ACT_NOTIFY is not supported');
  }
}

/** The flags word for seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) from `linux.seccomp.flags`. */
export function seccompFilterFlags(oci: LinuxSeccomp): number {
  return (oci.flags ?? []).reduce((acc, f) => acc | SECCOMP_FILTER_FLAG[f], 0);
}

interface Cond {
  index: number;
  op: LinuxSeccompArg['op'];
  value: bigint;
  valueTwo: bigint;
}

interface Rule {
  conds: Cond[];
  ret: number;
}

interface Entry {
  nr: number;
  argBits: 32 | 64;
  /** In order; when the syscall has an unconditional rule, exactly that one rule (libseccomp: it subsumes the rest). */
  rules: Rule[];
}

interface Section {
  audit: number;
  subs: SubArch[];
  entries: Entry[];
  /** ENOSYS stub thresholds per sub-arch (runc patchbpf). */
  maxNr: Map<SeccompArch, number>;
}

const toBig = (v: number | bigint | undefined): bigint => BigInt.asUintN(64, BigInt(v ?? 0));

function rulesOf(oci: LinuxSeccomp, defaultRet: number): Array<{ names: string[]; rules: Rule[] }> {
  const out: Array<{ names: string[]; rules: Rule[] }> = [];
  for (const call of oci.syscalls ?? []) {
    const ret = seccompActionValue(call.action, call.errnoRet);
    if (ret === defaultRet) continue;
    const conds: Cond[] = (call.args ?? []).map((a) => {
      if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) {
        throw new InvalidParameterError(`seccomp argument index ${a.index} out of range 0..5`);
      }
      return { index: a.index, op: a.op, value: toBig(a.value), valueTwo: toBig(a.valueTwo) };
    });
    const indexes = conds.map((c) => c.index);
    const repeated = new Set(indexes).size !== indexes.length;
    const rules = repeated ? conds.map((c) => ({ conds: [c], ret })) : [{ conds, ret }];
    out.push({ names: call.names, rules });
  }
  return out;
}

function buildSections(oci: LinuxSeccomp, target: SeccompTargetArch, defaultRet: number): Section[] {
  const known = SUB_ARCHES[target];
  const native = known[0] as SubArch;
  const wanted = new Set<SeccompArch>([native.arch, ...(oci.architectures ?? [])]);
  const subs = known.filter((s) => wanted.has(s.arch));
  const sections: Section[] = [];
  for (const sub of subs) {
    let section = sections.find((s) => s.audit === sub.audit);
    if (!section) {
      section = { audit: sub.audit, subs: [], entries: [], maxNr: new Map() };
      sections.push(section);
    }
    section.subs.push(sub);
  }

  const grouped = rulesOf(oci, defaultRet);
  for (const section of sections) {
    const byNr = new Map<number, Entry>();
    for (const sub of section.subs) {
      // runc findLastSyscalls: every rule of the config counts, whatever its action.
      let max = 0;
      for (const call of oci.syscalls ?? []) {
        for (const name of call.names) {
          const nr = sub.table().get(name);
          if (nr !== undefined && nr > max) max = nr;
        }
      }
      if (max !== 0) section.maxNr.set(sub.arch, max);

      for (const { names, rules } of grouped) {
        for (const name of names) {
          const nr = sub.table().get(name);
          if (nr === undefined) continue; // libseccomp ignores names the arch lacks
          let entry = byNr.get(nr);
          if (!entry) {
            entry = { nr, argBits: sub.argBits, rules: [] };
            byNr.set(nr, entry);
          }
          if (entry.rules.length === 1 && entry.rules[0]?.conds.length === 0) continue; // already unconditional
          for (const rule of rules) {
            if (rule.conds.length === 0) {
              entry.rules = [rule];
              break;
            }
            entry.rules.push(rule);
          }
        }
      }
    }
    section.entries = [...byNr.values()].sort((a, b) => a.nr - b.nr);
  }
  return sections;
}

function hi32(v: bigint): number {
  return Number((v >> 32n) & 0xffffffffn);
}
function lo32(v: bigint): number {
  return Number(v & 0xffffffffn);
}

/** Emits one argument condition: control reaches `pass` when it holds, `fail` otherwise. */
function emitCond(p: BpfProgram, c: Cond, argBits: 32 | 64, pass: Label, fail: Label): void {
  const loOff = SECCOMP_DATA_ARGS + 8 * c.index;
  const hiOff = loOff + 4;
  const wide = argBits === 64;
  const v = c.value;
  const [vh, vl] = [hi32(v), lo32(v)];
  switch (c.op) {
    case 'SCMP_CMP_EQ':
    case 'SCMP_CMP_NE': {
      const [onEq, onNe] = c.op === 'SCMP_CMP_EQ' ? [pass, fail] : [fail, pass];
      if (wide) {
        p.ld(hiOff);
        const lo = p.label();
        p.j('jeq', vh, lo, onNe);
        p.place(lo);
      }
      p.ld(loOff);
      p.j('jeq', vl, onEq, onNe);
      return;
    }
    case 'SCMP_CMP_GT':
    case 'SCMP_CMP_GE':
    case 'SCMP_CMP_LT':
    case 'SCMP_CMP_LE': {
      // GT/GE hold when the high half is above, LT/LE when it is below; equal high halves decide on the low half.
      const upward = c.op === 'SCMP_CMP_GT' || c.op === 'SCMP_CMP_GE';
      const [above, below] = upward ? [pass, fail] : [fail, pass];
      if (wide) {
        p.ld(hiOff);
        const eqHi = p.label();
        if (vh === 0) {
          p.j('jgt', 0, above, eqHi); // high half 0 == vh
        } else {
          const notAbove = p.label();
          p.j('jgt', vh, above, notAbove);
          p.place(notAbove);
          p.j('jeq', vh, eqHi, below);
        }
        p.place(eqHi);
      }
      p.ld(loOff);
      if (c.op === 'SCMP_CMP_GT') p.j('jgt', vl, pass, fail);
      else if (c.op === 'SCMP_CMP_GE') p.j('jge', vl, pass, fail);
      else if (c.op === 'SCMP_CMP_LT') p.j('jge', vl, fail, pass);
      else p.j('jgt', vl, fail, pass);
      return;
    }
    case 'SCMP_CMP_MASKED_EQ': {
      const mask = c.value;
      const want = c.valueTwo;
      if (wide) {
        const [mh, wh] = [hi32(mask), hi32(want)];
        if (mh === 0) {
          if (wh !== 0) {
            p.ja(fail);
            return;
          }
        } else {
          p.ld(hiOff);
          if (mh !== 0xffffffff) p.and(mh);
          const lo = p.label();
          p.j('jeq', wh, lo, fail);
          p.place(lo);
        }
      }
      const [ml, wl] = [lo32(mask), lo32(want)];
      p.ld(loOff);
      if (ml !== 0xffffffff) p.and(ml);
      p.j('jeq', wl, pass, fail);
      return;
    }
  }
}

/** Code for a syscall whose rules have conditions: first matching rule returns its action, else the default. */
function emitRuleBlock(p: BpfProgram, entry: Entry, defaultRet: number): void {
  for (const rule of entry.rules) {
    const next = p.label();
    for (const cond of rule.conds) {
      const pass = p.label();
      emitCond(p, cond, entry.argBits, pass, next);
      p.place(pass);
    }
    p.ret(rule.ret);
    p.place(next);
  }
  p.ret(defaultRet);
}

/** What happens for the syscall numbers of one interval: a constant return or a syscall's rules. */
type Decision = { ret: number } | { entry: Entry };

interface Interval {
  start: number;
  end: number;
  decision: Decision;
}

function decisionOf(entry: Entry): Decision {
  const only = entry.rules[0];
  return entry.rules.length === 1 && only && only.conds.length === 0 ? { ret: only.ret } : { entry };
}

const sameRet = (a: Decision, b: Decision): boolean => 'ret' in a && 'ret' in b && a.ret === b.ret;

/**
 * Splits [0, 2^32) into intervals of constant decision: `special` ranges first (runc's ENOSYS stub runs before
 * the filter proper, so they win), then the syscalls with rules, the default everywhere else.
 */
function buildIntervals(entries: Entry[], special: Interval[], defaultRet: number): Interval[] {
  const inSpecial = (nr: number): boolean => special.some((r) => nr >= r.start && nr <= r.end);
  const pieces: Interval[] = [
    ...special,
    ...entries.filter((e) => !inSpecial(e.nr)).map((e) => ({ start: e.nr, end: e.nr, decision: decisionOf(e) })),
  ].sort((a, b) => a.start - b.start);
  const out: Interval[] = [];
  const push = (iv: Interval): void => {
    const last = out[out.length - 1];
    if (last && last.end + 1 === iv.start && sameRet(last.decision, iv.decision)) last.end = iv.end;
    else out.push({ ...iv });
  };
  let next = 0;
  for (const piece of pieces) {
    if (piece.start < next) throw new Error('overlapping seccomp dispatch intervals');
    if (piece.start > next) push({ start: next, end: piece.start - 1, decision: { ret: defaultRet } });
    push(piece);
    next = piece.end + 1;
  }
  if (next <= 0xffffffff) push({ start: next, end: 0xffffffff, decision: { ret: defaultRet } });
  return out;
}

/** Binary search over the interval starts (`jge`), one leaf per interval; the accumulator holds the number. */
function emitIntervals(p: BpfProgram, intervals: Interval[], defaultRet: number): void {
  if (intervals.length === 1) {
    const d = (intervals[0] as Interval).decision;
    if ('ret' in d) p.ret(d.ret);
    else emitRuleBlock(p, d.entry, defaultRet);
    return;
  }
  const mid = intervals.length >> 1;
  const right = p.label();
  const left = p.label();
  p.j('jge', (intervals[mid] as Interval).start, right, left);
  p.place(left);
  emitIntervals(p, intervals.slice(0, mid), defaultRet);
  p.place(right);
  emitIntervals(p, intervals.slice(mid), defaultRet);
}

/**
 * Compiles an OCI `linux.seccomp` into a seccomp BPF program for a host of architecture `arch`: the bytes of
 * `struct sock_filter[]` (8 bytes each, little-endian) to pass as `struct sock_fprog { len = bytes / 8, filter }`.
 * Architectures in `oci.architectures` that are not `arch` or one of its compat sub-architectures (i386/x32 on
 * x86_64, arm on aarch64) are not covered: their syscalls get the bad-arch action. The native arch is always covered.
 */
export function compileSeccomp(oci: LinuxSeccomp, arch: SeccompTargetArch, options: SeccompCompileOptions = {}): Buffer {
  if (!(arch in SUB_ARCHES)) throw new InvalidParameterError(`seccomp: unsupported architecture ${String(arch)}`);
  const defaultRet = seccompActionValue(oci.defaultAction, oci.defaultErrnoRet);
  const badArchRet = seccompActionValue(options.badArchAction ?? 'SCMP_ACT_KILL_THREAD');
  const enosysRet = (SECCOMP_RET.ERRNO | ENOSYS) >>> 0;
  const stub =
    !['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'].includes(oci.defaultAction) && defaultRet !== enosysRet;
  const sections = buildSections(oci, arch, defaultRet);

  const p = new BpfProgram();
  p.ld(SECCOMP_DATA_ARCH);
  const sectionLabels = sections.map(() => p.label());
  sections.forEach((s, i) => p.jOrNext('jeq', s.audit, sectionLabels[i] as Label));
  p.ret(badArchRet);

  sections.forEach((section, i) => {
    p.place(sectionLabels[i] as Label);
    p.ld(SECCOMP_DATA_NR);
    const threshold = (a: SeccompArch): number | undefined => (stub ? section.maxNr.get(a) : undefined);
    const special: Interval[] = [];
    const enosys = { ret: enosysRet };
    if (section.audit === AUDIT_ARCH.X86_64) {
      const max64 = threshold('SCMP_ARCH_X86_64');
      if (max64 !== undefined && max64 < X32_SYSCALL_BIT - 1) {
        special.push({ start: max64 + 1, end: X32_SYSCALL_BIT - 1, decision: enosys });
      }
      if (section.subs.some((s) => s.arch === 'SCMP_ARCH_X32')) {
        const maxX32 = threshold('SCMP_ARCH_X32');
        if (maxX32 !== undefined && maxX32 < 0xffffffff) special.push({ start: maxX32 + 1, end: 0xffffffff, decision: enosys });
      } else {
        // libseccomp with x86_64 alone: x32 numbers are a foreign arch, but nr -1 (a tracer's skip) is not.
        special.push({ start: X32_SYSCALL_BIT, end: 0xfffffffe, decision: { ret: badArchRet } });
      }
    } else {
      const max = threshold((section.subs[0] as SubArch).arch);
      if (max !== undefined && max < 0xffffffff) special.push({ start: max + 1, end: 0xffffffff, decision: enosys });
    }
    emitIntervals(p, buildIntervals(section.entries, special, defaultRet), defaultRet);
  });

  return p.assemble();
}
