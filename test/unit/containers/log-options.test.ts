import { describe, expect, it } from 'vitest';
import { logAttributes, logLimits, parseLogSize, resolveLogConfig } from '../../../src/containers/log-options.js';

const daemon = { type: 'json-file', opts: {} };

describe('container log configuration', () => {
  it('shows what the user gave, not Berth\'s internal bounds (docker-py test_valid_no_config_specified)', () => {
    expect(resolveLogConfig({ Type: 'json-file', Config: {} }, daemon)).toEqual({ Type: 'json-file', Config: {} });
    expect(resolveLogConfig(undefined, daemon)).toEqual({ Type: 'json-file', Config: {} });
    expect(resolveLogConfig({ Type: '', Config: { 'max-file': '100' } }, daemon)).toEqual({ Type: 'json-file', Config: { 'max-file': '100' } });
    // still bounded internally
    expect(logLimits({ Type: 'json-file', Config: {} })).toEqual({ enabled: true, maxSize: 20 * 1024 * 1024, maxFile: 5, compress: false });
  });

  it('fills in daemon.json log-opts for the daemon\'s driver only, the user\'s keys winning', () => {
    const d = { type: 'json-file', opts: { 'max-size': '1m', 'max-file': '2' } };
    expect(resolveLogConfig({ Type: '', Config: { 'max-file': '3' } }, d)).toEqual({ Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '3' } });
    expect(resolveLogConfig({ Type: 'local', Config: {} }, d)).toEqual({ Type: 'local', Config: {} });
  });

  it('takes none and local, refuses unknown drivers and options with dockerd\'s messages', () => {
    expect(resolveLogConfig({ Type: 'none', Config: {} }, daemon).Type).toBe('none');
    expect(logLimits({ Type: 'none', Config: {} }).enabled).toBe(false);
    expect(logLimits({ Type: 'local', Config: {} })).toEqual({ enabled: true, maxSize: 20 * 1024 * 1024, maxFile: 5, compress: true });
    expect(() => resolveLogConfig({ Type: 'asdf', Config: {} }, daemon)).toThrow("logger: no log driver named 'asdf' is registered");
    expect(() => resolveLogConfig({ Type: 'local', Config: { labels: 'a' } }, daemon)).toThrow("unknown log opt 'labels' for local log driver");
    expect(() => resolveLogConfig({ Type: 'json-file', Config: { compress: 'maybe' } }, daemon)).toThrow(/ParseBool/);
    expect(() => resolveLogConfig({ Type: 'json-file', Config: { 'max-file': '0' } }, daemon)).toThrow('max-file cannot be less than 1');
  });

  it('compresses only when there is a rotated file to compress', () => {
    expect(logLimits({ Type: 'json-file', Config: { compress: 'true', 'max-file': '1' } }).compress).toBe(false);
    expect(logLimits({ Type: 'json-file', Config: { compress: 'true', 'max-file': '3', 'max-size': '1k' } })).toEqual({ enabled: true, maxSize: 1024, maxFile: 3, compress: true });
  });

  it('makes json-file attrs from labels, env and the tag template', () => {
    const attrs = logAttributes(
      { Type: 'json-file', Config: { labels: 'a,missing', 'env-regex': '^F', env: 'BAR', tag: '{{.Name}}/{{.ID}}/{{.ImageName}}' } },
      { id: 'abcdef0123456789ff', name: 'web', imageId: 'sha256:0123456789abcdef', imageName: 'busybox', labels: { a: '1', b: '2' }, env: ['FOO=x', 'BAR=y=z', 'OTHER=1'] },
    );
    expect(attrs).toEqual({ a: '1', FOO: 'x', BAR: 'y=z', tag: 'web/abcdef012345/busybox' });
  });
});

describe('json-file options', () => {
  it('resolves json-file options with daemon defaults', () => {
    expect(parseLogSize('10m')).toBe(10 * 1024 * 1024);
    expect(parseLogSize('1k')).toBe(1024);
    const d = { type: 'json-file', opts: { 'max-size': '20m', 'max-file': '5' } };
    expect(resolveLogConfig(undefined, d)).toEqual({ Type: 'json-file', Config: { 'max-size': '20m', 'max-file': '5' } });
    expect(() => resolveLogConfig({ Type: 'syslog', Config: {} }, d)).toThrow(/not supported/);
    expect(() => resolveLogConfig({ Type: 'json-file', Config: { 'max-file': 'x' } }, d)).toThrow(/max-file/);
  });
});
