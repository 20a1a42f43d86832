// ContainerService on its own: every collaborator faked (runtime, network, metadata table, images, cgroups), so
// the lifecycle, the exit bookkeeping and the intent methods are checked without a shim, a netns or a database.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContainerService, type ContainerServiceDeps } from '../../../src/containers/container-service.js';
import type { StoredContainer } from '../../../src/containers/types.js';
import { ConflictError } from '../../../src/errors.js';
import type { ContainerNetwork } from '../../../src/network/container-network.js';
import type { NetworkSettings, SandboxInfo } from '../../../src/network/types.js';
import type { CgroupSysInfo } from '../../../src/runtime/cgroups/index.js';
import { ContainerStartError, type ContainerRuntime, type ExitStatus } from '../../../src/runtime/executor-api.js';
import { waitFor } from '../../helpers/wait.js';

/** A runtime whose processes end when the test says so (or when signalled). */
class FakeRuntime implements ContainerRuntime {
  readonly calls: string[] = [];
  private readonly exits = new Map<string, (st: ExitStatus) => void>();
  private readonly exited = new Map<string, Promise<ExitStatus>>();
  private nextPid = 100;
  failStart: ContainerStartError | undefined;
  adoptAnswer: 'running' | ExitStatus = 'running';

  async create(id: string): Promise<{ pid: number; warnings: string[] }> {
    this.calls.push(`create ${id}`);
    this.exited.set(id, new Promise((resolve) => this.exits.set(id, resolve)));
    return { pid: this.nextPid, warnings: [] };
  }
  async start(id: string): Promise<{ pid: number }> {
    this.calls.push(`start ${id}`);
    if (this.failStart) throw this.failStart;
    return { pid: this.nextPid++ };
  }
  /** The container's process ends with `code`. */
  exit(id: string, code: number): void {
    this.exits.get(id)?.({ exitCode: code, signal: 0, oomKilled: false, finishedAt: new Date().toISOString(), pid: 0 });
  }
  async kill(id: string, signal: number): Promise<void> {
    this.calls.push(`kill ${id} ${signal}`);
    if (signal === 9 || signal === 15) this.exit(id, 128 + signal);
  }
  waitExit(id: string): Promise<ExitStatus> {
    const p = this.exited.get(id);
    if (!p) return Promise.reject(new Error(`no shim for ${id}`));
    return p;
  }
  async delete(id: string): Promise<void> {
    this.calls.push(`delete ${id}`);
  }
  async adopt(id: string): Promise<'created' | 'running' | ExitStatus> {
    this.calls.push(`adopt ${id}`);
    this.exited.set(id, new Promise((resolve) => this.exits.set(id, resolve)));
    return this.adoptAnswer;
  }
  attach(): never {
    throw new Error('not used');
  }
  async resize(): Promise<void> {}
  async reopenLog(): Promise<void> {}
}

class FakeNetwork implements ContainerNetwork {
  readonly sandboxes = new Set<string>();
  readonly names = new Map<string, string>();
  private readonly settingsOf = (id: string): NetworkSettings => ({ SandboxID: id, Networks: { bridge: { IPAddress: '172.17.0.2' } } }) as unknown as NetworkSettings;
  async createSandbox(id: string, req: { filesDir: string }): Promise<SandboxInfo> {
    this.sandboxes.add(id);
    return { netnsPath: `/run/netns/${id}`, hostsPath: join(req.filesDir, 'hosts'), resolvConfPath: join(req.filesDir, 'resolv.conf'), hostnamePath: join(req.filesDir, 'hostname'), settings: this.settingsOf(id) };
  }
  async releaseSandbox(id: string): Promise<void> {
    this.sandboxes.delete(id);
  }
  async settled(): Promise<void> {}
  async unmounted(): Promise<void> {}
  settings(id: string): NetworkSettings | undefined {
    return this.sandboxes.has(id) ? this.settingsOf(id) : undefined;
  }
  stoppedSettings(): NetworkSettings {
    return { SandboxID: '', Networks: { bridge: { IPAddress: '' } } } as unknown as NetworkSettings;
  }
  portList(): [] {
    return [];
  }
  setContainerName(id: string, name: string): void {
    this.names.set(id, name);
  }
  async removeLink(): Promise<void> {}
}

/** The containers table: JSON rows with a unique name, as ContainerRepo keeps them. */
class FakeRepo {
  readonly rows = new Map<string, string>();
  insert(r: StoredContainer): boolean {
    if ([...this.rows.values()].some((j) => (JSON.parse(j) as StoredContainer).name === r.name)) return false;
    this.rows.set(r.id, JSON.stringify(r));
    return true;
  }
  update(r: StoredContainer): boolean {
    if ([...this.rows.entries()].some(([id, j]) => id !== r.id && (JSON.parse(j) as StoredContainer).name === r.name)) return false;
    this.rows.set(r.id, JSON.stringify(r));
    return true;
  }
  delete(id: string): void {
    this.rows.delete(id);
  }
  all(): StoredContainer[] {
    return [...this.rows.values()].map((j) => JSON.parse(j) as StoredContainer);
  }
}

const SYSINFO = {
  memoryLimit: true, swapLimit: true, memoryReservation: true, oomKillDisable: true, memorySwappiness: true, kernelMemory: false,
  kernelMemoryTCP: false, cpuShares: true, cpuCfs: true, cpuRealtime: false, cpuset: true, cpus: '0-1', mems: '0', blkioWeight: true,
  blkioWeightDevice: true, blkioReadBpsDevice: true, blkioWriteBpsDevice: true, blkioReadIOpsDevice: true, blkioWriteIOpsDevice: true,
  pidsLimit: true, devices: true, freezer: true,
} satisfies CgroupSysInfo;

let dataRoot: string;
let runtime: FakeRuntime;
let network: FakeNetwork;
let repo: FakeRepo;
let events: { type: string; action: string; id: string; attrs: Record<string, string> }[];
let frozen: string[];
/** Called after each event is recorded (a test looks at the service right after an event). */
let onEvent: ((action: string, id: string) => void) | undefined;

function service(): ContainerService {
  const deps: ContainerServiceDeps = {
    dataRoot,
    repo,
    images: {
      resolve: () => ({ id: 'sha256:' + 'i'.repeat(64), chainId: null, config: { os: 'linux', architecture: 'amd64', config: { Cmd: ['sh'] } } }) as never,
      tryResolve: () => undefined,
    },
    layers: { driver: 'overlay2', hold: () => undefined, release: () => undefined, lowerDirs: () => [] },
    volumes: { driver: { root: join(dataRoot, 'volumes') } } as never,
    network,
    executor: runtime,
    cgroups: {
      version: '1',
      sysInfo: async () => SYSINFO,
      open: (path: string) => ({ oomKillCount: async () => 0, freeze: async () => void frozen.push(path), thaw: async () => undefined }) as never,
    },
    views: { imageRootfs: () => undefined as never },
    events: {
      publish: (type: string, action: string, id: string, attrs: Record<string, string> = {}) => {
        events.push({ type, action, id, attrs });
        onEvent?.(action, id);
      },
    } as never,
    log: pino({ level: 'silent' }),
    logConfig: { type: 'json-file', opts: {} },
    initPath: '/usr/libexec/berth-init',
  };
  return new ContainerService(deps);
}

const actions = (id: string): string[] => events.filter((e) => e.id === id).map((e) => e.action);
const state = (svc: ContainerService, id: string): Record<string, unknown> => svc.inspect(id).State as Record<string, unknown>;

beforeEach(() => {
  dataRoot = mkdtempSync(join(tmpdir(), 'berth-csvc-'));
  runtime = new FakeRuntime();
  network = new FakeNetwork();
  repo = new FakeRepo();
  events = [];
  frozen = [];
  onEvent = undefined;
});

afterEach(() => {
  rmSync(dataRoot, { recursive: true, force: true });
});

describe('ContainerService lifecycle', () => {
  it('creates, starts and records the exit of a run: shim and network released, waiters woken, die published', async () => {
    const svc = service();
    const { Id } = await svc.create({ name: 'web', body: { Image: 'busybox' } });
    expect(state(svc, Id)).toMatchObject({ Status: 'created', Running: false, Pid: 0 });
    expect(await svc.start('web')).toBe('started');
    expect(state(svc, Id)).toMatchObject({ Status: 'running', Running: true, Paused: false, Pid: 100, ExitCode: 0 });
    expect(network.sandboxes.has(Id)).toBe(true);
    const waited = svc.wait(Id, 'not-running').result;
    runtime.exit(Id, 3);
    expect(await waited).toEqual({ StatusCode: 3, Error: null });
    await waitFor(() => svc.get(Id).state.Status === 'exited');
    expect(state(svc, Id)).toMatchObject({ Status: 'exited', Running: false, ExitCode: 3, Pid: 0 });
    expect(runtime.calls).toContain(`delete ${Id}`);
    expect(network.sandboxes.has(Id)).toBe(false);
    expect(actions(Id)).toEqual(['create', 'start', 'die']);
    expect(events.find((e) => e.action === 'die')?.attrs.exitCode).toBe('3');
    expect(await svc.start(Id)).toBe('started');
    expect(await svc.start(Id)).toBe('already');
  });

  it('stops with the stop signal and marks the container stopped by hand', async () => {
    const svc = service();
    const { Id } = await svc.create({ body: { Image: 'busybox', StopSignal: 'SIGTERM' } });
    await svc.start(Id);
    expect(await svc.stop(Id, { timeout: 5 })).toBe('stopped');
    expect(runtime.calls).toContain(`kill ${Id} 15`);
    await waitFor(() => svc.get(Id).state.Status === 'exited');
    expect(svc.get(Id).state.ExitCode).toBe(143);
    expect(svc.get(Id).manuallyStopped).toBe(true);
    expect(await svc.stop(Id)).toBe('already');
    expect(actions(Id)).toEqual(['create', 'start', 'kill', 'die', 'stop']);
  });

  it('records a failed start as an exit of a container that never ran, undoing the launch', async () => {
    const svc = service();
    const { Id } = await svc.create({ body: { Image: 'busybox' } });
    runtime.failStart = new ContainerStartError('exec: "nope": executable file not found in $PATH', 127);
    await expect(svc.start(Id)).rejects.toThrow(/executable file not found/);
    expect(state(svc, Id)).toMatchObject({ Status: 'created', Running: false, ExitCode: 127, Error: 'exec: "nope": executable file not found in $PATH' });
    expect(runtime.calls).toEqual([`create ${Id}`, `start ${Id}`, `delete ${Id}`]);
    expect(network.sandboxes.has(Id)).toBe(false);
    expect(actions(Id)).toEqual(['create', 'die']);
  });

  it('applies the restart policy: restarting (Running in inspect, as dockerd), then running again', async () => {
    const svc = service();
    const { Id } = await svc.create({ body: { Image: 'busybox', HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 1 } } } });
    await svc.start(Id);
    // right after die (the exit recorded, the restart timer not yet due): the container is restarting
    const afterDie = new Promise<{ inspect: Record<string, unknown>; running: boolean }>((resolve) => {
      onEvent = (action) => {
        if (action !== 'die') return;
        onEvent = undefined;
        setImmediate(() => resolve({ inspect: state(svc, Id), running: svc.get(Id).state.Running }));
      };
    });
    runtime.exit(Id, 1);
    const seen = await afterDie;
    expect(seen.inspect).toMatchObject({ Status: 'restarting', Running: true, Restarting: true, ExitCode: 1, Pid: 0 });
    expect(seen.running).toBe(false);
    await waitFor(() => svc.get(Id).state.Status === 'running');
    expect(svc.get(Id).restartCount).toBe(1);
    expect(actions(Id)).toEqual(['create', 'start', 'die', 'start', 'restart']);
    await svc.remove(Id, { force: true });
  });

  it('removes a running container with force: killed, run finished, record and row gone', async () => {
    const svc = service();
    const { Id } = await svc.create({ body: { Image: 'busybox' } });
    await svc.start(Id);
    expect(() => svc.remove(Id, {})).toThrow(/You cannot remove a running container/);
    await svc.remove(Id, { force: true });
    expect(svc.find(Id)).toBeUndefined();
    expect(repo.rows.has(Id)).toBe(false);
    expect(runtime.calls).toContain(`kill ${Id} 9`);
    expect(network.sandboxes.has(Id)).toBe(false);
    expect(actions(Id)).toEqual(['create', 'start', 'die', 'destroy']);
  });

  it('pauses and unpauses through the cgroup, with the flags following Status', async () => {
    const svc = service();
    const { Id } = await svc.create({ body: { Image: 'busybox' } });
    await svc.start(Id);
    await svc.pause(Id);
    expect(frozen).toEqual([`/berth/${Id}`]);
    expect(svc.get(Id).state).toMatchObject({ Status: 'paused', Running: true, Paused: true });
    await expect(svc.pause(Id)).rejects.toThrow(ConflictError);
    await svc.unpause(Id);
    expect(svc.get(Id).state).toMatchObject({ Status: 'running', Running: true, Paused: false });
    await svc.remove(Id, { force: true });
  });
});

describe('ContainerService intent methods and records', () => {
  it('renames, refusing a name another container holds', async () => {
    const svc = service();
    const a = await svc.create({ name: 'one', body: { Image: 'busybox' } });
    await svc.create({ name: 'two', body: { Image: 'busybox' } });
    expect(await svc.rename('one', 'three')).toEqual({ oldName: 'one' });
    expect(svc.get('three').id).toBe(a.Id);
    expect(svc.find('one')).toBeUndefined();
    await expect(svc.rename('three', 'two')).rejects.toThrow(ConflictError);
    expect(svc.get(a.Id).name).toBe('three');
    expect((JSON.parse(repo.rows.get(a.Id) ?? '{}') as StoredContainer).name).toBe('three');
    await expect(svc.create({ name: 'two', body: { Image: 'busybox' } })).rejects.toThrow(/is already in use by container/);
  });

  it('stores the state without its derived flags and derives them again when loaded', async () => {
    const svc = service();
    const { Id } = await svc.create({ body: { Image: 'busybox' } });
    await svc.start(Id);
    const row = JSON.parse(repo.rows.get(Id) ?? '{}') as { state: Record<string, unknown> };
    expect(row.state.Status).toBe('running');
    expect(Object.keys(row.state)).not.toContain('Running');
    expect(Object.keys(row.state)).not.toContain('Paused');
    const again = service();
    expect(again.get(Id).state).toMatchObject({ Status: 'running', Running: true, Paused: false, Restarting: false, Dead: false });
  });

  it('ignores the endpoint settings that rows of older versions carry (the network service owns them)', async () => {
    const svc = service();
    const { Id } = await svc.create({ body: { Image: 'busybox' } });
    const row = JSON.parse(repo.rows.get(Id) ?? '{}') as Record<string, unknown>;
    expect(Object.keys(row)).not.toContain('networkSettings');
    repo.rows.set(Id, JSON.stringify({ ...row, networkSettings: { SandboxKey: '/run/netns/stale' } }));
    const again = service();
    expect(Object.keys(again.get(Id))).not.toContain('networkSettings');
    expect(again.networkSettings(again.get(Id)).SandboxKey).not.toBe('/run/netns/stale');
  });

  it('records at daemon start the exit of a run that ended while berthd was away', async () => {
    const first = service();
    const { Id } = await first.create({ body: { Image: 'busybox' } });
    await first.start(Id);
    runtime.adoptAnswer = { exitCode: 7, signal: 0, oomKilled: false, finishedAt: '2026-01-01T00:00:00Z', pid: 0 };
    const svc = service();
    expect(await svc.restore()).toEqual([]);
    expect(state(svc, Id)).toMatchObject({ Status: 'exited', Running: false, ExitCode: 7, FinishedAt: '2026-01-01T00:00:00Z' });
    expect(actions(Id)).toEqual(['create', 'start', 'die']);
  });

  it('re-adopts a live run at daemon start and records its later exit', async () => {
    const first = service();
    const { Id } = await first.create({ body: { Image: 'busybox' } });
    await first.start(Id);
    const svc = service();
    expect(await svc.restore()).toEqual([Id]);
    runtime.exit(Id, 0);
    await waitFor(() => svc.get(Id).state.Status === 'exited');
    expect(svc.get(Id).state.ExitCode).toBe(0);
  });

  it('sets and clears the health of a running container only', async () => {
    const svc = service();
    const { Id } = await svc.create({ body: { Image: 'busybox' } });
    expect(svc.setHealth(Id, { Status: 'starting', FailingStreak: 0, Log: [] }, { whenRunning: true })).toBe(false);
    await svc.start(Id);
    expect(svc.setHealth(Id, { Status: 'healthy', FailingStreak: 0, Log: [] }, { whenRunning: true })).toBe(true);
    expect(state(svc, Id).Health).toEqual({ Status: 'healthy', FailingStreak: 0, Log: [] });
    svc.setHealth(Id, undefined);
    expect(state(svc, Id).Health).toBeUndefined();
    await svc.remove(Id, { force: true });
  });
});
