import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidParameterError } from '../../../../src/errors.js';
import {
  AUDIT_ARCH,
  compileSeccomp,
  defaultSeccompProfile,
  parseSeccompProfile,
  profileToOci,
  seccompFilterFlags,
  type LinuxSeccomp,
} from '../../../../src/runtime/seccomp/index.js';
import { aarch64Syscalls, armSyscalls } from '../../../../src/runtime/seccomp/syscalls-aarch64.js';
import { i386Syscalls, x32Syscalls, x86_64Syscalls } from '../../../../src/runtime/seccomp/syscalls-x86_64.js';
import { describeRet, runSeccomp } from './bpf-interpreter.js';
import { ADDED_TO_ALLOW_LIST, CHANGED_GROUP_NAMES, REMOVED_FROM_ALLOW_LIST, docker2010Profile } from './docker-20.10-profile.js';

const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];
const KERNEL = '6.18.0-1-amd64';
const ALLOW = 'ALLOW';
const EPERM = 'ERRNO(1)';
const ENOSYS = 'ERRNO(38)';
const CLONE_NEWNS = 0x00020000n;
const SIGCHLD = 17n;

function nr(table: ReadonlyMap<string, number>, name: string): number {
  const n = table.get(name);
  if (n === undefined) throw new Error(`no syscall ${name}`);
  return n;
}

function compileDefault(arch: 'x86_64' | 'aarch64', caps: readonly string[] = DEFAULT_CAPS): Buffer {
  const oci = profileToOci(defaultSeccompProfile(), { arch, capabilities: caps, kernel: KERNEL });
  return compileSeccomp(oci, arch);
}

describe('compileSeccomp: Docker default profile on x86_64 with the default capabilities', () => {
  const prog = compileDefault('x86_64');
  const x64 = (name: string, ...args: bigint[]): string =>
    describeRet(runSeccomp(prog, { nr: nr(x86_64Syscalls(), name), arch: AUDIT_ARCH.X86_64, args }));

  it('stays well under BPF_MAXINSNS', () => {
    expect(prog.length % 8).toBe(0);
    expect(prog.length / 8).toBeLessThan(4096);
    expect(prog.length / 8).toBeLessThan(1000);
  });

  it('allows read, write, exit, exit_group, execve', () => {
    for (const name of ['read', 'write', 'exit', 'exit_group', 'execve', 'openat', 'mmap']) expect(x64(name), name).toBe(ALLOW);
  });

  it('denies mount, umount2, unshare, setns, keyctl, add_key, pivot_root, kexec_load with EPERM', () => {
    for (const name of ['mount', 'umount2', 'unshare', 'setns', 'keyctl', 'add_key', 'pivot_root', 'kexec_load', 'reboot']) {
      expect(x64(name), name).toBe(EPERM);
    }
  });

  it('allows a fork-style clone but denies clone with CLONE_NEWNS', () => {
    expect(x64('clone', SIGCHLD)).toBe(ALLOW);
    expect(x64('clone', 0x003d0f00n | SIGCHLD)).toBe(ALLOW); // pthread_create flags
    expect(x64('clone', CLONE_NEWNS | SIGCHLD)).toBe(EPERM);
    expect(x64('clone', 0x10000000n /* CLONE_NEWUSER */)).toBe(EPERM);
  });

  it('returns ENOSYS for clone3 so libcs fall back to clone', () => {
    expect(x64('clone3')).toBe(ENOSYS);
  });

  it('allows personality(0) and the listed personas only', () => {
    expect(x64('personality', 0n)).toBe(ALLOW);
    expect(x64('personality', 8n)).toBe(ALLOW);
    expect(x64('personality', 0xffffffffn)).toBe(ALLOW);
    expect(x64('personality', 1n)).toBe(EPERM);
    expect(x64('personality', 0x1_0000_0000n)).toBe(EPERM); // 64-bit compare: high half must be 0
  });

  it('allows socket(AF_INET) and denies AF_ALG (38) and AF_VSOCK (40)', () => {
    expect(x64('socket', 2n)).toBe(ALLOW);
    expect(x64('socket', 1n)).toBe(ALLOW);
    expect(x64('socket', 39n)).toBe(ALLOW);
    expect(x64('socket', 41n)).toBe(ALLOW);
    expect(x64('socket', 38n)).toBe(EPERM);
    expect(x64('socket', 40n)).toBe(EPERM);
  });

  it('kills a syscall made with a foreign architecture', () => {
    expect(describeRet(runSeccomp(prog, { nr: 0, arch: AUDIT_ARCH.AARCH64 }))).toBe('KILL_THREAD');
    expect(describeRet(runSeccomp(prog, { nr: 0, arch: 0x40000028 }))).toBe('KILL_THREAD');
  });

  it('returns ENOSYS above the highest syscall number the profile names, EPERM below it', () => {
    const max = Math.max(...[...defaultSeccompProfile().syscalls.flatMap((s) => s.names)].map((n) => x86_64Syscalls().get(n) ?? 0));
    expect(max).toBe(nr(x86_64Syscalls(), 'removexattrat'));
    const at = (n: number): string => describeRet(runSeccomp(prog, { nr: n, arch: AUDIT_ARCH.X86_64 }));
    expect(at(max)).toBe(ALLOW);
    expect(at(max + 1)).toBe(ENOSYS);
    expect(at(1000)).toBe(ENOSYS);
    expect(at(0x3fffffff)).toBe(ENOSYS);
    expect(at(nr(x86_64Syscalls(), 'set_mempolicy_home_node'))).toBe(EPERM);
    expect(at(0xffffffff)).toBe(ENOSYS); // nr -1 has the x32 bit: above the x32 maximum
  });

  it('handles x32 numbers in the x86_64 section and i386 in its own', () => {
    const x32 = (name: string, ...args: bigint[]): string =>
      describeRet(runSeccomp(prog, { nr: nr(x32Syscalls(), name), arch: AUDIT_ARCH.X86_64, args }));
    expect(x32('read')).toBe(ALLOW);
    expect(x32('rt_sigaction')).toBe(ALLOW); // x32-specific number 512
    expect(x32('mount')).toBe(EPERM);
    expect(x32('clone', CLONE_NEWNS)).toBe(EPERM);
    expect(x32('clone', 0x1_0000_0000n | SIGCHLD)).toBe(ALLOW); // 32-bit ABI: low half only
    const i386 = (name: string, ...args: bigint[]): string =>
      describeRet(runSeccomp(prog, { nr: nr(i386Syscalls(), name), arch: AUDIT_ARCH.I386, args }));
    expect(i386('read')).toBe(ALLOW);
    expect(i386('socketcall')).toBe(ALLOW);
    expect(i386('mount')).toBe(EPERM);
    // includes.arches is matched against the daemon's arch (amd64), and libseccomp then adds the rule on every
    // arch of the filter that has the name: i386 has arch_prctl too (the golden filter agrees).
    expect(i386('arch_prctl')).toBe(ALLOW);
    expect(i386('vm86')).toBe(EPERM);
    expect(i386('modify_ldt')).toBe(ALLOW);
    expect(describeRet(runSeccomp(prog, { nr: 600, arch: AUDIT_ARCH.I386 }))).toBe(ENOSYS);
  });

  it('allows mount and unrestricted clone once CAP_SYS_ADMIN is in the bounding set', () => {
    const admin = compileDefault('x86_64', [...DEFAULT_CAPS, 'CAP_SYS_ADMIN']);
    const run = (name: string, ...args: bigint[]): string =>
      describeRet(runSeccomp(admin, { nr: nr(x86_64Syscalls(), name), arch: AUDIT_ARCH.X86_64, args }));
    expect(run('mount')).toBe(ALLOW);
    expect(run('unshare')).toBe(ALLOW);
    expect(run('clone', CLONE_NEWNS)).toBe(ALLOW);
    expect(run('clone3')).toBe(ALLOW);
    expect(run('keyctl')).toBe(EPERM);
  });
});

describe('compileSeccomp: Docker default profile on aarch64', () => {
  const prog = compileDefault('aarch64');
  const a64 = (name: string, ...args: bigint[]): string =>
    describeRet(runSeccomp(prog, { nr: nr(aarch64Syscalls(), name), arch: AUDIT_ARCH.AARCH64, args }));

  it('decides like on x86_64 for the common syscalls', () => {
    expect(a64('read')).toBe(ALLOW);
    expect(a64('mount')).toBe(EPERM);
    expect(a64('clone3')).toBe(ENOSYS);
    expect(a64('clone', CLONE_NEWNS)).toBe(EPERM);
    expect(a64('clone', SIGCHLD)).toBe(ALLOW);
    expect(a64('socket', 38n)).toBe(EPERM);
    expect(describeRet(runSeccomp(prog, { nr: 1000, arch: AUDIT_ARCH.AARCH64 }))).toBe(ENOSYS);
    expect(describeRet(runSeccomp(prog, { nr: 0, arch: AUDIT_ARCH.X86_64 }))).toBe('KILL_THREAD');
  });

  it('covers 32-bit arm with its own numbers, including the ARM private calls', () => {
    const arm = (name: string): string => describeRet(runSeccomp(prog, { nr: nr(armSyscalls(), name), arch: AUDIT_ARCH.ARM }));
    expect(arm('read')).toBe(ALLOW);
    expect(arm('cacheflush')).toBe(ALLOW);
    expect(arm('mount')).toBe(EPERM);
  });
});

describe('compileSeccomp: custom profiles', () => {
  it('compiles an allow-by-default profile with one EPERM rule, without an ENOSYS stub', () => {
    const oci = profileToOci(
      parseSeccompProfile('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat","no_such_call"],"action":"SCMP_ACT_ERRNO"}]}'),
      { arch: 'x64', capabilities: [], kernel: KERNEL },
    );
    const prog = compileSeccomp(oci, 'x86_64');
    const at = (n: number, arch: number = AUDIT_ARCH.X86_64): string => describeRet(runSeccomp(prog, { nr: n, arch }));
    expect(at(nr(x86_64Syscalls(), 'mkdir'))).toBe(EPERM);
    expect(at(nr(x86_64Syscalls(), 'mkdirat'))).toBe(EPERM);
    expect(at(nr(x86_64Syscalls(), 'rmdir'))).toBe(ALLOW);
    expect(at(5000)).toBe(ALLOW);
    // only x86_64 in the filter: x32 numbers are a foreign ABI, nr -1 is not
    expect(at(nr(x32Syscalls(), 'read'))).toBe('KILL_THREAD');
    expect(at(0xffffffff)).toBe(ALLOW);
    expect(at(0, AUDIT_ARCH.I386)).toBe('KILL_THREAD');
    expect(prog.length / 8).toBeLessThan(20);
  });

  it('evaluates every comparison operator on both 32-bit halves', () => {
    const rule = (op: string, value: string, valueTwo = '0') =>
      `{"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":${value},"valueTwo":${valueTwo},"op":"${op}"}]}`;
    const cases: Array<[string, string, string, bigint[], bigint[]]> = [
      // op, value, valueTwo, args that match, args that do not
      ['SCMP_CMP_EQ', '4294967301', '0', [0x1_0000_0005n], [5n, 0x2_0000_0005n]],
      ['SCMP_CMP_NE', '4294967301', '0', [5n, 0x1_0000_0006n], [0x1_0000_0005n]],
      ['SCMP_CMP_GT', '4294967301', '0', [0x1_0000_0006n, 0x2_0000_0000n], [0x1_0000_0005n, 0xffff_ffffn]],
      ['SCMP_CMP_GE', '4294967301', '0', [0x1_0000_0005n, 0x2_0000_0000n], [0x1_0000_0004n, 7n]],
      ['SCMP_CMP_LT', '4294967301', '0', [0x1_0000_0004n, 0xffff_ffffn], [0x1_0000_0005n, 0x2_0000_0000n]],
      ['SCMP_CMP_LE', '4294967301', '0', [0x1_0000_0005n, 3n], [0x1_0000_0006n]],
      ['SCMP_CMP_LT', '38', '0', [0n, 37n], [38n, 0x1_0000_0000n]],
      ['SCMP_CMP_GT', '40', '0', [41n, 0x1_0000_0000n], [40n, 0n]],
      ['SCMP_CMP_MASKED_EQ', '18446744069414584335', '4294967298', [0x1_0000_0002n, 0x1_0000_00f2n], [0x2n, 0x1_0000_0003n]],
      ['SCMP_CMP_MASKED_EQ', '255', '0', [0x100n, 0x5_0000_0000n], [1n]],
      ['SCMP_CMP_EQ', '18446744073709551615', '0', [0xffff_ffff_ffff_ffffn], [0xffff_ffffn]],
    ];
    for (const [op, value, valueTwo, yes, no] of cases) {
      const oci = parseSeccompProfile(`{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,"architectures":["SCMP_ARCH_X86_64"],"syscalls":[${rule(op, value, valueTwo)}]}`);
      const prog = compileSeccomp(profileToOci(oci, { arch: 'x64', capabilities: [], kernel: KERNEL }), 'x86_64');
      const run = (arg: bigint): string =>
        describeRet(runSeccomp(prog, { nr: nr(x86_64Syscalls(), 'ioctl'), arch: AUDIT_ARCH.X86_64, args: [3n, arg] }));
      for (const a of yes) expect(run(a), `${op} ${value} on 0x${a.toString(16)}`).toBe(ALLOW);
      for (const a of no) expect(run(a), `${op} ${value} on 0x${a.toString(16)}`).toBe('ERRNO(13)');
    }
  });

  it('ANDs conditions on different arguments and ORs conditions on the same one (runc)', () => {
    const oci: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['kill'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 1, value: 9, op: 'SCMP_CMP_EQ' }] },
        { names: ['tkill'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 0, value: 2, op: 'SCMP_CMP_EQ' }] },
      ],
    };
    const prog = compileSeccomp(oci, 'x86_64');
    const run = (name: string, ...args: bigint[]): string =>
      describeRet(runSeccomp(prog, { nr: nr(x86_64Syscalls(), name), arch: AUDIT_ARCH.X86_64, args }));
    expect(run('kill', 1n, 9n)).toBe(ALLOW);
    expect(run('kill', 1n, 15n)).toBe(EPERM);
    expect(run('kill', 2n, 9n)).toBe(EPERM);
    expect(run('tkill', 1n)).toBe(ALLOW);
    expect(run('tkill', 2n)).toBe(ALLOW);
    expect(run('tkill', 3n)).toBe(EPERM);
  });

  it('maps every action to its SECCOMP_RET value and drops rules equal to the default', () => {
    const oci: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_KILL_PROCESS',
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_ALLOW' },
        { names: ['write'], action: 'SCMP_ACT_LOG' },
        { names: ['open'], action: 'SCMP_ACT_TRAP' },
        { names: ['close'], action: 'SCMP_ACT_TRACE', errnoRet: 5 },
        { names: ['stat'], action: 'SCMP_ACT_ERRNO', errnoRet: 12345 },
        { names: ['fstat'], action: 'SCMP_ACT_KILL' },
        { names: ['lstat'], action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['mmap'], action: 'SCMP_ACT_ALLOW' },
      ],
    };
    const prog = compileSeccomp(oci, 'x86_64');
    const run = (name: string): string => describeRet(runSeccomp(prog, { nr: nr(x86_64Syscalls(), name), arch: AUDIT_ARCH.X86_64 }));
    expect(['read', 'write', 'open', 'close', 'stat', 'fstat', 'lstat', 'poll'].map(run)).toEqual([
      'ALLOW', 'LOG', 'TRAP(0)', 'TRACE(5)', 'ERRNO(12345)', 'KILL_THREAD', 'KILL_PROCESS', 'KILL_PROCESS',
    ]);
    expect(run('poll')).toBe('KILL_PROCESS'); // below the highest named number: the default
    expect(describeRet(runSeccomp(prog, { nr: 400, arch: AUDIT_ARCH.X86_64 }))).toBe(ENOSYS);
  });

  it('gives no ENOSYS stub when the default is already ERRNO(ENOSYS)', () => {
    const prog = compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 38, syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] }, 'x86_64');
    expect(describeRet(runSeccomp(prog, { nr: 1, arch: AUDIT_ARCH.X86_64 }))).toBe(ENOSYS);
    expect(describeRet(runSeccomp(prog, { nr: 0, arch: AUDIT_ARCH.X86_64 }))).toBe(ALLOW);
  });

  it('honours a badArchAction option', () => {
    const prog = compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }, 'x86_64', { badArchAction: 'SCMP_ACT_KILL_PROCESS' });
    expect(describeRet(runSeccomp(prog, { nr: 0, arch: AUDIT_ARCH.AARCH64 }))).toBe('KILL_PROCESS');
  });

  it('rejects SCMP_ACT_NOTIFY and computes the seccomp() flags word', () => {
    expect(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY' }] }, 'x86_64')).toThrow(
      InvalidParameterError,
    );
    expect(seccompFilterFlags({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'] })).toBe(6);
  });

  it('relaxes jumps beyond 255 instructions with ja trampolines (large conditional profile)', () => {
    const syscalls = [...x86_64Syscalls().keys()].slice(0, 200).map((name) => ({
      names: [name],
      action: 'SCMP_ACT_ALLOW' as const,
      args: [{ index: 2, value: 7, op: 'SCMP_CMP_LE' as const }],
    }));
    const prog = compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls }, 'x86_64');
    expect(prog.length / 8).toBeGreaterThan(600);
    expect(prog.length / 8).toBeLessThan(4096);
    for (const s of syscalls) {
      const n = nr(x86_64Syscalls(), s.names[0] as string);
      expect(describeRet(runSeccomp(prog, { nr: n, arch: AUDIT_ARCH.X86_64, args: [0n, 0n, 7n] }))).toBe(ALLOW);
      expect(describeRet(runSeccomp(prog, { nr: n, arch: AUDIT_ARCH.X86_64, args: [0n, 0n, 8n] }))).toBe(EPERM);
    }
  });
});

describe('compileSeccomp against the golden runc 1.1.5 filter (Docker 20.10 default profile, x86_64)', () => {
  const golden = readFileSync(new URL('./fixtures/seccomp-docker20.10-runc1.1.5-x86_64.bpf', import.meta.url));
  const ARGS: bigint[][] = [
    [0n], [1n], [8n], [17n], [0x20000n], [0x20008n], [38n], [40n], [0xffffffffn], [0x1_0000_0000n], [0x1_0000_0026n],
    [CLONE_NEWNS | SIGCHLD], [0x7e020000n], [0x003d0f00n],
  ];
  const ARCHES: Array<[string, number, number]> = [
    ['x86_64', AUDIT_ARCH.X86_64, 0],
    ['x32', AUDIT_ARCH.X86_64, 0x40000000],
    ['i386', AUDIT_ARCH.I386, 0],
    ['aarch64', AUDIT_ARCH.AARCH64, 0],
  ];
  const differences = (prog: Buffer): Map<string, Set<number>> => {
    const diff = new Map<string, Set<number>>();
    for (const [archName, audit, bit] of ARCHES) {
      const nrs = [...Array.from({ length: 601 }, (_v, i) => (i + bit) >>> 0), 0x3fffffff, 0x40000000 + 1000, 0xfffffffe, 0xffffffff];
      for (const n of nrs) {
        for (const args of ARGS) {
          const d = { nr: n, arch: audit, args };
          if (runSeccomp(golden, d) !== runSeccomp(prog, d)) {
            const set = diff.get(archName) ?? new Set<number>();
            set.add(n);
            diff.set(archName, set);
          }
        }
      }
    }
    return diff;
  };

  it('is read as 974 instructions', () => {
    expect(golden.length / 8).toBe(974);
  });

  it('decides identically for the 20.10 profile on every arch, number 0..600 and argument pattern', () => {
    const oci = profileToOci(docker2010Profile(defaultSeccompProfile()), { arch: 'x64', capabilities: DEFAULT_CAPS, kernel: KERNEL });
    const prog = compileSeccomp(oci, 'x86_64');
    expect(differences(prog)).toEqual(new Map());
    expect(prog.length / 8).toBeLessThan(974);
  });

  it('differs for the current profile exactly on the syscalls whose rules changed since 20.10', () => {
    const prog = compileDefault('x86_64');
    const diff = differences(prog);
    const changed = new Set([...ADDED_TO_ALLOW_LIST, ...REMOVED_FROM_ALLOW_LIST, ...CHANGED_GROUP_NAMES]);
    const tables: Record<string, ReadonlyMap<string, number>> = { x86_64: x86_64Syscalls(), x32: x32Syscalls(), i386: i386Syscalls() };
    expect([...diff.keys()].sort()).toEqual(['i386', 'x32', 'x86_64']);
    for (const [archName, nrs] of diff) {
      const byNr = new Map<number, string>();
      for (const [name, n] of tables[archName] ?? new Map<string, number>()) if (!byNr.has(n)) byNr.set(n, name);
      for (const n of nrs) {
        const name = byNr.get(n);
        // 20.10's ENOSYS threshold was 449 (futex_waitv); the current profile names syscalls up to 466.
        const newerThanGolden = (n & ~0x40000000) > 449 && (n & ~0x40000000) <= 466;
        expect(changed.has(name ?? '') || newerThanGolden, `${archName} ${n} ${name ?? '?'}`).toBe(true);
      }
    }
    const x86Names = [...(diff.get('x86_64') ?? [])].filter((n) => n <= 449).map((n) => [...x86_64Syscalls()].find(([, v]) => v === n)?.[0]);
    expect(x86Names.sort()).toEqual([
      'io_uring_enter', 'io_uring_register', 'io_uring_setup', 'name_to_handle_at', 'pkey_alloc', 'pkey_free',
      'pkey_mprotect', 'process_vm_readv', 'process_vm_writev', 'socket', 'uretprobe',
    ]);
  });
});
