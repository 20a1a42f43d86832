import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { freePort } from '../helpers/registry.js';
import { Crictl, criToolsBin, leakReport, removeAllPods, removeTestCniNetwork, writeTestConflist, type TestCniNetwork } from '../helpers/cri.js';
import { waitFor, waitForValue } from '../helpers/wait.js';

// The stretch goal: a real kubelet (k8s.io/kubernetes v1.34, built through the Go module proxy by
// scripts/build-kubelet.sh, about 15 minutes on 2 cores) in standalone mode, driving Berth through its CRI socket
// with static pod manifests. The build is not part of .ci/run: this file runs where the kubelet is in the tools
// cache and BERTH_KUBELET_TEST=1 asks for it: at its start the kubelet sets host-wide kernel tunables
// (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory...; protectKernelDefaults would make it refuse to start
// instead), which the test puts back afterwards, but which other tests on a shared machine see meanwhile.

const KUBELET = join(process.env.BERTH_TOOLS_CACHE ?? '/var/cache/berth-tools', 'kubelet-v1.34.4', 'bin', 'kubelet');
const IMAGE = 'berth.test/busybox:1';

/** The kernel tunables the kubelet sets at its start (container_manager_linux.go setupKernelTunables). */
const TUNABLES = ['kernel/panic', 'kernel/panic_on_oops', 'vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes'];
const tunablesBefore = new Map<string, string>();

/** What the kubelet makes outside its root dir, whatever its configuration: removed after the test if it was not there. */
const HOST_LEFTOVERS = ['/var/lib/kubelet/device-plugins/kubelet.sock', '/var/lib/kubelet/device-plugins', '/var/lib/kubelet'];

let d: TestDaemon;
let net: TestCniNetwork;
let dir: string;
let crictl: Crictl;
let kubelet: ChildProcess | undefined;
let kubeletLog = '';
let ports: { api: number; healthz: number; host: number };
const preexisting = new Set<string>();

interface KubeletPod {
  metadata: { name: string };
  status: { phase?: string; containerStatuses?: { name: string; ready: boolean; restartCount: number }[] };
}

/** The kubelet's own view of its pods (its read API, anonymous and AlwaysAllow on 127.0.0.1). */
async function kubeletPods(): Promise<KubeletPod[]> {
  const r = await request(`https://127.0.0.1:${ports.api}/pods`, { headersTimeout: 5000, bodyTimeout: 5000, dispatcher: insecure });
  return ((await r.body.json()) as { items: KubeletPod[] | null }).items ?? [];
}

// the kubelet serves its API with a self-signed certificate it makes in its cert dir
const insecure = new Agent({ connect: { rejectUnauthorized: false } });

function manifest(name: string, body: string): void {
  const tmp = join(dir, `.${name}.yaml`);
  writeFileSync(tmp, body);
  renameSync(tmp, join(dir, 'manifests', `${name}.yaml`)); // the kubelet never sees half a file
}

describe.skipIf(!existsSync(KUBELET) || process.env.BERTH_KUBELET_TEST !== '1')('a real kubelet in standalone mode on Berth (scripts/build-kubelet.sh)', () => {
  beforeAll(async () => {
    for (const p of HOST_LEFTOVERS) if (existsSync(p)) preexisting.add(p);
    for (const t of TUNABLES) tunablesBefore.set(t, readFileSync(`/proc/sys/${t}`, 'utf8').trim());
    dir = mkdtempSync(join(tmpdir(), 'bt-kubelet-'));
    mkdirSync(join(dir, 'manifests'));
    net = await writeTestConflist(dir);
    d = await startDaemon({ config: { 'cni-conf-dir': net.confDir } });
    crictl = new Crictl(criToolsBin(), join(d.execRoot, 'cri.sock'));
    for (const args of [['load', '-i', await busyboxImageTar()], ['tag', 'busybox:latest', IMAGE]]) {
      const r = await d.docker(args, { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
    }
    ports = { api: await freePort(), healthz: await freePort(), host: await freePort() };
    const sock = `unix://${join(d.execRoot, 'cri.sock')}`;
    const config = join(dir, 'kubelet.yaml');
    writeFileSync(
      config,
      JSON.stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: 'AlwaysAllow' },
        address: '127.0.0.1',
        port: ports.api,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: ports.healthz,
        cgroupDriver: 'cgroupfs',
        // no QoS cgroup tree of its own on a shared host; the pods' cgroups are Berth's
        cgroupsPerQOS: false,
        enforceNodeAllocatable: [],
        containerRuntimeEndpoint: sock,
        imageServiceEndpoint: sock,
        staticPodPath: join(dir, 'manifests'),
        fileCheckFrequency: '2s',
        syncFrequency: '5s',
        podLogsDir: join(dir, 'pod-logs'),
        failSwapOn: false,
        failCgroupV1: false,
        // no KUBE-FIREWALL/canary chains in the host's iptables
        makeIPTablesUtilChains: false,
        resolvConf: '/etc/resolv.conf',
        evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        localStorageCapacityIsolation: false,
      }),
    );
    kubelet = spawn(KUBELET, [`--config=${config}`, `--root-dir=${join(dir, 'root')}`, `--cert-dir=${join(dir, 'pki')}`, '--hostname-override=berth-node', '-v=2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (b: Buffer): void => {
      kubeletLog = (kubeletLog + b.toString()).slice(-200_000);
    };
    kubelet.stdout?.on('data', keep);
    kubelet.stderr?.on('data', keep);
    await waitFor(async () => (await request(`http://127.0.0.1:${ports.healthz}/healthz`).then((r) => r.body.text()).catch(() => '')) === 'ok', 60_000, 250);
  }, 10 * 60_000);

  afterAll(async () => {
    // the host's tunables, files and the test's network go back whatever fails before
    let log = '';
    try {
      if (kubelet && kubelet.exitCode === null) {
        const exited = new Promise((resolve) => kubelet?.once('exit', resolve));
        kubelet.kill('SIGTERM');
        await exited;
      }
      if (crictl) {
        const failed = await removeAllPods(crictl);
        if (failed !== '') process.stderr.write(`kubelet.test.ts: ${failed}`);
      }
      log = d?.logs() ?? '';
      await d?.stop();
    } finally {
      for (const [t, v] of tunablesBefore) if (readFileSync(`/proc/sys/${t}`, 'utf8').trim() !== v) writeFileSync(`/proc/sys/${t}`, v);
      for (const p of HOST_LEFTOVERS) {
        if (preexisting.has(p) || !existsSync(p)) continue;
        if (statSync(p).isDirectory()) rmdirSync(p);
        else unlinkSync(p);
      }
      const leaked = net ? await removeTestCniNetwork(net) : [];
      if (leaked.length > 0) process.stderr.write(`kubelet.test.ts: ${leakReport(leaked, log)}`);
      if (dir) {
        // the kubelet bind-mounts its root dir onto itself
        await runCommand('umount', ['-R', join(dir, 'root')]);
        rmSync(dir, { recursive: true, force: true });
      }
      await insecure.close();
    }
  }, 5 * 60_000);

  it('runs a static pod (two containers sharing an emptyDir, a host port, a liveness probe), restarts a container whose probe fails, and tears the pods down when the manifests go', async () => {
    manifest(
      'web',
      `apiVersion: v1
kind: Pod
metadata: { name: web, namespace: default }
spec:
  volumes: [{ name: shared, emptyDir: {} }]
  containers:
    - name: writer
      image: ${IMAGE}
      imagePullPolicy: Never
      command: ["sh", "-c", "while :; do echo written-by-writer > /shared/index.html; sleep 2; done"]
      volumeMounts: [{ name: shared, mountPath: /shared }]
    - name: server
      image: ${IMAGE}
      imagePullPolicy: Never
      command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
      ports: [{ containerPort: 8080, hostPort: ${ports.host} }]
      volumeMounts: [{ name: shared, mountPath: /www }]
      livenessProbe: { httpGet: { path: /index.html, port: 8080 }, periodSeconds: 2 }
`,
    );
    manifest(
      'probe',
      `apiVersion: v1
kind: Pod
metadata: { name: probe, namespace: default }
spec:
  terminationGracePeriodSeconds: 3
  containers:
    - name: app
      image: ${IMAGE}
      imagePullPolicy: Never
      command: ["sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; exec sleep 1000"]
      livenessProbe: { exec: { command: ["test", "-f", "/tmp/healthy"] }, periodSeconds: 2, failureThreshold: 1 }
`,
    );
    manifest(
      'isolated',
      `apiVersion: v1
kind: Pod
metadata: { name: isolated, namespace: default }
spec:
  hostUsers: false
  terminationGracePeriodSeconds: 1
  volumes: [{ name: scratch, emptyDir: {} }]
  containers:
    - name: app
      image: ${IMAGE}
      imagePullPolicy: Never
      command: ["sh", "-c", "echo hi > /scratch/by-root && exec sleep 1000"]
      volumeMounts: [{ name: scratch, mountPath: /scratch }]
`,
    );
    try {
      // both pods run: the kubelet created the sandboxes and containers through the CRI
      const web = await waitForValue(
        'web pod ready',
        async () => (await kubeletPods()).find((p) => p.metadata.name === 'web-berth-node' && (p.status.containerStatuses ?? []).filter((c) => c.ready).length === 2),
        120_000,
        500,
      );
      expect(web.status.phase).toBe('Running');
      // the server serves what the writer wrote in the shared volume, on the host port (portmap, from the host
      // through the pod network's gateway)
      await waitFor(
        async () =>
          (await request(`http://${net.gateway}:${ports.host}/index.html`, { headersTimeout: 3000, bodyTimeout: 3000 }).then((r) => r.body.text()).catch(() => '')) ===
          'written-by-writer\n',
        60_000,
        500,
      );
      // the failing liveness probe makes the kubelet stop the container (StopContainer with its grace period) and
      // start a new attempt
      await waitForValue('probe container restarted', async () => (await kubeletPods()).find((p) => p.metadata.name === 'probe-berth-node' && (p.status.containerStatuses?.[0]?.restartCount ?? 0) >= 1), 120_000, 500);
      const attempts = (await crictl.ok(['ps', '-a', '--name', '^app$', '-o', 'json'])).match(/"attempt":\s*\d+/g) ?? [];
      expect(attempts.length).toBeGreaterThanOrEqual(2);
      // hostUsers: false: the kubelet gave the pod a range of its own (65536 ids at a multiple of 65536), Berth ran it
      // in a user namespace with it, and the emptyDir is idmapped (the kubelet's mount mappings): root's inside
      await waitForValue('isolated pod ready', async () => (await kubeletPods()).find((p) => p.metadata.name === 'isolated-berth-node' && p.status.containerStatuses?.[0]?.ready), 120_000, 500);
      const isolated = (JSON.parse(await crictl.ok(['ps', '--name', '^app$', '--label', 'io.kubernetes.pod.name=isolated-berth-node', '-o', 'json'])) as { containers: { id: string }[] }).containers[0]?.id ?? '';
      const pid = (JSON.parse(await crictl.ok(['inspect', isolated])) as { info: { pid: number } }).info.pid;
      const [, hostId = '0', size = '0'] = readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/);
      expect(Number(size)).toBe(65536);
      expect(Number(hostId) % 65536).toBe(0);
      expect(Number(hostId)).toBeGreaterThanOrEqual(65536);
      expect((await crictl.ok(['exec', '-s', isolated, 'stat', '-c', '%u', '/scratch/by-root'])).trim()).toBe('0');
      // the web pod's containers were never restarted: its probe passes
      expect((await kubeletPods()).find((p) => p.metadata.name === 'web-berth-node')?.status.containerStatuses?.map((c) => c.restartCount)).toEqual([0, 0]);
    } catch (e) {
      console.log(`kubelet log (tail):\n${kubeletLog.slice(-8000)}`);
      throw e;
    }
    // manifests removed: the kubelet stops and removes the pods
    for (const f of readdirSync(join(dir, 'manifests'))) rmSync(join(dir, 'manifests', f));
    await waitFor(async () => (await crictl.ok(['pods', '-q'])).trim() === '', 120_000, 500);
    expect((await crictl.ok(['ps', '-a', '-q'])).trim()).toBe('');
  }, 10 * 60_000);
});
