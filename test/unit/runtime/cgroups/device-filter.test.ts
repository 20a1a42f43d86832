import { describe, expect, it } from 'vitest';
import {
  BPF_OPCODES,
  compileDeviceFilter,
  deviceRulesOnlyAllowAll,
  emulateDeviceRules,
} from '../../../../src/runtime/cgroups/device-filter.js';
import { parseDeviceCgroupRule } from '../../../../src/containers/devices.js';
import type { LinuxDeviceCgroup } from '../../../../src/runtime/cgroups/resources.js';
import { DEFAULT_DEVICE_CGROUP_RULES, RUNTIME_ALLOWED_DEVICE_RULES } from '../../../../src/runtime/defaults.js';

const BLOCK = 1;
const CHAR = 2;
const M = 1;
const R = 2;
const W = 4;

/**
 * A tiny eBPF interpreter covering only the opcodes the compiler emits, run over struct bpf_cgroup_dev_ctx.
 * Registers are 64-bit (BigInt) so sign extension and 32-bit ALU zero extension are modelled as the kernel does.
 */
function runFilter(prog: Buffer, type: number, major: number, minor: number, access: number): number {
  const ctx = Buffer.alloc(12);
  ctx.writeUInt32LE(((access << 16) | type) >>> 0, 0);
  ctx.writeUInt32LE(major >>> 0, 4);
  ctx.writeUInt32LE(minor >>> 0, 8);
  const MASK64 = (1n << 64n) - 1n;
  const MASK32 = (1n << 32n) - 1n;
  const reg: bigint[] = new Array<bigint>(11).fill(0n);
  const n = prog.length / 8;
  let pc = 0;
  for (let steps = 0; steps < 10_000; steps++) {
    if (pc < 0 || pc >= n) throw new Error(`pc ${pc} out of the program`);
    const o = pc * 8;
    const code = prog.readUInt8(o);
    const dst = prog.readUInt8(o + 1) & 0xf;
    const src = prog.readUInt8(o + 1) >> 4;
    const off = prog.readInt16LE(o + 2);
    const imm = prog.readInt32LE(o + 4);
    const immSext = BigInt(imm) & MASK64;
    const d = reg[dst] ?? 0n;
    const s = reg[src] ?? 0n;
    pc++;
    switch (code) {
      case BPF_OPCODES.BPF_LDX_MEM_W:
        if (src !== 1) throw new Error('load from a register that is not the context');
        if (off < 0 || off > 8 || off % 4 !== 0) throw new Error(`bad context offset ${off}`);
        reg[dst] = BigInt(ctx.readUInt32LE(off));
        break;
      case BPF_OPCODES.BPF_ALU_AND_K:
        reg[dst] = (d & immSext) & MASK32;
        break;
      case BPF_OPCODES.BPF_ALU_RSH_K:
        reg[dst] = (d & MASK32) >> BigInt(imm & 31);
        break;
      case BPF_OPCODES.BPF_ALU_MOV_K:
        reg[dst] = immSext & MASK32;
        break;
      case BPF_OPCODES.BPF_ALU_MOV_X:
        reg[dst] = s & MASK32;
        break;
      case BPF_OPCODES.BPF_JMP_JNE_K:
        if (d !== immSext) pc += off;
        break;
      case BPF_OPCODES.BPF_JMP_JNE_X:
        if (d !== s) pc += off;
        break;
      case BPF_OPCODES.BPF_EXIT:
        return Number(reg[0]);
      default:
        throw new Error(`opcode 0x${code.toString(16)} not expected`);
    }
  }
  throw new Error('program did not exit');
}

/** Everything the cases probe: both types, every access combination, interesting numbers. */
function* probes(majors: number[], minors: number[]): Generator<[number, number, number, number]> {
  for (const type of [BLOCK, CHAR]) {
    for (const major of majors) {
      for (const minor of minors) {
        for (let access = 1; access <= 7; access++) yield [type, major, minor, access];
      }
    }
  }
}

const MAJORS = [0, 1, 4, 5, 8, 10, 42, 136, 137, 254, 4095, 0x7fffffff, 0x80000001, 0xffffffff];
const MINORS = [0, 1, 2, 3, 5, 7, 8, 9, 11, 200, 229, 1048575, 0x80000000, 0xffffffff];

const dockerRules = (): LinuxDeviceCgroup[] => [...DEFAULT_DEVICE_CGROUP_RULES, ...RUNTIME_ALLOWED_DEVICE_RULES];

/** Docker's default container: mknod anything, rwm only on the standard nodes, pts, ptmx and tun. */
function dockerDefaultAllows(type: number, major: number, minor: number, access: number): boolean {
  if (access === M) return true; // c *:* m and b *:* m
  if (type !== CHAR) return false;
  const rwm = ['1:3', '1:5', '1:7', '1:8', '1:9', '5:0', '5:1', '5:2', '10:200'];
  return rwm.includes(`${major}:${minor}`) || major === 136;
}

function expectDecisions(
  rules: LinuxDeviceCgroup[],
  reference: (type: number, major: number, minor: number, access: number) => boolean,
  majors = MAJORS,
  minors = MINORS,
): number {
  const prog = compileDeviceFilter(rules);
  let count = 0;
  for (const [type, major, minor, access] of probes(majors, minors)) {
    const got = runFilter(prog, type, major, minor, access);
    const want = reference(type, major, minor, access) ? 1 : 0;
    if (got !== want) {
      throw new Error(`type ${type} ${major}:${minor} access ${access}: program says ${got}, reference ${want}`);
    }
    count++;
  }
  return count;
}

describe('cgroup v2 device filter compiler', () => {
  it('encodes 8-byte little-endian instructions ending in exit', () => {
    const prog = compileDeviceFilter(dockerRules());
    expect(prog.length % 8).toBe(0);
    expect(prog.readUInt8(prog.length - 8)).toBe(BPF_OPCODES.BPF_EXIT);
    // First instruction: r2 = *(u32 *)(r1 + 0)
    expect([...prog.subarray(0, 8)]).toEqual([0x61, 0x12, 0, 0, 0, 0, 0, 0]);
  });

  it("enforces Docker's default rules plus runc's allowed devices", () => {
    expect(expectDecisions(dockerRules(), dockerDefaultAllows)).toBe(2 * MAJORS.length * MINORS.length * 7);
  });

  it("without runc's additions only Docker's six nodes are allowed and /dev/fuse stays denied", () => {
    const six = ['1:3', '1:5', '1:8', '1:9', '5:0', '5:1'];
    expectDecisions([...DEFAULT_DEVICE_CGROUP_RULES], (t, ma, mi) => t === CHAR && six.includes(`${ma}:${mi}`));
  });

  it('--device /dev/sda:/dev/xvda:r allows reading b 8:0 only', () => {
    const rules = [...DEFAULT_DEVICE_CGROUP_RULES, { allow: true, type: 'b' as const, major: 8, minor: 0, access: 'r' }];
    rules.push(...RUNTIME_ALLOWED_DEVICE_RULES);
    expectDecisions(rules, (t, ma, mi, acc) => dockerDefaultAllows(t, ma, mi, acc) || (t === BLOCK && ma === 8 && mi === 0 && (acc & ~R) === 0));
  });

  it('--device /dev/fuse re-allows c 10:229 after the default deny', () => {
    const rules = [...DEFAULT_DEVICE_CGROUP_RULES, { allow: true, type: 'c' as const, major: 10, minor: 229, access: 'rwm' }];
    rules.push(...RUNTIME_ALLOWED_DEVICE_RULES);
    expectDecisions(rules, (t, ma, mi, acc) => dockerDefaultAllows(t, ma, mi, acc) || (t === CHAR && ma === 10 && mi === 229));
  });

  it("--device-cgroup-rule 'c 42:* rw' and 'b *:11 w' allow whole majors / minors with those accesses", () => {
    const rules = [...DEFAULT_DEVICE_CGROUP_RULES, parseDeviceCgroupRule('c 42:* rw'), parseDeviceCgroupRule('b *:11 w')];
    rules.push(...RUNTIME_ALLOWED_DEVICE_RULES);
    expectDecisions(
      rules,
      (t, ma, mi, acc) =>
        dockerDefaultAllows(t, ma, mi, acc) ||
        (t === CHAR && ma === 42 && (acc & ~(R | W)) === 0) ||
        (t === BLOCK && mi === 11 && acc === W),
    );
  });

  it('access granted by two rules for the same device is united, as v1 does', () => {
    const rules: LinuxDeviceCgroup[] = [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 11, access: 'r' },
      { allow: true, type: 'c', major: 1, minor: 11, access: 'w' },
    ];
    expectDecisions(rules, (t, ma, mi, acc) => t === CHAR && ma === 1 && mi === 11 && (acc & M) === 0);
  });

  it('numbers at and above 2^31 match exactly (no sign extension)', () => {
    const rules: LinuxDeviceCgroup[] = [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 0x80000001, minor: 0xffffffff, access: 'rwm' },
    ];
    expectDecisions(rules, (t, ma, mi) => t === CHAR && ma === 0x80000001 && mi === 0xffffffff);
  });

  it('privileged (allow a) allows everything; a later type-a deny resets to deny-all', () => {
    expectDecisions([{ allow: true, access: 'rwm' }], () => true);
    expectDecisions([{ allow: true, access: 'rwm' }, { allow: false, type: 'a', major: 1, minor: 3, access: 'r' }], () => false);
  });

  it('on an allow-all base, deny rules are exceptions and a later allow removes them', () => {
    const rules: LinuxDeviceCgroup[] = [
      { allow: true, access: 'rwm' },
      { allow: false, type: 'c', major: 1, minor: 11, access: 'rw' },
      { allow: false, type: 'b', major: -1, minor: -1, access: 'm' },
      { allow: true, type: 'c', major: 1, minor: 11, access: 'w' },
    ];
    // Remaining deny exceptions: c 1:11 r, b *:* m. A request is denied if it asks for any denied bit.
    expectDecisions(rules, (t, ma, mi, acc) => {
      if (t === CHAR && ma === 1 && mi === 11 && acc === R) return false;
      if (t === BLOCK && acc === M) return false;
      return true;
    });
  });

  it('an allow exception removed by a later exact deny is gone; the rest of it stays', () => {
    const rules: LinuxDeviceCgroup[] = [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 11, access: 'rwm' },
      { allow: false, type: 'c', major: 1, minor: 11, access: 'w' },
    ];
    expect(emulateDeviceRules(rules)).toEqual({ defaultAllow: false, exceptions: [{ type: 'c', major: 1, minor: 11, access: R | M }] });
    expectDecisions(rules, (t, ma, mi, acc) => t === CHAR && ma === 1 && mi === 11 && (acc & W) === 0);
  });

  it('refuses to punch a hole in a wildcard exception, as runc does', () => {
    expect(() =>
      emulateDeviceRules([
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 136, minor: -1, access: 'rwm' },
        { allow: false, type: 'c', major: 136, minor: 3, access: 'r' },
      ]),
    ).toThrow(/cannot punch hole in existing wildcard rule \[c 136:\* rwm\]/);
    // A disjoint access is fine.
    expect(() =>
      emulateDeviceRules([
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: -1, minor: -1, access: 'm' },
        { allow: false, type: 'c', major: 10, minor: 229, access: 'rw' },
      ]),
    ).not.toThrow();
  });

  it('rejects unknown access letters and numbers above u32', () => {
    expect(() => compileDeviceFilter([{ allow: true, type: 'c', major: 1, minor: 3, access: 'x' }])).toThrow(/unknown device access/);
    expect(() => compileDeviceFilter([{ allow: true, type: 'c', major: 2 ** 32, minor: 3, access: 'r' }])).toThrow(/out of range/);
  });

  it('classifies rule lists that only allow everything they name', () => {
    expect(deviceRulesOnlyAllowAll([{ allow: true, access: 'rwm' }])).toBe(true);
    expect(deviceRulesOnlyAllowAll(dockerRules())).toBe(false);
  });
});
