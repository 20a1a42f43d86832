import { describe, expect, it } from 'vitest';
import { commandOf, mergeImageConfig } from '../../../src/containers/config-merge.js';

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
