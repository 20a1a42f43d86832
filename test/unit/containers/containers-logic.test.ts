import { describe, expect, it } from 'vitest';
import { generateContainerName, validateContainerName } from '../../../src/containers/names.js';
import { commandOf, mergeImageConfig } from '../../../src/containers/config-merge.js';
import { RestartBackoff, validateRestartPolicy } from '../../../src/containers/restart-policy.js';
import { humanDuration } from '../../../src/util/human-duration.js';
import { signalNumber } from '../../../src/containers/signals.js';
import { parseDetachKeys } from '../../../src/api/attach-stream.js';
import { parseLogSize, resolveLogConfig } from '../../../src/containers/log-options.js';
import { parseSecurityOpts } from '../../../src/containers/spec-builder.js';

describe('container names', () => {
  it('accepts Docker names and strips the slash', () => {
    expect(validateContainerName('/web-1')).toBe('web-1');
    expect(validateContainerName('a.b_c')).toBe('a.b_c');
  });
  it("refuses bad names with dockerd's message", () => {
    expect(() => validateContainerName('-x')).toThrow('Invalid container name (-x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed');
    expect(() => validateContainerName('a')).toThrow();
    expect(() => validateContainerName('a b')).toThrow();
  });
  it('generates adjective_surname names', () => {
    expect(generateContainerName()).toMatch(/^[a-z]+_[a-z]+$/);
  });
});

describe('image config merge', () => {
  const image = { Env: ['PATH=/bin', 'A=image'], Cmd: ['sh'], WorkingDir: '/w', Labels: { a: '1' }, ExposedPorts: { '80/tcp': {} }, User: 'nobody' };
  it('lets user values win and appends image env entries the user did not set', () => {
    const m = mergeImageConfig({ Image: 'x', Env: ['A=user', 'B=2'], Labels: { b: '2' } }, image, 'f'.repeat(64));
    expect(m.Env).toEqual(['A=user', 'B=2', 'PATH=/bin']);
    expect(m.Cmd).toEqual(['sh']);
    expect(m.WorkingDir).toBe('/w');
    expect(m.User).toBe('nobody');
    expect(m.Labels).toEqual({ a: '1', b: '2' });
    expect(m.Hostname).toBe('ffffffffffff');
    expect(m.ExposedPorts).toEqual({ '80/tcp': {} });
  });
  it('drops the image Cmd when the user sets an Entrypoint', () => {
    const m = mergeImageConfig({ Image: 'x', Entrypoint: ['echo'] }, image, 'a'.repeat(64));
    expect(commandOf(m)).toEqual({ path: 'echo', args: [] });
  });
  it('refuses a container with no command', () => {
    expect(() => mergeImageConfig({ Image: 'x' }, {}, 'a'.repeat(64))).toThrow('No command specified');
  });
});

describe('restart policies', () => {
  it('validates names, retry counts and AutoRemove', () => {
    expect(() => validateRestartPolicy({ Name: 'sometimes' as 'always', MaximumRetryCount: 0 }, false)).toThrow(/invalid restart policy/);
    expect(() => validateRestartPolicy({ Name: 'always', MaximumRetryCount: 2 }, false)).toThrow(/on-failure/);
    expect(() => validateRestartPolicy({ Name: 'always', MaximumRetryCount: 0 }, true)).toThrow("can't create 'AutoRemove' container with restart policy");
    expect(() => validateRestartPolicy({ Name: 'on-failure', MaximumRetryCount: 3 }, false)).not.toThrow();
  });
  it("decides like dockerd's restart manager, with doubling backoff reset after 10 s up", () => {
    const b = new RestartBackoff();
    expect(b.decide({ Name: 'on-failure', MaximumRetryCount: 2 }, 1, 0, false, 5)).toBe(100);
    expect(b.decide({ Name: 'on-failure', MaximumRetryCount: 2 }, 1, 1, false, 5)).toBe(200);
    expect(b.decide({ Name: 'on-failure', MaximumRetryCount: 2 }, 1, 2, false, 5)).toBeUndefined();
    expect(b.decide({ Name: 'on-failure', MaximumRetryCount: 0 }, 0, 0, false, 5)).toBeUndefined();
    expect(b.decide({ Name: 'always', MaximumRetryCount: 0 }, 0, 0, false, 5)).toBe(100);
    expect(b.decide({ Name: 'always', MaximumRetryCount: 0 }, 0, 0, false, 5)).toBe(200);
    expect(b.decide({ Name: 'always', MaximumRetryCount: 0 }, 0, 0, false, 20_000)).toBe(100);
    expect(b.decide({ Name: 'always', MaximumRetryCount: 0 }, 0, 0, true, 5)).toBeUndefined();
    expect(b.decide({ Name: 'unless-stopped', MaximumRetryCount: 0 }, 0, 0, true, 5)).toBeUndefined();
  });
});

describe('small parsers', () => {
  it('prints durations as go-units does', () => {
    expect(humanDuration(500)).toBe('Less than a second');
    expect(humanDuration(1000)).toBe('1 second');
    expect(humanDuration(3000)).toBe('3 seconds');
    expect(humanDuration(61_000)).toBe('About a minute');
    expect(humanDuration(5 * 60_000)).toBe('5 minutes');
    expect(humanDuration(3_600_000)).toBe('About an hour');
    expect(humanDuration(5 * 3_600_000)).toBe('5 hours');
    expect(humanDuration(72 * 3_600_000)).toBe('3 days');
  });
  it('parses signals by name and number', () => {
    expect(signalNumber('TERM')).toBe(15);
    expect(signalNumber('SIGUSR1')).toBe(10);
    expect(signalNumber('kill')).toBe(9);
    expect(signalNumber('2')).toBe(2);
    expect(() => signalNumber('NOPE')).toThrow('Invalid signal: NOPE');
  });
  it('parses detach keys', () => {
    expect([...parseDetachKeys(undefined)]).toEqual([0x10, 0x11]);
    expect([...parseDetachKeys('ctrl-a,x')]).toEqual([1, 0x78]);
    expect(() => parseDetachKeys('ctrl-')).toThrow(/Invalid detach keys/);
  });
  it('resolves json-file options with daemon defaults', () => {
    expect(parseLogSize('10m')).toBe(10 * 1024 * 1024);
    expect(parseLogSize('1k')).toBe(1024);
    const d = { type: 'json-file', opts: { 'max-size': '20m', 'max-file': '5' } };
    expect(resolveLogConfig(undefined, d)).toEqual({ Type: 'json-file', Config: { 'max-size': '20m', 'max-file': '5' } });
    expect(() => resolveLogConfig({ Type: 'syslog', Config: {} }, d)).toThrow(/not supported/);
    expect(() => resolveLogConfig({ Type: 'json-file', Config: { 'max-file': 'x' } }, d)).toThrow(/max-file/);
  });
  it('parses --security-opt', () => {
    expect(parseSecurityOpts(['no-new-privileges'])).toEqual({ seccomp: 'default', noNewPrivileges: true });
    expect(parseSecurityOpts(['seccomp=unconfined']).seccomp).toBe('unconfined');
    expect(() => parseSecurityOpts(['bogus=1'])).toThrow(/invalid --security-opt/);
  });
});
