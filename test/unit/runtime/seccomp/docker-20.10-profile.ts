// Docker 20.10's default seccomp profile (moby v20.10.24 profiles/seccomp/default.json), reconstructed from the
// current profile by undoing every change made since (executor-notes §6.2 / §6.4). The golden BPF blob was compiled
// by runc 1.1.5 from the 20.10 profile, so this is what the golden comparison compiles.

import type { SeccompProfile } from '../../../../src/runtime/seccomp/index.js';

/** Names added to the unconditional allow list after 20.10 (or moved there from a cap group). */
export const ADDED_TO_ALLOW_LIST = [
  'cachestat', 'fchmodat2', 'futex_requeue', 'futex_wait', 'futex_wake', 'getxattrat', 'listmount', 'listxattrat',
  'map_shadow_stack', 'mseal', 'name_to_handle_at', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'removexattrat',
  'riscv_hwprobe', 'setxattrat', 'statmount', 'uretprobe',
];
/** Names removed from the unconditional allow list after 20.10 (socket became conditional: AF_ALG/AF_VSOCK blocked). */
export const REMOVED_FROM_ALLOW_LIST = ['io_uring_enter', 'io_uring_register', 'io_uring_setup', 'socket'];
/** Names whose conditional groups changed: process_vm_* joined the kernel ≥ 4.8 group; cap groups grew. */
export const CHANGED_GROUP_NAMES = [
  'process_vm_readv', 'process_vm_writev', 'lsm_get_self_attr', 'lsm_set_self_attr', 'lsm_list_modules',
  'clock_settime64', 'set_mempolicy_home_node', 'bpf', 'perf_event_open', 'swapcontext', 'riscv_flush_icache',
];

export function docker2010Profile(current: SeccompProfile): SeccompProfile {
  const groups = structuredClone(current.syscalls);
  const first = groups[0];
  if (!first) throw new Error('empty profile');
  first.names = first.names.filter((n) => !ADDED_TO_ALLOW_LIST.includes(n)).concat(REMOVED_FROM_ALLOW_LIST).sort();
  const out = groups.slice(1).filter((g) => {
    if (g.names.length === 1 && g.names[0] === 'socket') return false; // the AF_ALG / AF_VSOCK filter
    if (g.includes?.arches?.includes('riscv64')) return false;
    const caps = g.includes?.caps ?? [];
    if (caps.length === 1 && (caps[0] === 'CAP_BPF' || caps[0] === 'CAP_PERFMON')) return false;
    return true;
  });
  for (const g of out) {
    if (g.includes?.minKernel === '4.8') g.names = ['ptrace'];
    if (g.includes?.arches?.includes('ppc64le')) g.names = ['sync_file_range2'];
    const cap = g.includes?.caps?.[0];
    if (cap === 'CAP_SYS_ADMIN') {
      g.names = g.names.filter((n) => !n.startsWith('lsm_')).concat('name_to_handle_at');
    }
    if (cap === 'CAP_SYS_TIME') g.names = g.names.filter((n) => n !== 'clock_settime64');
    if (cap === 'CAP_SYS_NICE') g.names = g.names.filter((n) => n !== 'set_mempolicy_home_node');
  }
  const { defaultErrnoRet: _dropped, ...rest } = current; // 20.10 had none; runc's default was EPERM anyway
  return { ...rest, syscalls: [first, ...out] };
}
