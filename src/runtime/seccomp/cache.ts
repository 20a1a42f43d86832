// The seccomp filter of a spec compiled once per daemon: containers of the same profile and capabilities share
// one program, and a container's execs reuse its container's.

import os from 'node:os';
import type { OciSpec } from '../oci-spec.js';
import { compileSeccomp, seccompFilterFlags } from './compile.js';

export interface CompiledSeccomp {
  bpf: Buffer;
  flags: number;
}

/** Compiled seccomp programs by machine + profile: the same profile and capabilities compile once per daemon. */
const seccompPrograms = new Map<string, CompiledSeccomp>();

/** Programs by profile object: a profile the spec builder shares between containers skips the JSON key. */
const byObject = new WeakMap<object, CompiledSeccomp>();

/** The spec's seccomp filter compiled for this machine (cached), undefined when the spec has none. */
export function compiledSeccomp(spec: OciSpec): CompiledSeccomp | undefined {
  const profile = spec.linux?.seccomp;
  if (!profile) return undefined;
  const known = byObject.get(profile);
  if (known) return known;
  const machine = os.machine() === 'aarch64' ? 'aarch64' : 'x86_64';
  const key = `${machine}\0${JSON.stringify(profile, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`;
  let c = seccompPrograms.get(key);
  if (!c) {
    c = { bpf: compileSeccomp(profile, machine), flags: seccompFilterFlags(profile) };
    if (seccompPrograms.size >= 32) seccompPrograms.delete(seccompPrograms.keys().next().value as string);
    seccompPrograms.set(key, c);
  }
  if (Object.isFrozen(profile)) byObject.set(profile, c);
  return c;
}
