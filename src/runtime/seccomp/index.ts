// Seccomp: Docker profile → OCI linux.seccomp → classic-BPF program for berth-shim to install.

export {
  defaultSeccompProfile,
  dockerNativeArch,
  parseSeccompProfile,
  profileToOci,
  validateSeccompProfile,
  type LinuxSeccomp,
  type LinuxSeccompArg,
  type LinuxSyscall,
  type ProfileToOciOptions,
  type SeccompAction,
  type SeccompArch,
  type SeccompArchMapEntry,
  type SeccompArgValue,
  type SeccompFlag,
  type SeccompGroupFilter,
  type SeccompOperator,
  type SeccompProfile,
  type SeccompProfileSyscall,
} from './profile.js';
export {
  AUDIT_ARCH,
  SECCOMP_FILTER_FLAG,
  SECCOMP_RET,
  compileSeccomp,
  seccompActionValue,
  seccompFilterFlags,
  type SeccompCompileOptions,
  type SeccompTargetArch,
} from './compile.js';
