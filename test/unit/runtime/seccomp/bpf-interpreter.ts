// A small classic-BPF interpreter for seccomp programs (test helper): runs a struct sock_filter[] over a
// seccomp_data and returns the 32-bit SECCOMP_RET_* value, rejecting what the kernel checker would reject.

export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  args?: readonly bigint[];
}

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export function decodeProgram(prog: Buffer): Insn[] {
  if (prog.length % 8 !== 0) throw new Error(`program length ${prog.length} is not a multiple of 8`);
  const out: Insn[] = [];
  for (let off = 0; off < prog.length; off += 8) {
    out.push({ code: prog.readUInt16LE(off), jt: prog.readUInt8(off + 2), jf: prog.readUInt8(off + 3), k: prog.readUInt32LE(off + 4) });
  }
  return out;
}

function seccompDataBytes(d: SeccompData): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(d.nr >>> 0, 0);
  b.writeUInt32LE(d.arch >>> 0, 4);
  b.writeBigUInt64LE(BigInt.asUintN(64, d.instructionPointer ?? 0n), 8);
  for (let i = 0; i < 6; i++) b.writeBigUInt64LE(BigInt.asUintN(64, d.args?.[i] ?? 0n), 16 + 8 * i);
  return b;
}

/** Runs `prog` over `data`; throws on malformed programs (bad opcode, out-of-range load or jump, no return). */
export function runSeccomp(prog: Buffer | Insn[], data: SeccompData): number {
  const insns = Array.isArray(prog) ? prog : decodeProgram(prog);
  if (insns.length === 0 || insns.length > 4096) throw new Error(`bad program length ${insns.length}`);
  const mem = seccompDataBytes(data);
  const scratch = new Uint32Array(16);
  let a = 0;
  let x = 0;
  let pc = 0;
  for (let steps = 0; steps <= insns.length; steps++) {
    const ins = insns[pc];
    if (!ins) throw new Error(`pc ${pc} out of program`);
    const next = pc + 1;
    const jump = (cond: boolean): number => next + (cond ? ins.jt : ins.jf);
    switch (ins.code) {
      case 0x20: // ld [k]
        if (ins.k % 4 !== 0 || ins.k + 4 > 64) throw new Error(`bad load offset ${ins.k} at ${pc}`);
        a = mem.readUInt32LE(ins.k);
        pc = next;
        break;
      case 0x00: a = ins.k; pc = next; break; // ld #k
      case 0x60: a = scratch[ins.k] ?? 0; pc = next; break; // ld M[k]
      case 0x61: x = scratch[ins.k] ?? 0; pc = next; break; // ldx M[k]
      case 0x02: scratch[ins.k] = a; pc = next; break; // st M[k]
      case 0x03: scratch[ins.k] = x; pc = next; break; // stx M[k]
      case 0x07: x = a; pc = next; break; // tax
      case 0x87: a = x; pc = next; break; // txa
      case 0x54: a = (a & ins.k) >>> 0; pc = next; break; // and #k
      case 0x44: a = (a | ins.k) >>> 0; pc = next; break; // or #k
      case 0x04: a = (a + ins.k) >>> 0; pc = next; break; // add #k
      case 0x05: pc = next + ins.k; break; // ja
      case 0x15: pc = jump(a === ins.k); break; // jeq #k
      case 0x25: pc = jump(a > ins.k); break; // jgt #k
      case 0x35: pc = jump(a >= ins.k); break; // jge #k
      case 0x45: pc = jump((a & ins.k) !== 0); break; // jset #k
      case 0x06: return ins.k >>> 0; // ret #k
      case 0x16: return a >>> 0; // ret a
      default:
        throw new Error(`unsupported opcode 0x${ins.code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('program did not return');
}

/** A readable name for a SECCOMP_RET_* value. */
export function describeRet(ret: number): string {
  const action = ret & 0xffff0000;
  const data = ret & 0xffff;
  switch (action >>> 0) {
    case 0x80000000: return 'KILL_PROCESS';
    case 0x00000000: return 'KILL_THREAD';
    case 0x00030000: return `TRAP(${data})`;
    case 0x00050000: return `ERRNO(${data})`;
    case 0x7fc00000: return 'USER_NOTIF';
    case 0x7ff00000: return `TRACE(${data})`;
    case 0x7ffc0000: return 'LOG';
    case 0x7fff0000: return 'ALLOW';
    default: return `0x${ret.toString(16)}`;
  }
}
