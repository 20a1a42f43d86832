import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidParameterError } from '../../../../src/errors.js';
import { defaultSeccompProfile, parseSeccompProfile, profileToOci } from '../../../../src/runtime/seccomp/index.js';

const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

function namesWith(oci: ReturnType<typeof profileToOci>, name: string) {
  return (oci.syscalls ?? []).filter((s) => s.names.includes(name));
}

describe('parseSeccompProfile', () => {
  it('parses Docker\'s default profile', () => {
    const p = defaultSeccompProfile();
    expect(p.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(p.defaultErrnoRet).toBe(1);
    expect(p.archMap?.[0]).toEqual({ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] });
    expect(p.syscalls).toHaveLength(33);
    expect(p.syscalls[0]?.names).toHaveLength(361);
  });

  it('folds "name" into "names", accepts nulls and empty includes as absent', () => {
    const p = parseSeccompProfile(
      '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO","args":null,"includes":{},"excludes":{"caps":null}}]}',
    );
    expect(p.syscalls).toEqual([{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }]);
  });

  it('keeps 64-bit argument values exact', () => {
    const p = parseSeccompProfile(
      '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ioctl"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"value":18446744073709551615,"valueTwo":9007199254740993,"op":"SCMP_CMP_MASKED_EQ"}]}]}',
    );
    expect(p.syscalls[0]?.args?.[0]).toEqual({ index: 1, value: 0xffffffffffffffffn, valueTwo: 9007199254740993n, op: 'SCMP_CMP_MASKED_EQ' });
  });

  it.each([
    ['not JSON', '{"defaultAction":', /Decoding seccomp profile failed/],
    ['not an object', '[1,2]', /expected a JSON object/],
    ['no defaultAction', '{"syscalls":[]}', /defaultAction: missing/],
    ['unknown action', '{"defaultAction":"SCMP_ACT_NOPE"}', /defaultAction: unknown value "SCMP_ACT_NOPE"/],
    ['syscalls not an array', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":{}}', /syscalls: expected an array/],
    ['rule without names', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}', /syscalls\[0\]: a syscall rule needs "names"/],
    ['name and names', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}', /both 'name' and 'names'/],
    ['bad operator', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_LIKE"}]}]}', /syscalls\[0\]\.args\[0\]\.op: unknown value/],
    ['arg index 6', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}', /index: expected an integer between 0 and 5/],
    ['negative value', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":-1,"op":"SCMP_CMP_EQ"}]}]}', /value: expected an unsigned 64-bit integer/],
    ['both archMap and architectures', '{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":[]}]}', /both 'architectures' and 'archMap'/],
    ['unknown arch', '{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_Z80"]}', /architectures\[0\]: unknown value/],
    ['bad minKernel', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}', /invalid kernel version "4"/],
  ])('rejects a profile with %s as InvalidParameterError', (_what, text, message) => {
    expect(() => parseSeccompProfile(text)).toThrow(InvalidParameterError);
    expect(() => parseSeccompProfile(text)).toThrow(message);
  });
});

describe('profileToOci', () => {
  const opts = { arch: 'x64', capabilities: DEFAULT_CAPS, kernel: '6.18.0-1-amd64' };

  it('takes architectures from archMap with sub-architectures, per host arch', () => {
    expect(profileToOci(defaultSeccompProfile(), opts).architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(profileToOci(defaultSeccompProfile(), { ...opts, arch: 'aarch64' }).architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  });

  it('keeps cap-gated groups only when every included cap is in the bounding set', () => {
    const plain = profileToOci(defaultSeccompProfile(), opts);
    expect(namesWith(plain, 'mount')).toHaveLength(0);
    expect(namesWith(plain, 'chroot')).toHaveLength(1); // CAP_SYS_CHROOT is a default cap
    const admin = profileToOci(defaultSeccompProfile(), { ...opts, capabilities: [...DEFAULT_CAPS, 'CAP_SYS_ADMIN'] });
    expect(namesWith(admin, 'mount')).toHaveLength(1);
  });

  it('drops groups excluded by a cap in the bounding set (clone filter, clone3 ENOSYS without CAP_SYS_ADMIN)', () => {
    const plain = profileToOci(defaultSeccompProfile(), opts);
    expect(namesWith(plain, 'clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
    expect(namesWith(plain, 'clone')[0]?.args).toEqual([{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }]);
    const admin = profileToOci(defaultSeccompProfile(), { ...opts, capabilities: ['CAP_SYS_ADMIN'] });
    expect(namesWith(admin, 'clone3').map((s) => s.action)).toEqual(['SCMP_ACT_ALLOW']);
    expect(namesWith(admin, 'clone').map((s) => s.args)).toEqual([undefined]);
  });

  it('applies arch includes with Docker\'s arch names and minKernel against the running kernel', () => {
    const amd64 = profileToOci(defaultSeccompProfile(), opts);
    expect(namesWith(amd64, 'arch_prctl')).toHaveLength(1);
    expect(namesWith(amd64, 'cacheflush')).toHaveLength(0);
    const arm64 = profileToOci(defaultSeccompProfile(), { ...opts, arch: 'arm64' });
    expect(namesWith(arm64, 'arch_prctl')).toHaveLength(0);
    expect(namesWith(arm64, 'cacheflush')).toHaveLength(1);
    expect(namesWith(amd64, 'ptrace')).toHaveLength(1);
    expect(namesWith(profileToOci(defaultSeccompProfile(), { ...opts, kernel: '4.4.0' }), 'ptrace')).toHaveLength(0);
    expect(namesWith(profileToOci(defaultSeccompProfile(), { ...opts, kernel: '4.8.0' }), 'ptrace')).toHaveLength(1);
  });

  it('excludes a group when the kernel is at least excludes.minKernel', () => {
    const p = parseSeccompProfile('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","excludes":{"minKernel":"5.10"}}]}');
    expect(profileToOci(p, { ...opts, kernel: '5.4.0' }).syscalls).toHaveLength(1);
    expect(profileToOci(p, { ...opts, kernel: '5.10.1' }).syscalls).toHaveLength(0);
  });

  it('copies defaultErrnoRet and profile-level architectures', () => {
    const p = parseSeccompProfile('{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"architectures":["SCMP_ARCH_X86_64"],"syscalls":[]}');
    expect(profileToOci(p, opts)).toEqual({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 38, architectures: ['SCMP_ARCH_X86_64'], syscalls: [] });
  });
});

describe('default profile data file', () => {
  const dist = new URL('../../../../dist/runtime/seccomp/profile.js', import.meta.url);

  it('resolves from the dist/ module location to the JSON kept in src/ (tsc does not copy it)', () => {
    const fromDist = new URL('../../../src/runtime/seccomp/default-profile.json', dist);
    expect(existsSync(fromDist)).toBe(true);
  });

  // `npm test` builds first; with a plain `vitest run` and no dist/ there is nothing to load.
  it.runIf(existsSync(dist))('is loaded by the compiled dist/ module', () => {
    const script = `import(${JSON.stringify(dist.href)}).then((m) => process.stdout.write(String(m.defaultSeccompProfile().syscalls.length)))`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(out).toBe(String(defaultSeccompProfile().syscalls.length));
  });
});
