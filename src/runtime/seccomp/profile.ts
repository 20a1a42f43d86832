// Docker's seccomp profile format, the OCI `linux.seccomp` form, and Docker's profile → OCI resolution
// (moby/profiles seccomp/seccomp_linux.go setupSeccomp): architectures from archMap, syscall groups kept or
// dropped by the container's final bounding set, the daemon's architecture and the running kernel version.

import { readFileSync } from 'node:fs';
import { InvalidParameterError } from '../../errors.js';
import { packagePath } from '../../package-root.js';

export const SECCOMP_ACTIONS = [
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
] as const;
export type SeccompAction = (typeof SECCOMP_ACTIONS)[number];

export const SECCOMP_OPERATORS = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
] as const;
export type SeccompOperator = (typeof SECCOMP_OPERATORS)[number];

export const SECCOMP_ARCHES = [
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
] as const;
export type SeccompArch = (typeof SECCOMP_ARCHES)[number];

export const SECCOMP_FLAGS = [
  'SECCOMP_FILTER_FLAG_TSYNC',
  'SECCOMP_FILTER_FLAG_LOG',
  'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
  'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
] as const;
export type SeccompFlag = (typeof SECCOMP_FLAGS)[number];

/**
 * A 64-bit syscall argument value. A `number` when it is a safe integer, a `bigint` above 2^53
 * (JSON.stringify cannot write a bigint: whoever serialises a spec must convert it).
 */
export type SeccompArgValue = number | bigint;

/** One argument condition (OCI `LinuxSeccompArg`). For SCMP_CMP_MASKED_EQ `value` is the mask, `valueTwo` the expected value. */
export interface LinuxSeccompArg {
  index: number;
  value: SeccompArgValue;
  valueTwo?: SeccompArgValue;
  op: SeccompOperator;
}

/** OCI `LinuxSyscall`. */
export interface LinuxSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

/** OCI `linux.seccomp`. */
export interface LinuxSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: SeccompArch[];
  flags?: SeccompFlag[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: LinuxSyscall[];
}

/** Docker profile `archMap` entry. */
export interface SeccompArchMapEntry {
  architecture: SeccompArch;
  subArchitectures: SeccompArch[];
}

/** Docker profile `includes` / `excludes`. Arch names are Docker's native names (`amd64`, `x32`, `x86`, `arm64`, `arm`, `s390x`…). */
export interface SeccompGroupFilter {
  caps?: string[];
  arches?: string[];
  /** "<kernel>.<major>", e.g. "4.8". */
  minKernel?: string;
}

/** One syscall group of a Docker profile (`name` is folded into `names` by the parser). */
export interface SeccompProfileSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
  comment?: string;
  includes?: SeccompGroupFilter;
  excludes?: SeccompGroupFilter;
}

/** Docker's seccomp profile (the JSON of `--security-opt seccomp=…` and `profiles/seccomp/default.json`). */
export interface SeccompProfile {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: SeccompArch[];
  archMap?: SeccompArchMapEntry[];
  flags?: SeccompFlag[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls: SeccompProfileSyscall[];
}

export interface ProfileToOciOptions {
  /** The host architecture: Node's `process.arch` (`x64`, `arm64`…) or a uname machine (`x86_64`, `aarch64`…). */
  arch: string;
  /** The container's final bounding set, `CAP_X` names. */
  capabilities: readonly string[];
  /** The running kernel's release (`os.release()`, e.g. "6.18.0-1-amd64"). */
  kernel: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing and validation

const PREFIX = 'Decoding seccomp profile failed';
const BIGINT_MARK = '\u0000bigint:';

function fail(path: string, problem: string): never {
  throw new InvalidParameterError(`${PREFIX}: ${path}: ${problem}`);
}

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optional<T>(obj: Record<string, Json>, key: string, read: (v: Json) => T): T | undefined {
  const v = obj[key];
  return v === undefined || v === null ? undefined : read(v);
}

function readString(path: string, v: Json): string {
  if (typeof v !== 'string') fail(path, `expected a string, got ${describe(v)}`);
  return v;
}

function readUint(path: string, v: Json, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    fail(path, `expected an integer between 0 and ${max}, got ${describe(v)}`);
  }
  return v;
}

function readArgValue(path: string, v: Json): SeccompArgValue {
  if (typeof v === 'string' && v.startsWith(BIGINT_MARK)) {
    const big = BigInt(v.slice(BIGINT_MARK.length));
    if (big > 0xffff_ffff_ffff_ffffn) fail(path, `value ${big} does not fit in 64 bits`);
    return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    fail(path, `expected an unsigned 64-bit integer, got ${describe(v)}`);
  }
  return v;
}

function readEnum<T extends string>(path: string, v: Json, allowed: readonly T[]): T {
  const s = readString(path, v);
  if (!(allowed as readonly string[]).includes(s)) fail(path, `unknown value "${s}"`);
  return s as T;
}

function readArray<T>(path: string, v: Json, item: (p: string, x: Json) => T): T[] {
  if (!Array.isArray(v)) fail(path, `expected an array, got ${describe(v)}`);
  return v.map((x, i) => item(`${path}[${i}]`, x));
}

function describe(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.startsWith(BIGINT_MARK) ? v.slice(BIGINT_MARK.length) : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function readArg(path: string, v: Json): LinuxSeccompArg {
  if (!isObject(v)) fail(path, `expected an object, got ${describe(v)}`);
  const arg: LinuxSeccompArg = {
    index: readUint(`${path}.index`, v['index'] ?? 0, 5),
    value: readArgValue(`${path}.value`, v['value'] ?? 0),
    op: readEnum(`${path}.op`, v['op'], SECCOMP_OPERATORS),
  };
  const valueTwo = optional(v, 'valueTwo', (x) => readArgValue(`${path}.valueTwo`, x));
  if (valueTwo !== undefined) arg.valueTwo = valueTwo;
  return arg;
}

function readMinKernel(path: string, v: Json): string | undefined {
  const s = readString(path, v);
  if (s === '') return undefined;
  const parts = s.split('.');
  const valid = parts.length === 2 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
  if (!valid) fail(path, `invalid kernel version "${s}", expected "<kernel>.<major>"`);
  if (parts[0] === '0' && parts[1] === '0') fail(path, `invalid kernel version "${s}": version cannot be 0.0`);
  return s;
}

function readFilter(path: string, v: Json): SeccompGroupFilter | undefined {
  if (!isObject(v)) fail(path, `expected an object, got ${describe(v)}`);
  const filter: SeccompGroupFilter = {};
  const caps = optional(v, 'caps', (x) => readArray(`${path}.caps`, x, readString));
  const arches = optional(v, 'arches', (x) => readArray(`${path}.arches`, x, readString));
  const minKernel = optional(v, 'minKernel', (x) => readMinKernel(`${path}.minKernel`, x));
  if (caps && caps.length > 0) filter.caps = caps;
  if (arches && arches.length > 0) filter.arches = arches;
  if (minKernel !== undefined) filter.minKernel = minKernel;
  return Object.keys(filter).length > 0 ? filter : undefined;
}

function readSyscall(path: string, v: Json): SeccompProfileSyscall {
  if (!isObject(v)) fail(path, `expected an object, got ${describe(v)}`);
  const name = optional(v, 'name', (x) => readString(`${path}.name`, x));
  let names = optional(v, 'names', (x) => readArray(`${path}.names`, x, readString)) ?? [];
  if (name !== undefined && name !== '') {
    if (names.length > 0) {
      fail(path, "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'");
    }
    names = [name];
  }
  if (names.length === 0) fail(path, 'a syscall rule needs "names" (or "name")');
  if (names.some((n) => n === '')) fail(`${path}.names`, 'empty string is not a valid syscall');
  const call: SeccompProfileSyscall = { names, action: readEnum(`${path}.action`, v['action'], SECCOMP_ACTIONS) };
  const errnoRet = optional(v, 'errnoRet', (x) => readUint(`${path}.errnoRet`, x, 0xffff_ffff));
  const args = optional(v, 'args', (x) => readArray(`${path}.args`, x, readArg));
  const comment = optional(v, 'comment', (x) => readString(`${path}.comment`, x));
  const includes = optional(v, 'includes', (x) => readFilter(`${path}.includes`, x));
  const excludes = optional(v, 'excludes', (x) => readFilter(`${path}.excludes`, x));
  if (errnoRet !== undefined) call.errnoRet = errnoRet;
  if (args && args.length > 0) call.args = args;
  if (comment) call.comment = comment;
  if (includes) call.includes = includes;
  if (excludes) call.excludes = excludes;
  return call;
}

function readArchMapEntry(path: string, v: Json): SeccompArchMapEntry {
  if (!isObject(v)) fail(path, `expected an object, got ${describe(v)}`);
  return {
    architecture: readEnum(`${path}.architecture`, v['architecture'], SECCOMP_ARCHES),
    subArchitectures:
      optional(v, 'subArchitectures', (x) =>
        readArray(`${path}.subArchitectures`, x, (p, a) => readEnum(p, a, SECCOMP_ARCHES)),
      ) ?? [],
  };
}

/** Validates an already-parsed JSON value as a Docker seccomp profile. */
export function validateSeccompProfile(value: unknown): SeccompProfile {
  if (!isObject(value)) fail('profile', `expected a JSON object, got ${describe(value)}`);
  const syscalls = optional(value, 'syscalls', (x) => readArray('syscalls', x, readSyscall)) ?? [];
  const defaultAction = optional(value, 'defaultAction', (x) => readString('defaultAction', x));
  if (defaultAction === undefined || defaultAction === '') {
    fail('defaultAction', 'missing (a profile without a default action would leave the container unconfined; use seccomp=unconfined for that)');
  }
  const profile: SeccompProfile = {
    defaultAction: readEnum('defaultAction', defaultAction, SECCOMP_ACTIONS),
    syscalls,
  };
  const defaultErrnoRet = optional(value, 'defaultErrnoRet', (x) => readUint('defaultErrnoRet', x, 0xffff_ffff));
  const architectures = optional(value, 'architectures', (x) =>
    readArray('architectures', x, (p, a) => readEnum(p, a, SECCOMP_ARCHES)),
  );
  const archMap = optional(value, 'archMap', (x) => readArray('archMap', x, readArchMapEntry));
  const flags = optional(value, 'flags', (x) => readArray('flags', x, (p, f) => readEnum(p, f, SECCOMP_FLAGS)));
  const listenerPath = optional(value, 'listenerPath', (x) => readString('listenerPath', x));
  const listenerMetadata = optional(value, 'listenerMetadata', (x) => readString('listenerMetadata', x));
  if (architectures && architectures.length > 0 && archMap && archMap.length > 0) {
    fail('profile', "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'");
  }
  if (defaultErrnoRet !== undefined) profile.defaultErrnoRet = defaultErrnoRet;
  if (architectures && architectures.length > 0) profile.architectures = architectures;
  if (archMap && archMap.length > 0) profile.archMap = archMap;
  if (flags && flags.length > 0) profile.flags = flags;
  if (listenerPath) profile.listenerPath = listenerPath;
  if (listenerMetadata) profile.listenerMetadata = listenerMetadata;
  return profile;
}

/**
 * Parses the text of a Docker seccomp profile (what `docker run --security-opt seccomp=<file>` sends: the file's
 * contents). Throws InvalidParameterError naming the offending field for bad JSON or a bad shape. Argument values
 * above 2^53 are kept exact (as bigint).
 */
export function parseSeccompProfile(jsonText: string): SeccompProfile {
  // JSON.parse would round 64-bit argument values: quote long integer literals of "value"/"valueTwo" first.
  // (`"value"` followed by `:` cannot occur inside a JSON string, whose quotes are escaped.)
  const guarded = jsonText.replace(
    /("value(?:Two)?"\s*:\s*)(\d{16,})(?=\s*[,}\]])/g,
    (_m, key: string, digits: string) => `${key}"\\u0000bigint:${digits}"`,
  );
  let value: unknown;
  try {
    value = JSON.parse(guarded);
  } catch (err) {
    throw new InvalidParameterError(`${PREFIX}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return validateSeccompProfile(value);
}

const defaultProfilePath = packagePath('src', 'runtime', 'seccomp', 'default-profile.json');

let defaultProfile: SeccompProfile | undefined;

/**
 * Docker's default seccomp profile (moby/profiles seccomp/default.json), read and parsed once (every container
 * start needs it) and frozen: callers derive from it (profileToOci copies), never change it.
 */
export function defaultSeccompProfile(): SeccompProfile {
  defaultProfile ??= deepFreeze(parseSeccompProfile(readFileSync(defaultProfilePath, 'utf8')));
  return defaultProfile;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Profile → OCI

/** Node `process.arch` / uname machine → Docker's native arch name (moby/profiles goToNative). */
const NATIVE_ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64',
  x86_64: 'amd64',
  amd64: 'amd64',
  ia32: 'x86',
  i386: 'x86',
  i686: 'x86',
  x86: 'x86',
  arm64: 'arm64',
  aarch64: 'arm64',
  arm: 'arm',
  armv7l: 'arm',
  ppc64: 'ppc64',
  ppc64le: 'ppc64le',
  s390x: 's390x',
  s390: 's390',
  riscv64: 'riscv64',
  loong64: 'loongarch64',
  loongarch64: 'loongarch64',
  mips64el: 'mipsel64',
  mipsel: 'mipsel',
};

/** Docker native arch name → libseccomp arch (moby/profiles nativeToSeccomp). */
const NATIVE_TO_SECCOMP: Readonly<Record<string, SeccompArch>> = {
  x86: 'SCMP_ARCH_X86',
  amd64: 'SCMP_ARCH_X86_64',
  arm: 'SCMP_ARCH_ARM',
  arm64: 'SCMP_ARCH_AARCH64',
  loongarch64: 'SCMP_ARCH_LOONGARCH64',
  mips64: 'SCMP_ARCH_MIPS64',
  mips64n32: 'SCMP_ARCH_MIPS64N32',
  mipsel64: 'SCMP_ARCH_MIPSEL64',
  mips3l64n32: 'SCMP_ARCH_MIPSEL64N32',
  mipsel: 'SCMP_ARCH_MIPSEL',
  ppc: 'SCMP_ARCH_PPC',
  ppc64: 'SCMP_ARCH_PPC64',
  ppc64le: 'SCMP_ARCH_PPC64LE',
  riscv64: 'SCMP_ARCH_RISCV64',
  s390: 'SCMP_ARCH_S390',
  s390x: 'SCMP_ARCH_S390X',
};

/** Docker's name for an architecture given as Node `process.arch` or a uname machine. */
export function dockerNativeArch(arch: string): string {
  return NATIVE_ARCH[arch] ?? arch;
}

function parseKernelRelease(release: string): [number, number] {
  const m = /^\s*(\d+)\.(\d+)/.exec(release);
  if (!m) throw new InvalidParameterError(`failed to parse kernel version "${release}"`);
  return [Number(m[1]), Number(m[2])];
}

function kernelAtLeast(release: string, minKernel: string): boolean {
  const [k, major] = parseKernelRelease(release);
  const [mk, mmajor] = minKernel.split('.').map(Number) as [number, number];
  return k > mk || (k === mk && major >= mmajor);
}

/**
 * Docker's profile → OCI `linux.seccomp` for one container: architectures = the archMap entry of the host
 * architecture plus its sub-architectures (or the profile's `architectures`); syscall groups dropped when an
 * `excludes` matches (arch, any cap in the bounding set, kernel ≥ minKernel) or an `includes` does not (arch, every
 * cap in the bounding set, kernel ≥ minKernel).
 */
export function profileToOci(profile: SeccompProfile, options: ProfileToOciOptions): LinuxSeccomp {
  if ((profile.architectures?.length ?? 0) > 0 && (profile.archMap?.length ?? 0) > 0) {
    throw new InvalidParameterError(
      "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'",
    );
  }
  const arch = dockerNativeArch(options.arch);
  const bounding = new Set(options.capabilities);

  const oci: LinuxSeccomp = { defaultAction: profile.defaultAction };
  if (profile.defaultErrnoRet !== undefined) oci.defaultErrnoRet = profile.defaultErrnoRet;
  const architectures: SeccompArch[] = [...(profile.architectures ?? [])];
  const seccompArch = NATIVE_TO_SECCOMP[arch];
  if (seccompArch !== undefined) {
    const entry = profile.archMap?.find((a) => a.architecture === seccompArch);
    if (entry) architectures.push(entry.architecture, ...entry.subArchitectures);
  }
  if (architectures.length > 0) oci.architectures = architectures;
  if (profile.flags) oci.flags = [...profile.flags];
  if (profile.listenerPath) oci.listenerPath = profile.listenerPath;
  if (profile.listenerMetadata) oci.listenerMetadata = profile.listenerMetadata;

  const syscalls: LinuxSyscall[] = [];
  for (const call of profile.syscalls) {
    const ex = call.excludes;
    if (ex) {
      if (ex.arches?.includes(arch)) continue;
      if (ex.caps?.some((c) => bounding.has(c))) continue;
      if (ex.minKernel !== undefined && kernelAtLeast(options.kernel, ex.minKernel)) continue;
    }
    const inc = call.includes;
    if (inc) {
      if (inc.arches && !inc.arches.includes(arch)) continue;
      if (inc.caps && !inc.caps.every((c) => bounding.has(c))) continue;
      if (inc.minKernel !== undefined && !kernelAtLeast(options.kernel, inc.minKernel)) continue;
    }
    const out: LinuxSyscall = { names: [...call.names], action: call.action };
    if (call.errnoRet !== undefined) out.errnoRet = call.errnoRet;
    if (call.args && call.args.length > 0) out.args = call.args.map((a) => ({ ...a }));
    syscalls.push(out);
  }
  oci.syscalls = syscalls;
  return oci;
}
