import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Filters } from '../../../src/util/filters.js';
import { ANONYMOUS_LABEL, rfc3339Local } from '../../../src/volumes/volume-service.js';
import { ramInBytes, validateVolumeOptions } from '../../../src/volumes/local-driver.js';
import { directorySize } from '../../../src/util/directory-size.js';
import { volumeFixture, type VolumeFixture } from './fixture.js';

const f = (o: Record<string, string[]>): Filters => Filters.parse(JSON.stringify(o));

describe('VolumeService', () => {
  let fx: VolumeFixture;
  beforeEach(async () => {
    fx = await volumeFixture();
  });
  afterEach(() => fx.close());

  it('creates <data-root>/volumes/<name>/_data and records labels, options and scope', async () => {
    const { volume, created } = await fx.svc.create({ name: 'web-data', labels: { a: 'b' }, driverOpts: {} });
    expect(created).toBe(true);
    expect(volume).toMatchObject({
      Name: 'web-data',
      Driver: 'local',
      Labels: { a: 'b' },
      Options: {},
      Scope: 'local',
      Mountpoint: join(fx.dataRoot, 'volumes', 'web-data', '_data'),
    });
    expect(existsSync(volume.Mountpoint)).toBe(true);
    expect(volume.CreatedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/);
    expect(fx.events.map((e) => [e.Type, e.Action, e.Actor.ID, e.Actor.Attributes.driver])).toEqual([['volume', 'create', 'web-data', 'local']]);
  });

  it('keeps null labels/options null when the request had none', async () => {
    const { volume } = await fx.svc.create({ name: 'plain' });
    expect(volume.Labels).toBeNull();
    expect(volume.Options).toBeNull();
  });

  it('is idempotent for the same name: the first labels stay, no second event', async () => {
    await fx.svc.create({ name: 'v1', labels: { a: '1' } });
    const again = await fx.svc.create({ name: 'v1', labels: { a: '2' }, driver: 'local' });
    expect(again.created).toBe(false);
    expect(again.volume.Labels).toEqual({ a: '1' });
    expect(fx.events.filter((e) => e.Action === 'create')).toHaveLength(1);
  });

  it('generates a 64-hex name labelled anonymous when no name is given', async () => {
    const { volume, record } = await fx.svc.create({});
    expect(volume.Name).toMatch(/^[0-9a-f]{64}$/);
    expect(volume.Labels).toEqual({ [ANONYMOUS_LABEL]: '' });
    expect(record.anonymous).toBe(true);
  });

  it("refuses invalid names with dockerd's texts, never touching paths outside the volumes dir", async () => {
    for (const bad of ['../x', 'a/b', '..', '.hidden', '/abs', 'x\u0000y']) {
      await expect(fx.svc.create({ name: bad })).rejects.toMatchObject({
        statusCode: 400,
        message: `create ${bad}: ${JSON.stringify(bad)} includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
      });
    }
    await expect(fx.svc.create({ name: 'x' })).rejects.toThrow(
      'create x: volume name is too short, names should be at least two alphanumeric characters',
    );
    expect(readdirSync(join(fx.dataRoot, 'volumes'))).toEqual([]);
    expect(readdirSync(fx.dataRoot)).toEqual(['volumes']);
  });

  it('refuses an unknown driver with 404 and bad options with 400', async () => {
    await expect(fx.svc.create({ name: 'v1', driver: 'nfs-plugin' })).rejects.toMatchObject({
      statusCode: 404,
      message: 'create v1: error looking up volume plugin nfs-plugin: plugin "nfs-plugin" not found',
    });
    await expect(fx.svc.create({ name: 'v1', driverOpts: { foo: 'bar' } })).rejects.toMatchObject({
      statusCode: 400,
      message: 'create v1: invalid option: "foo"',
    });
    await expect(fx.svc.create({ name: 'v1', driverOpts: { type: 'tmpfs' } })).rejects.toThrow('create v1: missing required option: "device"');
    await expect(fx.svc.create({ name: 'v1', driverOpts: { o: 'size=1m' } })).rejects.toThrow('missing required option: "device"');
    await expect(fx.svc.create({ name: 'v1', driverOpts: { size: '10m' } })).rejects.toThrow('quota size requested but no quota support');
  });

  it('accepts tmpfs / bind style local options and describes the mount', async () => {
    await fx.svc.create({ name: 'tv', driverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=10m' } });
    expect(fx.svc.needsMount('tv')).toBe(true);
    expect(fx.svc.driver.describeMount('tv', { type: 'tmpfs', device: 'tmpfs', o: 'size=10m' })).toEqual({
      type: 'tmpfs',
      device: 'tmpfs',
      options: 'size=10m',
      target: join(fx.dataRoot, 'volumes', 'tv', '_data'),
    });
  });

  it("answers 404 'get X: no such volume'", async () => {
    expect(() => fx.svc.get('nope')).toThrow('get nope: no such volume');
    await expect(fx.svc.remove('nope')).rejects.toMatchObject({ statusCode: 404, message: 'get nope: no such volume' });
    await expect(fx.svc.remove('nope', { force: true })).resolves.toBeUndefined();
    expect(() => fx.svc.get('../../etc')).toThrow('get ../../etc: no such volume');
  });

  it('refuses to remove a volume in use, even with force, naming the containers', async () => {
    await fx.svc.create({ name: 'busy' });
    fx.users.set('busy', ['c1', 'c2']);
    await expect(fx.svc.remove('busy', { force: true })).rejects.toMatchObject({
      statusCode: 409,
      message: 'remove busy: volume is in use - [c1, c2]',
    });
    expect(existsSync(join(fx.dataRoot, 'volumes', 'busy', '_data'))).toBe(true);
    fx.users.delete('busy');
    await fx.svc.remove('busy');
    expect(existsSync(join(fx.dataRoot, 'volumes', 'busy'))).toBe(false);
    expect(fx.events.at(-1)).toMatchObject({ Type: 'volume', Action: 'destroy', Actor: { ID: 'busy', Attributes: { driver: 'local' } } });
  });

  it('filters by name (regexp), driver, label and dangling', async () => {
    await fx.svc.create({ name: 'alpha', labels: { tier: 'db', x: '' } });
    await fx.svc.create({ name: 'beta', labels: { tier: 'web' } });
    await fx.svc.create({ name: 'gamma' });
    fx.users.set('beta', ['c1']);
    const names = (flt: Record<string, string[]>): string[] => fx.svc.list(f(flt)).Volumes.map((v) => v.Name);
    expect(names({})).toEqual(['alpha', 'beta', 'gamma']);
    expect(names({ name: ['ph'] })).toEqual(['alpha']);
    expect(names({ name: ['^b'] })).toEqual(['beta']);
    expect(names({ driver: ['local'] })).toHaveLength(3);
    expect(names({ driver: ['other'] })).toEqual([]);
    expect(names({ label: ['tier'] })).toEqual(['alpha', 'beta']);
    expect(names({ label: ['tier=db'] })).toEqual(['alpha']);
    expect(names({ label: ['tier', 'x'] })).toEqual(['alpha']);
    expect(names({ dangling: ['true'] })).toEqual(['alpha', 'gamma']);
    expect(names({ dangling: ['0'] })).toEqual(['beta']);
    expect(fx.svc.list().Warnings).toBeNull();
    expect(() => fx.svc.list(f({ bogus: ['1'] }))).toThrow("invalid filter 'bogus'");
    expect(() => fx.svc.list(f({ dangling: ['maybe'] }))).toThrow("invalid filter 'dangling=maybe'");
  });

  it('prunes anonymous unused volumes only, unless all=true, and reports the space', async () => {
    const anon = (await fx.svc.create({})).volume;
    const anonBusy = (await fx.svc.create({})).volume;
    await fx.svc.create({ name: 'named' });
    await fx.svc.create({ name: 'withopts', driverOpts: { type: 'tmpfs', device: 'tmpfs' } });
    writeFileSync(join(anon.Mountpoint, 'f'), Buffer.alloc(1000));
    fx.users.set(anonBusy.Name, ['c1']);
    const r1 = await fx.svc.prune();
    expect(r1).toEqual({ VolumesDeleted: [anon.Name], SpaceReclaimed: 1000 });
    expect(fx.events.at(-1)).toMatchObject({ Action: 'prune', Actor: { ID: '', Attributes: { reclaimed: '1000' } } });
    const r2 = await fx.svc.prune(f({ all: ['true'] }));
    expect(r2.VolumesDeleted).toEqual(['named']);
    expect(fx.svc.list().Volumes.map((v) => v.Name).sort()).toEqual([anonBusy.Name, 'withopts'].sort());
  });

  it('prunes by label and label!', async () => {
    await fx.svc.create({ name: 'keep', labels: { keep: '1' } });
    await fx.svc.create({ name: 'drop', labels: { tmp: '1' } });
    expect((await fx.svc.prune(f({ all: ['1'], 'label!': ['keep'] }))).VolumesDeleted).toEqual(['drop']);
    expect((await fx.svc.prune(f({ all: ['1'], label: ['nothing'] }))).VolumesDeleted).toEqual([]);
    await expect(fx.svc.prune(f({ all: ['yes'] }))).rejects.toThrow("invalid filter 'all'");
    await expect(fx.svc.prune(f({ dangling: ['true'] }))).rejects.toThrow("invalid filter 'dangling'");
  });

  it('reports usage for df: size and reference count, local volumes without options only', async () => {
    const v = (await fx.svc.create({ name: 'sized' })).volume;
    await fx.svc.create({ name: 'opt', driverOpts: { type: 'none', o: 'bind', device: '/tmp' } });
    writeFileSync(join(v.Mountpoint, 'a'), Buffer.alloc(300));
    mkdirSync(join(v.Mountpoint, 'd'));
    writeFileSync(join(v.Mountpoint, 'd', 'b'), Buffer.alloc(200));
    symlinkSync('a', join(v.Mountpoint, 'link'));
    fx.users.set('sized', ['c1', 'c2']);
    const usage = await fx.svc.diskUsage();
    expect(usage).toHaveLength(1);
    expect(usage[0]).toMatchObject({ Name: 'sized', UsageData: { Size: 501, RefCount: 2 } });
  });

  it('removes only anonymous, unused volumes for rm -v', async () => {
    const a1 = (await fx.svc.create({})).volume.Name;
    const a2 = (await fx.svc.create({})).volume.Name;
    await fx.svc.create({ name: 'named' });
    fx.users.set(a1, ['me']);
    fx.users.set(a2, ['me', 'other']);
    const removed = await fx.svc.removeAnonymousVolumes([a1, a2, 'named'], 'me');
    expect(removed).toEqual([a1]);
    expect(fx.svc.list().Volumes.map((v) => v.Name).sort()).toEqual([a2, 'named'].sort());
  });
});

describe('VolumeService start-up reconciliation', () => {
  it('adopts volume directories without a record and drops records without a directory', async () => {
    const fx = await volumeFixture();
    try {
      await fx.svc.create({ name: 'kept', labels: { a: 'b' } });
      await fx.svc.create({ name: 'lost' });
      const { rmSync } = await import('node:fs');
      rmSync(join(fx.dataRoot, 'volumes', 'lost'), { recursive: true });
      mkdirSync(join(fx.dataRoot, 'volumes', 'carried', '_data'), { recursive: true });
      mkdirSync(join(fx.dataRoot, 'volumes', 'no-data-dir'));
      mkdirSync(join(fx.dataRoot, 'volumes', '.bad', '_data'), { recursive: true });
      await fx.svc.init();
      expect(fx.svc.list().Volumes.map((v) => [v.Name, v.Labels])).toEqual([
        ['carried', null],
        ['kept', { a: 'b' }],
      ]);
    } finally {
      fx.close();
    }
  });
});

describe('local driver helpers', () => {
  it('parses sizes as go-units RAMInBytes', () => {
    expect(ramInBytes('10m')).toBe(10 * 1024 * 1024);
    expect(ramInBytes('1GiB')).toBe(1024 ** 3);
    expect(ramInBytes('512')).toBe(512);
    expect(() => ramInBytes('ten')).toThrow("invalid size: 'ten'");
  });

  it('rejects a CIFS device URL with a port', () => {
    expect(() => validateVolumeOptions({ type: 'cifs', device: '//host:445/share' })).not.toThrow();
    expect(() => validateVolumeOptions({ type: 'cifs', device: 'cifs://host:445/share' })).toThrow('port not allowed in CIFS device URL');
  });

  it('sizes directories counting hard links once and empty files not at all', async () => {
    const { mkdtempSync, linkSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const d = mkdtempSync(join(tmpdir(), 'berth-size-'));
    writeFileSync(join(d, 'a'), Buffer.alloc(100));
    linkSync(join(d, 'a'), join(d, 'b'));
    writeFileSync(join(d, 'empty'), '');
    expect(await directorySize(d)).toBe(100);
    expect(await directorySize(join(d, 'missing'))).toBe(0);
    rmSync(d, { recursive: true, force: true });
  });

  it('formats CreatedAt as Go RFC3339 in local time', () => {
    const s = rfc3339Local(Date.UTC(2024, 0, 1, 0, 0, 0));
    expect(s).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/);
    expect(new Date(s).getTime()).toBe(Date.UTC(2024, 0, 1, 0, 0, 0));
  });
});
