import { describe, expect, it } from 'vitest';
import { checkApiVersion, stripVersionPrefix } from '../../../src/api/api-version.js';

describe('version prefixes', () => {
  it('strips /v1.NN and keeps the rest of the URL', () => {
    expect(stripVersionPrefix('/v1.41/containers/json?all=1')).toEqual({ url: '/containers/json?all=1', version: '1.41' });
    expect(stripVersionPrefix('/v1.50/_ping')).toEqual({ url: '/_ping', version: '1.50' });
    expect(stripVersionPrefix('/v1.50')).toEqual({ url: '/', version: '1.50' });
    // dockerd's [0-9.]+: malformed versions are still versions, which the version check refuses
    expect(stripVersionPrefix('/v1..5/version')).toEqual({ url: '/version', version: '1..5' });
  });

  it('leaves unversioned URLs and look-alikes alone', () => {
    expect(stripVersionPrefix('/containers/json')).toEqual({ url: '/containers/json', version: undefined });
    expect(stripVersionPrefix('/volumes/v1.2x')).toEqual({ url: '/volumes/v1.2x', version: undefined });
  });

  it("refuses versions outside 1.24..1.50 with dockerd's messages", () => {
    expect(() => checkApiVersion('1.99')).toThrow('client version 1.99 is too new. Maximum supported API version is 1.50');
    expect(() => checkApiVersion('1.12')).toThrow(
      'client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version',
    );
    expect(() => checkApiVersion('1.24')).not.toThrow();
    expect(() => checkApiVersion('1.50')).not.toThrow();
    expect(() => checkApiVersion(undefined)).not.toThrow();
  });
});
