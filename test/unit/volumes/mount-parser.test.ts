import { describe, expect, it } from 'vitest';
import {
  convertTmpfsOptions,
  mergeTmpfsOptions,
  parseBind,
  parseMountSpec,
  parseVolumesFrom,
  tmpfsOciOptions,
  validMountMode,
} from '../../../src/volumes/mount-parser.js';

describe('-v (Binds) parsing', () => {
  it('reads a named volume with the default copy and rw', () => {
    const p = parseBind('data:/var/lib/data');
    expect(p).toMatchObject({ type: 'volume', name: 'data', destination: '/var/lib/data', rw: true, mode: '', copyData: true, propagation: '' });
  });

  it('reads a bind with ro and a propagation mode, cleaning paths', () => {
    const p = parseBind('/host//dir/:/ctr/:ro,rslave');
    expect(p).toMatchObject({ type: 'bind', source: '/host/dir', destination: '/ctr', rw: false, mode: 'ro,rslave', propagation: 'rslave' });
  });

  it('defaults bind propagation to rprivate', () => {
    expect(parseBind('/h:/c').propagation).toBe('rprivate');
  });

  it('treats a lone path as an anonymous volume', () => {
    expect(parseBind('/data')).toMatchObject({ type: 'volume', name: '', destination: '/data', rw: true });
  });

  it('honours nocopy, z and Z', () => {
    expect(parseBind('v:/d:nocopy').copyData).toBe(false);
    expect(parseBind('v:/d:z').mode).toBe('z');
    expect(parseBind('v:/d:Z,ro').rw).toBe(false);
  });

  it('passes the volume driver into the spec', () => {
    expect(parseBind('v:/d', 'local')).toMatchObject({ driver: 'local', spec: { VolumeOptions: { DriverConfig: { Name: 'local' } } } });
  });

  it('refuses a destination with a mode but no source', () => {
    expect(() => parseBind('/foo:rw')).toThrow("invalid volume specification: '/foo:rw'");
  });

  it('refuses unknown and repeated modes with dockerd texts', () => {
    expect(() => parseBind('v:/d:bogus')).toThrow('invalid mode: bogus');
    expect(() => parseBind('v:/d:ro,rw')).toThrow('invalid mode: ro,rw');
  });

  it('refuses empty sources and too many fields', () => {
    expect(() => parseBind(':/d')).toThrow("invalid volume specification: ':/d'");
    expect(() => parseBind('a:/b:ro:x')).toThrow("invalid volume specification: 'a:/b:ro:x'");
  });

  it('refuses relative and root destinations', () => {
    expect(() => parseBind('v:rel')).toThrow(
      `invalid volume specification: 'v:rel': invalid mount config for type "volume": invalid mount path: 'rel' mount path must be absolute`,
    );
    expect(() => parseBind('v:/')).toThrow(`invalid mount config for type "volume": invalid specification: destination can't be '/'`);
  });

  it('answers 400 for parse errors', () => {
    try {
      parseBind('v:/d:bogus');
    } catch (e) {
      expect((e as { statusCode: number }).statusCode).toBe(400);
    }
  });

  it('validates modes as dockerd does', () => {
    expect(validMountMode('')).toBe(true);
    expect(validMountMode('ro,z,rshared,nocopy,cached')).toBe(true);
    expect(validMountMode('z,Z')).toBe(false);
  });
});

describe('--mount (Mounts) parsing', () => {
  it('refuses a missing bind source', () => {
    expect(() => parseMountSpec({ Type: 'bind', Source: '/nonexistent/x', Target: '/x' }, () => false)).toThrow(
      'invalid mount config for type "bind": bind source path does not exist: /nonexistent/x',
    );
  });

  it('accepts a missing bind source with CreateMountpoint', () => {
    const p = parseMountSpec({ Type: 'bind', Source: '/nope', Target: '/x', BindOptions: { CreateMountpoint: true } }, () => false);
    expect(p).toMatchObject({ type: 'bind', source: '/nope', propagation: 'rprivate' });
  });

  it('reads bind propagation and readonly', () => {
    const p = parseMountSpec({ Type: 'bind', Source: '/tmp', Target: '/t', ReadOnly: true, BindOptions: { Propagation: 'rshared' } }, () => true);
    expect(p).toMatchObject({ rw: false, propagation: 'rshared', mode: '' });
  });

  it('refuses a bad propagation', () => {
    expect(() => parseMountSpec({ Type: 'bind', Source: '/tmp', Target: '/t', BindOptions: { Propagation: 'weird' } }, () => true)).toThrow(
      'invalid mount config for type "bind": invalid propagation mode: weird',
    );
  });

  it('reads volume NoCopy and driver', () => {
    const p = parseMountSpec({ Type: 'volume', Source: 'v', Target: '/v', VolumeOptions: { NoCopy: true, DriverConfig: { Name: 'local' } } });
    expect(p).toMatchObject({ type: 'volume', name: 'v', copyData: false, driver: 'local' });
  });

  it('refuses options of another type and a tmpfs source', () => {
    expect(() => parseMountSpec({ Type: 'volume', Target: '/v', BindOptions: {} })).toThrow(
      'invalid mount config for type "volume": field BindOptions must not be specified',
    );
    expect(() => parseMountSpec({ Type: 'tmpfs', Source: 'x', Target: '/t' })).toThrow(
      'invalid mount config for type "tmpfs": field Source must not be specified',
    );
    expect(() => parseMountSpec({ Type: 'bogus', Target: '/t' })).toThrow('invalid mount config for type "bogus": mount type unknown');
    expect(() => parseMountSpec({ Type: 'volume', Source: 'v' })).toThrow('field Target must not be empty');
  });

  it('refuses wrongly typed fields from the wire', () => {
    expect(() => parseMountSpec({ Type: 'volume', Target: 5 as unknown as string })).toThrow('cannot unmarshal number');
  });

  it('converts tmpfs size and mode like dockerd', () => {
    expect(convertTmpfsOptions({ SizeBytes: 64 * 1024 * 1024, Mode: 0o1777 }, false)).toBe('mode=1777,size=64m');
    expect(convertTmpfsOptions({ SizeBytes: 1000 }, true)).toBe('ro,size=1000');
    expect(convertTmpfsOptions({ SizeBytes: 3 * 1024 ** 3, Options: [['noexec']] }, false)).toBe('size=3g,noexec');
    expect(() => convertTmpfsOptions({ Options: [['uid', '1']] }, false)).toThrow('invalid option: uid');
  });

  it('merges tmpfs options with later ones winning', () => {
    expect(tmpfsOciOptions('')).toEqual(['noexec', 'nosuid', 'nodev', 'rprivate']);
    expect(tmpfsOciOptions('rw,size=1m')).toEqual(['noexec', 'nosuid', 'nodev', 'rprivate', 'rw', 'size=1m']);
    expect(tmpfsOciOptions('exec,size=1m,size=2m')).toEqual(['nosuid', 'nodev', 'rprivate', 'exec', 'size=2m']);
    expect(mergeTmpfsOptions(['defaults', 'ro', 'rw'])).toEqual(['rw']);
    expect(() => mergeTmpfsOptions(['bogus=1'])).toThrow('invalid tmpfs option "bogus"');
  });
});

describe('--volumes-from parsing', () => {
  it('defaults to rw and accepts ro', () => {
    expect(parseVolumesFrom('data')).toEqual({ container: 'data', mode: 'rw' });
    expect(parseVolumesFrom('data:ro')).toEqual({ container: 'data', mode: 'ro' });
  });

  it('refuses propagation, copy modes and empty specs', () => {
    expect(() => parseVolumesFrom('data:rshared')).toThrow('invalid mode: rshared');
    expect(() => parseVolumesFrom('data:nocopy')).toThrow('invalid mode: nocopy');
    expect(() => parseVolumesFrom('')).toThrow('volumes-from specification cannot be an empty string');
  });
});
