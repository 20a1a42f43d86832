import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfinedRoot, rootfsReader } from '../../../src/containers/confined-root.js';
import type { RootfsReader } from '../../../src/volumes/copy-up.js';
import { ANONYMOUS_LABEL } from '../../../src/volumes/volume-service.js';
import { Filters } from '../../../src/util/filters.js';
import {
  type ContainerMount,
  inspectMounts,
  ociMounts,
  prepareContainerMounts,
  recursiveReadOnlySupported,
  releaseContainerMounts,
  resolveContainerMounts,
  sortMountsByDepth,
} from '../../../src/volumes/container-mounts.js';
import { volumeFixture, type VolumeFixture } from './fixture.js';

/** Read-only binds are recursively read-only where the kernel can (API 1.44 default). */
const RO = recursiveReadOnlySupported() ? 'rro' : 'ro';

const CID = 'c'.repeat(64);

describe('resolveContainerMounts', () => {
  let fx: VolumeFixture;
  let host: string;
  beforeEach(async () => {
    fx = await volumeFixture();
    host = join(fx.dir, 'host');
    mkdirSync(host);
  });
  afterEach(() => fx.close());

  const vol = (name: string): string => join(fx.dataRoot, 'volumes', name, '_data');

  it('creates a named volume on first use and shows it as dockerd does', async () => {
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['data:/data'] });
    expect(r.createdVolumes).toEqual(['data']);
    expect(inspectMounts(r.mounts)).toEqual([
      { Type: 'volume', Name: 'data', Source: vol('data'), Destination: '/data', Driver: 'local', Mode: 'z', RW: true, Propagation: '' },
    ]);
    expect(JSON.stringify(inspectMounts(r.mounts)[0])).toBe(
      `{"Type":"volume","Name":"data","Source":"${vol('data')}","Destination":"/data","Driver":"local","Mode":"z","RW":true,"Propagation":""}`,
    );
    expect(r.oci).toEqual([{ destination: '/data', type: 'bind', source: vol('data'), options: ['rbind'] }]);
    expect(fx.svc.get('data').Labels).toBeNull();
  });

  it('reuses an existing volume and keeps the -v mode string', async () => {
    await fx.svc.create({ name: 'shared', labels: { a: 'b' } });
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['shared:/s:ro,nocopy'] });
    expect(r.createdVolumes).toEqual([]);
    expect(inspectMounts(r.mounts)[0]).toMatchObject({ Mode: 'ro,nocopy', RW: false });
    expect(r.oci[0]?.options).toEqual(['rbind', RO]);
  });

  it('shows binds with their propagation and no Name/Driver', async () => {
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: [`${host}:/h:ro`] });
    expect(inspectMounts(r.mounts)).toEqual([{ Type: 'bind', Source: host, Destination: '/h', Mode: 'ro', RW: false, Propagation: 'rprivate' }]);
    expect(r.oci).toEqual([{ destination: '/h', type: 'bind', source: host, options: ['rbind', RO, 'rprivate'] }]);
  });

  it('creates anonymous volumes for Config.Volumes (image VOLUME / -v /path), labelled anonymous, Mode ""', async () => {
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, volumes: { '/var/lib/db': {} } });
    expect(r.anonymousVolumes).toHaveLength(1);
    const name = r.anonymousVolumes[0] as string;
    expect(name).toMatch(/^[0-9a-f]{64}$/);
    expect(fx.svc.get(name).Labels).toEqual({ [ANONYMOUS_LABEL]: '' });
    expect(inspectMounts(r.mounts)[0]).toEqual({
      Type: 'volume', Name: name, Source: vol(name), Destination: '/var/lib/db', Driver: 'local', Mode: '', RW: true, Propagation: '',
    });
  });

  it('gives a -v /path anonymous volume the "z" mode like dockerd', async () => {
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['/anon'] });
    expect(r.mounts[0]).toMatchObject({ Type: 'volume', Mode: 'z', Anonymous: true });
  });

  it('does not mark an anonymous volume used by name as owned by the container', async () => {
    const { volume } = await fx.svc.create({});
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: [`${volume.Name}:/x`] });
    expect(r.mounts[0]?.Anonymous).toBeUndefined();
    expect(r.anonymousVolumes).toEqual([]);
  });

  it('does not create an anonymous volume where a bind already mounts', async () => {
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: [`${host}:/data`], volumes: { '/data': {} } });
    expect(r.mounts.map((m) => m.Type)).toEqual(['bind']);
    expect(r.createdVolumes).toEqual([]);
  });

  it('refuses duplicate mount points (also against --tmpfs) and cleans up anonymous volumes made meanwhile', async () => {
    await expect(resolveContainerMounts(fx.svc, { containerId: CID, binds: ['a1:/d', `${host}:/d`] })).rejects.toMatchObject({
      statusCode: 400,
      message: 'Duplicate mount point: /d',
    });
    await expect(resolveContainerMounts(fx.svc, { containerId: CID, binds: ['a2:/t'], tmpfs: { '/t': '' } })).rejects.toThrow(
      'Duplicate mount point: /t',
    );
    await expect(
      resolveContainerMounts(fx.svc, { containerId: CID, binds: ['/anon'], mounts: [{ Type: 'tmpfs', Target: '/anon' }] }),
    ).rejects.toThrow('Duplicate mount point: /anon');
    expect(fx.svc.list().Volumes.map((v) => v.Name)).toEqual(['a1']);
  });

  it('--mount: refuses a missing bind source, accepts volume options, tmpfs size and mode', async () => {
    await expect(
      resolveContainerMounts(fx.svc, { containerId: CID, mounts: [{ Type: 'bind', Source: join(host, 'missing'), Target: '/x' }] }),
    ).rejects.toThrow(`invalid mount config for type "bind": bind source path does not exist: ${join(host, 'missing')}`);
    const r = await resolveContainerMounts(fx.svc, {
      containerId: CID,
      mounts: [
        { Type: 'volume', Source: 'mv', Target: '/mv', VolumeOptions: { NoCopy: true, Labels: { l: '1' } } },
        { Type: 'bind', Source: host, Target: '/b', ReadOnly: true, BindOptions: { Propagation: 'rslave' } },
        { Type: 'tmpfs', Target: '/run', TmpfsOptions: { SizeBytes: 1048576, Mode: 0o1777 } },
      ],
    });
    expect(fx.svc.get('mv').Labels).toEqual({ l: '1' });
    expect(inspectMounts(r.mounts)).toEqual([
      { Type: 'bind', Source: host, Destination: '/b', Mode: '', RW: false, Propagation: 'rslave' },
      { Type: 'volume', Name: 'mv', Source: vol('mv'), Destination: '/mv', Driver: 'local', Mode: 'z', RW: true, Propagation: '' },
      { Type: 'tmpfs', Source: '', Destination: '/run', Mode: '', RW: true, Propagation: '' },
    ]);
    expect(r.oci.find((o) => o.destination === '/run')).toEqual({
      destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['noexec', 'nosuid', 'nodev', 'rprivate', 'mode=1777', 'size=1m'],
    });
    expect(r.oci.find((o) => o.destination === '/b')?.options).toEqual(['rbind', RO, 'rslave']);
  });

  it('--volumes-from copies the other container’s mounts, ro when asked, Mode cleared', async () => {
    const first = await resolveContainerMounts(fx.svc, { containerId: 'a'.repeat(64), binds: ['shared:/shared', `${host}:/h`] });
    const lookup = (ref: string): { id: string; mounts: ContainerMount[] } | undefined =>
      ref === 'first' ? { id: 'a'.repeat(64), mounts: first.mounts } : undefined;
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, volumesFrom: ['first:ro'], lookupContainer: lookup });
    expect(inspectMounts(r.mounts)).toEqual([
      { Type: 'bind', Source: host, Destination: '/h', Mode: '', RW: false, Propagation: 'rprivate' },
      { Type: 'volume', Name: 'shared', Source: vol('shared'), Destination: '/shared', Driver: 'local', Mode: '', RW: false, Propagation: '' },
    ]);
    // A -v on the same destination overrides the inherited mount without error.
    const r2 = await resolveContainerMounts(fx.svc, { containerId: CID, volumesFrom: ['first'], binds: ['other:/shared'], lookupContainer: lookup });
    expect(r2.mounts.find((m) => m.Destination === '/shared')?.Name).toBe('other');
    await expect(resolveContainerMounts(fx.svc, { containerId: CID, volumesFrom: ['ghost'], lookupContainer: lookup })).rejects.toThrow(
      'No such container: ghost',
    );
  });

  it('copies the image content into a new empty volume, not with nocopy, not into a non-empty one', async () => {
    const rootfs = join(fx.dir, 'rootfs');
    mkdirSync(join(rootfs, 'app'), { recursive: true });
    writeFileSync(join(rootfs, 'app', 'seed.txt'), 'seed');
    const openRootfs = (): RootfsReader => {
      const root = ConfinedRoot.open(rootfs);
      return rootfsReader(root, rootfs, () => root.close());
    };
    await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['cu:/app'], openRootfs });
    expect(readFileSync(join(vol('cu'), 'seed.txt'), 'utf8')).toBe('seed');
    await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['nc:/app:nocopy'], openRootfs });
    expect(existsSync(join(vol('nc'), 'seed.txt'))).toBe(false);
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, volumes: { '/app': {} }, openRootfs });
    expect(readFileSync(join(vol(r.anonymousVolumes[0] as string), 'seed.txt'), 'utf8')).toBe('seed');
    writeFileSync(join(rootfs, 'app', 'later.txt'), 'x');
    await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['cu:/app'], openRootfs });
    expect(existsSync(join(vol('cu'), 'later.txt'))).toBe(false);
  });

  it('refuses a VOLUME over an existing file in the image', async () => {
    const rootfs = join(fx.dir, 'rootfs');
    mkdirSync(rootfs);
    writeFileSync(join(rootfs, 'file'), 'x');
    await expect(
      resolveContainerMounts(fx.svc, {
        containerId: CID,
        volumes: { '/file': {} },
        openRootfs: () => {
          const root = ConfinedRoot.open(rootfs);
          return rootfsReader(root, rootfs, () => root.close());
        },
      }),
    ).rejects.toThrow(`cannot mount volume over existing file, file exists ${join(rootfs, 'file')}`);
  });

  it('makes binds of the data root rslave and refuses private propagation there', async () => {
    const inside = join(fx.dataRoot, 'volumes');
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: [`${inside}:/v`, '/:/host:ro'] });
    expect(r.mounts.map((m) => m.Propagation)).toEqual(['rslave', 'rslave']);
    expect(r.oci.find((o) => o.destination === '/host')?.options).toEqual(['rbind', RO, 'rslave']);
    await expect(resolveContainerMounts(fx.svc, { containerId: CID, binds: [`${inside}:/v:rprivate`] })).rejects.toThrow(
      `invalid mount config: must use either propagation mode "rslave" or "rshared" when mount source is within the daemon root, daemon root: "${fx.dataRoot}", bind mount source: "${inside}", propagation: "rprivate"`,
    );
    const ok = await resolveContainerMounts(fx.svc, { containerId: CID, mounts: [{ Type: 'bind', Source: inside, Target: '/v', BindOptions: { Propagation: 'rshared' } }] });
    expect(ok.mounts[0]?.Propagation).toBe('rshared');
  });

  it('reserves the volumes for the container until released, so prune and rm cannot take them', async () => {
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['held:/h'], volumes: { '/anon': {} }, holdReservations: true });
    expect((await fx.svc.prune(Filters.parse('{"all":["true"]}'))).VolumesDeleted).toEqual([]);
    await expect(fx.svc.remove('held')).rejects.toThrow(`remove held: volume is in use - [${CID}]`);
    r.release();
    r.release();
    expect((await fx.svc.prune(Filters.parse('{"all":["true"]}'))).VolumesDeleted.sort()).toEqual(['held', ...r.anonymousVolumes].sort());
  });

  it('reserves only while resolving unless asked to hold', async () => {
    await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['brief:/b'] });
    await expect(fx.svc.remove('brief')).resolves.toBeUndefined();
  });

  it('refuses bad names coming through -v with the create error', async () => {
    await expect(resolveContainerMounts(fx.svc, { containerId: CID, binds: ['a/b:/x'] })).rejects.toThrow(
      'create a/b: "a/b" includes invalid characters for a local volume name',
    );
  });
});

describe('start/stop of mounts', () => {
  let fx: VolumeFixture;
  beforeEach(async () => {
    fx = await volumeFixture();
  });
  afterEach(() => fx.close());

  it('creates missing -v bind sources at start, refuses missing --mount ones, publishes mount/unmount', async () => {
    const src = join(fx.dir, 'made', 'by', 'start');
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: [`${src}:/m`, 'v1:/v'] });
    expect(existsSync(src)).toBe(false);
    const oci = await prepareContainerMounts(fx.svc, CID, r.mounts);
    expect(statSync(src).isDirectory()).toBe(true);
    expect(oci.map((o) => o.destination)).toEqual(['/m', '/v']);
    expect(fx.events.find((e) => e.Action === 'mount')).toMatchObject({
      Type: 'volume',
      Actor: { ID: 'v1', Attributes: { driver: 'local', container: CID, destination: '/v', 'read/write': 'true', propagation: '' } },
    });
    await releaseContainerMounts(fx.svc, CID, r.mounts);
    expect(fx.events.at(-1)).toMatchObject({ Action: 'unmount', Actor: { ID: 'v1', Attributes: { driver: 'local', container: CID } } });

    rmSync(src, { recursive: true });
    const m: ContainerMount = { Type: 'bind', Source: src, Destination: '/m', Mode: '', RW: true, Propagation: 'rprivate', Spec: { Type: 'bind' } };
    await expect(prepareContainerMounts(fx.svc, CID, [m])).rejects.toThrow('bind source path does not exist');
  });

  it('sorts OCI mounts so parents come first and --tmpfs entries join them', () => {
    const mk = (d: string): ContainerMount => ({ Type: 'bind', Source: '/s', Destination: d, Mode: '', RW: true, Propagation: 'rprivate', Spec: {} });
    const oci = ociMounts([mk('/a/b/c'), mk('/a'), mk('/z/y')], { '/a/b': 'size=1m' });
    expect(oci.map((o) => o.destination)).toEqual(['/a', '/a/b', '/z/y', '/a/b/c']);
    expect(sortMountsByDepth([{ destination: '/x/y' }, { destination: '/x' }]).map((m) => m.destination)).toEqual(['/x', '/x/y']);
  });

  it('mounts a tmpfs-option volume on the host once per volume, refcounted across containers', async () => {
    if (process.getuid?.() !== 0) return;
    await fx.svc.create({ name: 'tv', driverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' } });
    const data = join(fx.dataRoot, 'volumes', 'tv', '_data');
    const { isMountPoint } = await import('../../../src/volumes/local-driver.js');
    const r = await resolveContainerMounts(fx.svc, { containerId: CID, binds: ['tv:/t'] });
    await prepareContainerMounts(fx.svc, 'c1', r.mounts);
    await prepareContainerMounts(fx.svc, 'c2', r.mounts);
    try {
      expect(await isMountPoint(data)).toBe(true);
      await releaseContainerMounts(fx.svc, 'c1', r.mounts);
      expect(await isMountPoint(data)).toBe(true);
    } finally {
      await releaseContainerMounts(fx.svc, 'c2', r.mounts);
    }
    expect(await isMountPoint(data)).toBe(false);
  });
});

describe('recursive read-only binds', () => {
  it('needs mount_setattr (Linux 5.12)', () => {
    expect(recursiveReadOnlySupported('5.11.0')).toBe(false);
    expect(recursiveReadOnlySupported('5.12.3-foo')).toBe(true);
    expect(recursiveReadOnlySupported('6.1.0')).toBe(true);
  });
});
