import { describe, expect, it } from 'vitest';
import { familiarString, parseReference, refString, withDefaultTag } from '../../../src/images/reference.js';

const norm = (s: string) => {
  const r = withDefaultTag(parseReference(s));
  return [refString(r), familiarString(r)];
};

describe('image references', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['user/app:v1', 'docker.io/user/app:v1', 'user/app:v1'],
    ['docker.io/library/busybox:latest', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/foo', 'docker.io/library/foo:latest', 'foo:latest'],
    ['localhost/x', 'localhost/x:latest', 'localhost/x:latest'],
    ['localhost:5000/demo/bb:1', 'localhost:5000/demo/bb:1', 'localhost:5000/demo/bb:1'],
    ['127.0.0.1:5000/demo/bb', '127.0.0.1:5000/demo/bb:latest', '127.0.0.1:5000/demo/bb:latest'],
    ['Example.com/x', 'Example.com/x:latest', 'Example.com/x:latest'],
    ['foo/bar/baz', 'docker.io/foo/bar/baz:latest', 'foo/bar/baz:latest'],
    [`busybox@sha256:${'a'.repeat(64)}`, `docker.io/library/busybox@sha256:${'a'.repeat(64)}`, `busybox@sha256:${'a'.repeat(64)}`],
  ])('normalizes %s', (input, canonical, familiar) => {
    expect(norm(input)).toEqual([canonical, familiar]);
  });

  it.each(['Busybox', 'a b', 'foo:bad:tag', 'x/UPPER', '', 'foo/', ':tag', 'foo@sha256:xyz'])('refuses %j with invalid reference format', (s) => {
    expect(() => parseReference(s)).toThrow(/invalid reference format/);
  });

  it('refuses a 64-hex name as Docker does', () => {
    expect(() => parseReference('a'.repeat(64))).toThrow(/cannot specify 64-byte hexadecimal strings/);
  });
});
