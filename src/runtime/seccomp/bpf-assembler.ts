// A tiny classic-BPF assembler with symbolic labels: conditional jumps whose 8-bit offsets cannot reach their
// targets are relaxed into `jcc 0/1; ja jt; ja jf` (ja takes a 32-bit offset). Jumps only go forward.

export const BPF_LD_W_ABS = 0x20;
export const BPF_ALU_AND_K = 0x54;
export const BPF_JMP_JA = 0x05;
export const BPF_JMP_JEQ_K = 0x15;
export const BPF_JMP_JGT_K = 0x25;
export const BPF_JMP_JGE_K = 0x35;
export const BPF_JMP_JSET_K = 0x45;
export const BPF_RET_K = 0x06;
export const BPF_MAXINSNS = 4096;

export type JumpOp = 'jeq' | 'jgt' | 'jge' | 'jset';
export type Label = number;

const JUMP_CODE: Readonly<Record<JumpOp, number>> = {
  jeq: BPF_JMP_JEQ_K,
  jgt: BPF_JMP_JGT_K,
  jge: BPF_JMP_JGE_K,
  jset: BPF_JMP_JSET_K,
};

type Item =
  | { t: 'label'; id: Label }
  | { t: 'ld'; k: number }
  | { t: 'and'; k: number }
  | { t: 'ret'; k: number }
  | { t: 'ja'; to: Label }
  | { t: 'j'; op: JumpOp; k: number; jt: Label; jf: Label };

export class BpfProgram {
  private readonly items: Item[] = [];
  private labels = 0;
  private readonly placed = new Set<Label>();

  /** A new, not yet placed label. */
  label(): Label {
    return this.labels++;
  }

  /** Places `id` at the current position. */
  place(id: Label): void {
    if (this.placed.has(id)) throw new Error(`BPF label ${id} placed twice`);
    this.placed.add(id);
    this.items.push({ t: 'label', id });
  }

  /** A label placed here (for "fall through to the next instruction"). */
  here(): Label {
    const id = this.label();
    this.place(id);
    return id;
  }

  /** Load the 32-bit word at offset `k` of seccomp_data. */
  ld(k: number): void {
    this.items.push({ t: 'ld', k });
  }

  and(k: number): void {
    this.items.push({ t: 'and', k: k >>> 0 });
  }

  ret(k: number): void {
    this.items.push({ t: 'ret', k: k >>> 0 });
  }

  ja(to: Label): void {
    this.items.push({ t: 'ja', to });
  }

  /** Conditional jump on the accumulator against constant `k`. */
  j(op: JumpOp, k: number, jt: Label, jf: Label): void {
    this.items.push({ t: 'j', op, k: k >>> 0, jt, jf });
  }

  /** Conditional jump to `jt`, falling through to the next instruction otherwise. */
  jOrNext(op: JumpOp, k: number, jt: Label): void {
    const next = this.label();
    this.j(op, k, jt, next);
    this.place(next);
  }

  /** Resolves labels and returns the program as `struct sock_filter[]` bytes (little-endian). */
  assemble(): Buffer {
    for (const item of this.items) {
      const targets = item.t === 'j' ? [item.jt, item.jf] : item.t === 'ja' ? [item.to] : [];
      for (const t of targets) if (!this.placed.has(t)) throw new Error(`BPF label ${t} never placed`);
    }
    const wide = new Set<number>();
    let addr: number[] = [];
    let labelAddr = new Map<Label, number>();
    for (;;) {
      addr = [];
      labelAddr = new Map();
      let pc = 0;
      this.items.forEach((item, i) => {
        if (item.t === 'label') {
          labelAddr.set(item.id, pc);
        } else {
          addr[i] = pc;
          pc += item.t === 'j' && wide.has(i) ? 3 : 1;
        }
      });
      let changed = false;
      this.items.forEach((item, i) => {
        if (item.t !== 'j' || wide.has(i)) return;
        const from = (addr[i] ?? 0) + 1;
        for (const target of [item.jt, item.jf]) {
          const off = (labelAddr.get(target) ?? 0) - from;
          if (off < 0) throw new Error('BPF jumps must go forward');
          if (off > 255) {
            wide.add(i);
            changed = true;
            return;
          }
        }
      });
      if (!changed) break;
    }

    const out: Array<[number, number, number, number]> = [];
    const target = (l: Label): number => labelAddr.get(l) ?? 0;
    this.items.forEach((item, i) => {
      const pc = out.length;
      switch (item.t) {
        case 'label':
          return;
        case 'ld':
          out.push([BPF_LD_W_ABS, 0, 0, item.k]);
          return;
        case 'and':
          out.push([BPF_ALU_AND_K, 0, 0, item.k]);
          return;
        case 'ret':
          out.push([BPF_RET_K, 0, 0, item.k]);
          return;
        case 'ja': {
          const off = target(item.to) - (pc + 1);
          if (off < 0) throw new Error('BPF jumps must go forward');
          out.push([BPF_JMP_JA, 0, 0, off]);
          return;
        }
        case 'j':
          if (wide.has(i)) {
            out.push([JUMP_CODE[item.op], 0, 1, item.k]);
            out.push([BPF_JMP_JA, 0, 0, target(item.jt) - (pc + 2)]);
            out.push([BPF_JMP_JA, 0, 0, target(item.jf) - (pc + 3)]);
          } else {
            out.push([JUMP_CODE[item.op], target(item.jt) - (pc + 1), target(item.jf) - (pc + 1), item.k]);
          }
          return;
      }
    });

    const buf = Buffer.alloc(out.length * 8);
    out.forEach(([code, jt, jf, k], i) => {
      buf.writeUInt16LE(code, i * 8);
      buf.writeUInt8(jt, i * 8 + 2);
      buf.writeUInt8(jf, i * 8 + 3);
      buf.writeUInt32LE(k >>> 0, i * 8 + 4);
    });
    return buf;
  }
}
