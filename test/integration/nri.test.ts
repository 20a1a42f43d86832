import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from '../../src/nri/mux.js';
import { loadNriCodecs, PLUGIN_SERVICE, RUNTIME_SERVICE, type NriMsg } from '../../src/nri/proto.js';
import { TtrpcClient, TtrpcServer, type TtrpcHandler } from '../../src/nri/ttrpc.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { Crictl, criToolsBin, removeTestCniNetwork, writeTestConflist, type TestCniNetwork } from '../helpers/cri.js';
import { waitFor } from '../helpers/wait.js';

interface Seen {
  event: string;
  pod: string;
  container: string;
  name: string;
}

/**
 * A tiny NRI plugin: connects to the runtime's socket, registers, records every event it gets, and answers
 * CreateContainer with an adjustment (an env variable set, one removed, an annotation). `hang` makes it never
 * answer CreateContainer (a stuck plugin).
 */
async function startPlugin(socket: string, name: string, idx: string, opts: { hang?: boolean; events?: number; validate?: (req: NriMsg) => NriMsg } = {}): Promise<{ seen: Seen[]; synced: Promise<NriMsg>; closed: Promise<void>; close(): void; update(updates: NriMsg[]): Promise<NriMsg[]> }> {
  const codecs = await loadNriCodecs();
  const seen: Seen[] = [];
  const sock = createConnection(socket);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const mux = new Mux(sock);
  const closed = new Promise<void>((resolve) => mux.once('close', () => resolve()));
  let onSync: (m: NriMsg) => void = () => undefined;
  const synced = new Promise<NriMsg>((resolve) => (onSync = resolve));
  const handler = (method: string, answer: (req: NriMsg) => NriMsg | Promise<NriMsg>): [string, TtrpcHandler] => [
    `${PLUGIN_SERVICE}/${method}`,
    async (payload) => {
      const c = codecs.plugin(method);
      const req = c.decodeRequest(payload);
      const pod = (req.pod ?? {}) as NriMsg;
      const ctr = (req.container ?? {}) as NriMsg;
      if (!['Configure', 'Synchronize', 'ValidateContainerAdjustment'].includes(method)) seen.push({ event: method, pod: String(pod.id ?? ''), container: String(ctr.id ?? ''), name: String(ctr.name ?? '') });
      return c.encodeResponse(await answer(req));
    },
  ];
  const events = ['RunPodSandbox', 'StopPodSandbox', 'RemovePodSandbox', 'PostCreateContainer', 'StartContainer', 'PostStartContainer', 'StopContainer', 'RemoveContainer'];
  new TtrpcServer(
    mux.open(PLUGIN_SERVICE_CONN),
    new Map([
      handler('Configure', () => ({ events: opts.events ?? 0 })), // 0: every event but validation
      handler('Synchronize', (req) => {
        onSync(req);
        return {};
      }),
      handler('CreateContainer', async () => {
        if (opts.hang) await new Promise(() => undefined);
        return { adjust: { env: [{ key: 'NRI_TEST', value: `from-${name}` }, { key: '-REMOVE_ME', value: '' }], annotations: { 'nri.berth.test/adjusted': 'yes' } } };
      }),
      handler('ValidateContainerAdjustment', (req) => opts.validate?.(req) ?? {}),
      ...events.map((e) => handler(e, () => ({}))),
    ]),
  );
  const client = new TtrpcClient(mux.open(RUNTIME_SERVICE_CONN));
  const reg = codecs.runtime('RegisterPlugin');
  await client.call(RUNTIME_SERVICE, 'RegisterPlugin', reg.encodeRequest({ plugin_name: name, plugin_idx: idx, NRI_version: 'v0.12.2' }), 5000);
  const upd = codecs.runtime('UpdateContainers');
  const update = async (updates: NriMsg[]): Promise<NriMsg[]> => {
    const rpl = upd.decodeResponse(await client.call(RUNTIME_SERVICE, 'UpdateContainers', upd.encodeRequest({ update: updates }), 30_000));
    return rpl.failed as NriMsg[];
  };
  return { seen, synced, closed, close: () => mux.close(), update };
}

let d: TestDaemon;
let net: TestCniNetwork;
let netDir: string;
let crictl: Crictl;
let nriSocket: string;

beforeAll(async () => {
  netDir = mkdtempSync(join(tmpdir(), 'bt-cni-'));
  net = await writeTestConflist(netDir);
  d = await startDaemon({ config: { 'cni-conf-dir': net.confDir, 'nri-plugin-request-timeout': '3s' } });
  nriSocket = join(d.execRoot, 'nri.sock');
  crictl = new Crictl(criToolsBin(), join(d.execRoot, 'cri.sock'));
  const r = await d.docker(['load', '-i', await busyboxImageTar()], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`docker load: ${r.stderr}`);
}, 10 * 60_000);

afterAll(async () => {
  try {
    if (crictl) for (const p of (await crictl.run(['pods', '-q'])).stdout.split('\n').filter((s) => s !== '')) await crictl.run(['rmp', '-f', p]);
    await d?.stop();
  } finally {
    if (net) await removeTestCniNetwork(net);
    if (netDir) rmSync(netDir, { recursive: true, force: true });
  }
});

/** The pod and container configs crictl reads. */
function configs(name: string, env: { key: string; value: string }[]): { pod: string; ctr: string } {
  const pod = join(d.dir, `${name}-pod.json`);
  const ctr = join(d.dir, `${name}-ctr.json`);
  writeFileSync(pod, JSON.stringify({ metadata: { name, namespace: 'nri-test', uid: `uid-${name}`, attempt: 0 }, log_directory: join(d.dir, 'pod-logs', name), linux: {} }));
  writeFileSync(ctr, JSON.stringify({ metadata: { name: `${name}-ctr` }, image: { image: 'busybox:latest' }, command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'], envs: env, log_path: 'c.log', linux: {} }));
  return { pod, ctr };
}

describe('NRI', () => {
  it('serves the socket 0600 and a plugin sees the pod and container lifecycle in order, its adjustment applied', async () => {
    const { statSync } = await import('node:fs');
    expect(statSync(nriSocket).mode & 0o777).toBe(0o600);
    const plugin = await startPlugin(nriSocket, 'berth-test', '50');
    await plugin.synced;
    try {
      const { pod, ctr } = configs('nri-a', [{ key: 'REMOVE_ME', value: 'x' }, { key: 'KEEP', value: 'k' }]);
      const podId = (await crictl.ok(['runp', pod])).trim();
      const ctrId = (await crictl.ok(['create', podId, ctr, pod])).trim();
      await crictl.ok(['start', ctrId]);
      const env = await crictl.ok(['exec', '-s', ctrId, 'env']);
      expect(env).toContain('NRI_TEST=from-berth-test');
      expect(env).toContain('KEEP=k');
      expect(env).not.toContain('REMOVE_ME');
      const annotations = JSON.parse((await d.docker(['inspect', '-f', '{{json .HostConfig.Annotations}}', ctrId])).stdout) as Record<string, string>;
      expect(annotations['nri.berth.test/adjusted']).toBe('yes');
      await crictl.ok(['stop', ctrId]);
      await crictl.ok(['rm', ctrId]);
      await crictl.ok(['stopp', podId]);
      await crictl.ok(['rmp', podId]);
      const mine = (): string[] => plugin.seen.filter((s) => s.pod === podId).map((s) => (s.container === '' ? s.event : `${s.event} ${s.name}`));
      await waitFor(() => mine().includes('RemovePodSandbox'), 30_000);
      expect(mine()).toEqual([
        'RunPodSandbox',
        'CreateContainer nri-a-ctr',
        'PostCreateContainer nri-a-ctr',
        'StartContainer nri-a-ctr',
        'PostStartContainer nri-a-ctr',
        'StopContainer nri-a-ctr',
        'RemoveContainer nri-a-ctr',
        'StopPodSandbox',
        'RemovePodSandbox',
      ]);
      // the container's ID is the one the CRI returned, from CreateContainer on
      expect(plugin.seen.filter((s) => s.container !== '').every((s) => s.container === ctrId)).toBe(true);

      // Docker API containers do not go through NRI (as containerd applies NRI to the CRI only)
      const before = plugin.seen.length;
      const r = await d.docker(['run', '--rm', 'busybox:latest', 'true']);
      expect(r.code).toBe(0);
      expect(plugin.seen.length).toBe(before);
    } finally {
      plugin.close();
    }
  }, 180_000);

  it('a late plugin is synchronized with existing pods and containers', async () => {
    const { pod, ctr } = configs('nri-b', []);
    const podId = (await crictl.ok(['runp', pod])).trim();
    const ctrId = (await crictl.ok(['create', podId, ctr, pod])).trim();
    const plugin = await startPlugin(nriSocket, 'late', '60');
    try {
      const sync = await plugin.synced;
      expect((sync.pods as NriMsg[]).map((p) => p.id)).toContain(podId);
      const c = (sync.containers as NriMsg[]).find((x) => x.id === ctrId);
      expect(c).toMatchObject({ pod_sandbox_id: podId, name: 'nri-b-ctr', state: 'CONTAINER_CREATED' });
    } finally {
      plugin.close();
      await crictl.ok(['rmp', '-f', podId]);
    }
  }, 120_000);

  it("a plugin's unsolicited UpdateContainers changes a running container's resources; an unknown one is reported failed", async () => {
    const plugin = await startPlugin(nriSocket, 'updater', '65', { events: 1 << (4 - 1) }); // CreateContainer only
    await plugin.synced;
    const { pod, ctr } = configs('nri-e', []);
    const podId = (await crictl.ok(['runp', pod])).trim();
    try {
      const ctrId = (await crictl.ok(['create', podId, ctr, pod])).trim();
      await crictl.ok(['start', ctrId]);
      const failed = await plugin.update([
        { container_id: ctrId, linux: { resources: { cpu: { shares: { value: '512' } }, memory: { limit: { value: String(64 << 20) } } } } },
        { container_id: 'f'.repeat(64), linux: { resources: { cpu: { shares: { value: '256' } } } } },
      ]);
      expect(failed.map((u) => u.container_id)).toEqual(['f'.repeat(64)]);
      const hc = JSON.parse((await d.docker(['inspect', '-f', '{{json .HostConfig}}', ctrId])).stdout) as { CpuShares: number; Memory: number; MemorySwap: number };
      expect(hc.CpuShares).toBe(512);
      expect(hc.Memory).toBe(64 << 20);
      expect(hc.MemorySwap).toBe(64 << 20); // no swap: a memory limit alone
    } finally {
      plugin.close();
      await crictl.ok(['rmp', '-f', podId]);
    }
  }, 120_000);

  it('a validator sees the merged adjustment and its owners, and its rejection fails the create', async () => {
    const adjuster = await startPlugin(nriSocket, 'adjuster', '55');
    await adjuster.synced;
    let seen: NriMsg | undefined;
    const validator = await startPlugin(nriSocket, 'validator', '56', {
      events: 1 << (14 - 1), // VALIDATE_CONTAINER_ADJUSTMENT only
      validate: (req) => {
        const first = seen === undefined;
        seen ??= req;
        return first ? { reject: true, reason: 'no NRI_TEST here' } : {};
      },
    });
    await validator.synced;
    const { pod, ctr } = configs('nri-d', []);
    const podId = (await crictl.ok(['runp', pod])).trim();
    try {
      const refused = await crictl.run(['create', podId, ctr, pod]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/validator \\?"56-validator\\?" rejected the container adjustment: no NRI_TEST here/);
      const req = seen as NriMsg;
      const ctrId = String((req.container as NriMsg).id);
      expect((req.adjust as NriMsg).env).toEqual([{ key: 'NRI_TEST', value: 'from-adjuster' }, { key: '-REMOVE_ME', value: '' }]);
      const owners = ((req.owners as NriMsg).owners as Record<string, NriMsg>)[ctrId] as { compound: Record<string, { owners: Record<string, string> }> };
      expect(owners.compound['6']?.owners).toEqual({ NRI_TEST: '55-adjuster', REMOVE_ME: '55-adjuster' }); // Field Env = 6
      expect((req.plugins as NriMsg[]).map((p) => `${String(p.index)}-${String(p.name)}`)).toEqual(expect.arrayContaining(['55-adjuster', '56-validator']));
      // nothing was created; the next create passes the validator
      expect((await crictl.ok(['ps', '-a', '-q', '-p', podId])).trim()).toBe('');
      const created = (await crictl.ok(['create', podId, ctr, pod])).trim();
      expect(created).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      adjuster.close();
      validator.close();
      await crictl.ok(['rmp', '-f', podId]);
    }
  }, 120_000);

  it('a plugin that does not answer in time is dropped and the container is created without it', async () => {
    const stuck = await startPlugin(nriSocket, 'stuck', '70', { hang: true });
    await stuck.synced;
    const { pod, ctr } = configs('nri-c', []);
    const podId = (await crictl.ok(['runp', pod])).trim();
    try {
      const ctrId = (await crictl.ok(['create', podId, ctr, pod])).trim();
      expect(ctrId).toMatch(/^[0-9a-f]{64}$/);
      await stuck.closed; // the runtime closed its connection
      const env = JSON.parse((await d.docker(['inspect', '-f', '{{json .Config.Env}}', ctrId])).stdout) as string[];
      expect(env.some((e) => e.startsWith('NRI_TEST='))).toBe(false);
    } finally {
      stuck.close();
      await crictl.ok(['rmp', '-f', podId]);
    }
  }, 120_000);
});

const DIST_NRI = fileURLToPath(new URL('../../dist/nri/', import.meta.url));

/** A pre-installed plugin: an executable the daemon launches with its socket on fd 3 (node, the built dist/nri). */
function launchedPluginSource(): string {
  return `#!${process.execPath}
import { Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from '${DIST_NRI}mux.js';
import { loadNriCodecs, PLUGIN_SERVICE, RUNTIME_SERVICE } from '${DIST_NRI}proto.js';
import { TtrpcClient, TtrpcServer } from '${DIST_NRI}ttrpc.js';
const codecs = await loadNriCodecs();
const mux = new Mux(new Socket({ fd: Number(process.env.NRI_PLUGIN_SOCKET), readable: true, writable: true }));
mux.on('close', () => process.exit(0));
let config = {};
const h = (method, answer) => [PLUGIN_SERVICE + '/' + method, async (payload) => {
  const c = codecs.plugin(method);
  return c.encodeResponse(await answer(c.decodeRequest(payload)));
}];
new TtrpcServer(mux.open(PLUGIN_SERVICE_CONN), new Map([
  h('Configure', (req) => { config = JSON.parse(req.config); return { events: 1 << 3 }; }),
  h('Synchronize', () => {
    writeFileSync(config.ready, JSON.stringify({ pid: process.pid, env: [process.env.NRI_PLUGIN_IDX, process.env.NRI_PLUGIN_NAME, process.env.NRI_PLUGIN_SOCKET, process.env.PATH ?? ''] }));
    return {};
  }),
  h('CreateContainer', () => ({ adjust: { env: [{ key: 'LAUNCHED', value: config.value }] } })),
]));
const client = new TtrpcClient(mux.open(RUNTIME_SERVICE_CONN));
const reg = codecs.runtime('RegisterPlugin');
await client.call(RUNTIME_SERVICE, 'RegisterPlugin', reg.encodeRequest({ plugin_name: 'other-name', plugin_idx: '99' }), 5000);
`;
}

describe('NRI pre-installed plugins', () => {
  it('are launched from the plugin directory with their drop-in configuration, adjust containers, and are killed with the daemon', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bt-nri-'));
    let d2: TestDaemon | undefined;
    try {
      const plugins = join(dir, 'plugins');
      const conf = join(dir, 'conf.d');
      mkdirSync(plugins);
      mkdirSync(conf);
      const exe = join(plugins, '10-launched');
      writeFileSync(exe, launchedPluginSource());
      chmodSync(exe, 0o755);
      writeFileSync(join(plugins, 'README'), 'not a plugin: not executable'); // ignored
      const ready = join(dir, 'ready.json');
      writeFileSync(join(conf, 'launched.conf'), JSON.stringify({ ready, value: 'from-conf' }));
      d2 = await startDaemon({ config: { 'cni-conf-dir': join(dir, 'cni'), 'nri-plugin-path': plugins, 'nri-plugin-config-path': conf } });
      await waitFor(() => existsSync(ready), 30_000);
      const info = JSON.parse(readFileSync(ready, 'utf8')) as { pid: number; env: string[] };
      expect(info.env).toEqual(['10', 'launched', '3', '']); // only NRI's variables, as containerd

      const r = await d2.docker(['load', '-i', await busyboxImageTar()], { timeoutMs: 120_000 });
      expect(r.code).toBe(0);
      const crictl2 = new Crictl(criToolsBin(), join(d2.execRoot, 'cri.sock'));
      const pod = join(dir, 'pod.json');
      const ctr = join(dir, 'ctr.json');
      // a host-network pod (NamespaceMode NODE = 2): no CNI needed
      writeFileSync(pod, JSON.stringify({ metadata: { name: 'nri-launched', namespace: 'nri-test', uid: 'uid-nri-launched', attempt: 0 }, linux: { security_context: { namespace_options: { network: 2 } } } }));
      writeFileSync(ctr, JSON.stringify({ metadata: { name: 'c' }, image: { image: 'busybox:latest' }, command: ['sleep', '3600'], linux: {} }));
      const podId = (await crictl2.ok(['runp', pod])).trim();
      const ctrId = (await crictl2.ok(['create', podId, ctr, pod])).trim();
      const env = JSON.parse((await d2.docker(['inspect', '-f', '{{json .Config.Env}}', ctrId])).stdout) as string[];
      expect(env).toContain('LAUNCHED=from-conf');
      await crictl2.ok(['rmp', '-f', podId]);

      await d2.stop();
      d2 = undefined;
      const gone = (): boolean => {
        try {
          process.kill(info.pid, 0);
          return false;
        } catch {
          return true;
        }
      };
      await waitFor(gone, 30_000);
    } finally {
      await d2?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
