import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Crictl, criCall, criStream, criToolsBin, leakReport, removeAllPods, removeTestCniNetwork, writeTestConflist, type TestCniNetwork } from '../helpers/cri.js';
import { waitFor } from '../helpers/wait.js';

let d: TestDaemon;
let reg: TestRegistry;
let net: TestCniNetwork;
let crictl: Crictl;
let image: string;
let netDir: string;

beforeAll(async () => {
  const bin = criToolsBin();
  reg = await startRegistry({ auth: 'none' });
  netDir = mkdtempSync(join(tmpdir(), 'bt-cni-'));
  net = await writeTestConflist(netDir);
  d = await startDaemon({ config: { 'cni-conf-dir': net.confDir } });
  crictl = new Crictl(bin, join(d.execRoot, 'cri.sock'));
  const tar = await busyboxImageTar();
  image = `${reg.host}/cri/busybox:1`;
  for (const args of [['load', '-i', tar], ['tag', 'busybox:latest', image], ['push', image], ['rmi', image, 'busybox:latest']]) {
    const r = await d.docker(args, { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  }
}, 20 * 60_000);

afterAll(async () => {
  let log = '';
  try {
    if (crictl) {
      const failed = await removeAllPods(crictl);
      if (failed !== '') process.stderr.write(`cri.test.ts: ${failed}`);
    }
    log = d?.logs() ?? '';
    await d?.stop();
    await reg?.stop();
  } finally {
    const leaked = net ? await removeTestCniNetwork(net) : [];
    if (leaked.length > 0) process.stderr.write(`cri.test.ts: ${leakReport(leaked, log)}`);
    if (netDir) rmSync(netDir, { recursive: true, force: true });
  }
});

function podConfig(name: string, extra: Record<string, unknown> = {}): string {
  const file = join(d.dir, `${name}-pod.json`);
  writeFileSync(
    file,
    JSON.stringify({
      metadata: { name, namespace: 'cri-test', uid: `uid-${name}`, attempt: 0 },
      hostname: `${name}-host`,
      log_directory: join(d.dir, 'pod-logs', name),
      dns_config: { servers: ['10.10.10.10'], searches: ['example.test'], options: ['ndots:3'] },
      linux: {},
      ...extra,
    }),
  );
  return file;
}

function containerConfig(pod: string, name: string, command: string[], extra: Record<string, unknown> = {}): string {
  const file = join(d.dir, `${pod}-${name}-ctr.json`);
  writeFileSync(file, JSON.stringify({ metadata: { name }, image: { image }, command, log_path: `${name}.log`, linux: {}, ...extra }));
  return file;
}

describe('CRI runtime info (crictl)', () => {
  it('answers version, status conditions and the cgroup driver', async () => {
    const v = await crictl.ok(['version']);
    expect(v).toMatch(/RuntimeName:\s+berth/);
    expect(v).toMatch(/RuntimeApiVersion:\s+v1/);
    const info = JSON.parse(await crictl.ok(['info'])) as { status: { conditions: { type: string; status: boolean }[] } };
    expect(info.status.conditions).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: 'RuntimeReady', status: true }), expect.objectContaining({ type: 'NetworkReady', status: true })]),
    );
    const rc = await crictl.ok(['runtime-config']);
    expect(rc).toMatch(/cgroupfs/i);
  });
});

describe('CRI images share the Docker image store', () => {
  it('pulls with crictl, shows in crictl and docker images, and removes with crictl rmi', async () => {
    await crictl.ok(['pull', image], { timeoutMs: 120_000 });
    const list = await crictl.ok(['images', '-o', 'json']);
    const imgs = (JSON.parse(list) as { images: { repoTags: string[]; id: string }[] }).images;
    const found = imgs.find((i) => i.repoTags.includes(image));
    expect(found?.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const docker = await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    expect(docker.stdout.split('\n')).toContain(image);
    const status = JSON.parse(await crictl.ok(['inspecti', image])) as { status: { id: string; size: string } };
    expect(status.status.id).toBe(found?.id);
    // a Docker pull is visible to the CRI side too: remove with crictl, pull back with docker
    await crictl.ok(['rmi', image]);
    expect((await d.docker(['images', '-q', image])).stdout.trim()).toBe('');
    expect((await d.docker(['pull', '-q', image], { timeoutMs: 120_000 })).code).toBe(0);
    expect(await crictl.ok(['images', '-q', image])).toContain(found?.id.slice('sha256:'.length, 'sha256:'.length + 13) ?? 'x');
  });

  it('answers ImageFsInfo', async () => {
    const fs = JSON.parse(await crictl.ok(['imagefsinfo', '-o', 'json'])) as { status: { imageFilesystems: { usedBytes: { value: string } }[] } };
    expect(Number(fs.status.imageFilesystems[0]?.usedBytes.value)).toBeGreaterThan(0);
  });
});

describe('pods and containers by hand (crictl runp, create, start, exec, logs, stats, stopp, rmp)', () => {
  beforeAll(async () => {
    await crictl.ok(['pull', image], { timeoutMs: 120_000 });
  });

  it('runs a pod with CNI networking and DNS config, a container that logs in the CRI format, and tears it all down', async () => {
    const pod = (await crictl.ok(['runp', podConfig('web')])).trim();
    expect(pod).toMatch(/^[0-9a-f]{64}$/);
    const podStatus = JSON.parse(await crictl.ok(['inspectp', pod])) as { status: { state: string; network: { ip: string } }; info: { netns: string } };
    expect(podStatus.status.state).toBe('SANDBOX_READY');
    const prefix = net.subnet.replace(/0\/24$/, '');
    expect(podStatus.status.network.ip.startsWith(prefix)).toBe(true);
    const netns = podStatus.info.netns;
    expect(existsSync(netns)).toBe(true);

    const ctr = (await crictl.ok(['create', pod, containerConfig('web', 'app', ['sh', '-c', 'echo hello; echo oops >&2; exec sleep 1000']), podConfig('web')])).trim();
    await crictl.ok(['start', ctr]);
    const exec = await crictl.ok(['exec', '-s', ctr, 'sh', '-c', 'hostname; cat /etc/resolv.conf; ip -o -4 addr show eth0']);
    expect(exec).toContain('web-host');
    expect(exec).toContain('nameserver 10.10.10.10');
    expect(exec).toContain('search example.test');
    expect(exec).toContain('options ndots:3');
    expect(exec).toContain(`inet ${podStatus.status.network.ip}/24`);
    const failing = await crictl.run(['exec', '-s', ctr, 'sh', '-c', 'exit 3']);
    expect(failing.code).not.toBe(0);
    const sync = await criCall(join(d.execRoot, 'cri.sock'), 'ExecSync', { container_id: ctr, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], timeout: 10 });
    expect(sync).toMatchObject({ exit_code: 3 });
    expect(Buffer.from(sync.stdout as Uint8Array).toString()).toBe('out\n');
    expect(Buffer.from(sync.stderr as Uint8Array).toString()).toBe('err\n');

    const logFile = join(d.dir, 'pod-logs', 'web', 'app.log');
    await waitFor(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('oops'), 10_000);
    const lines = readFileSync(logFile, 'utf8').trim().split('\n');
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z stdout F hello$/);
    expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/Z stderr F oops$/)]));
    const logs = await crictl.run(['logs', ctr]);
    expect(logs.stdout).toContain('hello');
    expect(logs.stderr).toContain('oops');
    // the Docker side reads the same CRI-format file
    const dlogs = await d.docker(['logs', ctr]);
    expect(dlogs.stdout).toBe('hello\n');
    expect(dlogs.stderr).toBe('oops\n');

    const stats = JSON.parse(await crictl.ok(['stats', '-o', 'json', ctr])) as { stats: { attributes: { id: string }; memory: { workingSetBytes: { value: string } } }[] };
    expect(stats.stats[0]?.attributes.id).toBe(ctr);
    expect(Number(stats.stats[0]?.memory.workingSetBytes.value)).toBeGreaterThan(0);

    // visible to docker ps, labelled, as the Docker side sees it
    const ps = await d.docker(['ps', '--filter', 'label=io.berth.cri.type=container', '--format', '{{.ID}} {{.Names}}']);
    expect(ps.stdout).toContain(`${ctr.slice(0, 12)} k8s_app_web_cri-test_uid-web_0`);

    // read-only for docker: the kubelet owns them
    const rm = await d.docker(['rm', '-f', ctr]);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain('managed by the Kubernetes CRI');
    expect((await d.docker(['stop', pod])).code).not.toBe(0);
    // nor pause, unpause, update or rename: each answers 409 with the reason, and the container is unchanged
    for (const args of [['pause', ctr], ['unpause', ctr], ['update', '--memory', '64m', ctr], ['rename', ctr, 'taken-by-docker'], ['pause', pod]]) {
      const r = await d.docker(args);
      expect(r.code, `docker ${args.join(' ')}`).not.toBe(0);
      expect(r.stderr).toContain('managed by the Kubernetes CRI');
    }
    const api = await d.request('POST', `/containers/${ctr}/pause`);
    expect(api.status).toBe(409);
    expect(api.json<{ message: string }>().message).toMatch(/^container [0-9a-f]{64} is managed by the Kubernetes CRI \(pod container\): use crictl or the kubelet$/);
    const after = JSON.parse((await d.docker(['inspect', ctr])).stdout) as { Name: string; State: { Paused: boolean }; HostConfig: { Memory?: number } }[];
    expect(after[0]).toMatchObject({ Name: '/k8s_app_web_cri-test_uid-web_0', State: { Paused: false } });
    expect(after[0]?.HostConfig.Memory ?? 0).toBe(0);

    await crictl.ok(['stopp', pod]);
    const stopped = JSON.parse(await crictl.ok(['inspect', ctr])) as { status: { state: string; exitCode: number } };
    expect(stopped.status.state).toBe('CONTAINER_EXITED');
    expect(JSON.parse(await crictl.ok(['inspectp', pod])).status.state).toBe('SANDBOX_NOTREADY');
    await crictl.ok(['stopp', pod]); // idempotent
    await crictl.ok(['rmp', pod]);
    expect(await crictl.ok(['pods', '-q'])).not.toContain(pod);
    expect(await crictl.ok(['ps', '-a', '-q'])).not.toContain(ctr);
    expect((await d.docker(['ps', '-a', '-q', '--no-trunc'])).stdout).not.toContain(pod);
    await waitFor(() => !existsSync(netns), 10_000);
  });

  it("tears a pod's network down in full when its holder process died first (its namespace is held until the DEL)", async () => {
    const pod = (await crictl.ok(['runp', podConfig('orphan')])).trim();
    const st = JSON.parse(await crictl.ok(['inspectp', pod])) as { info: { pid: number } };
    const natRules = async (): Promise<string[]> => (await runCommand('iptables', ['-w', '-t', 'nat', '-S'])).stdout.split('\n').filter((l) => l.includes(`id: \\"${pod}\\"`));
    expect(await natRules()).not.toEqual([]); // the bridge plugin's masquerade rules
    process.kill(st.info.pid, 'SIGKILL');
    await waitFor(async () => (JSON.parse(await crictl.ok(['inspectp', pod])) as { status: { state: string } }).status.state === 'SANDBOX_NOTREADY', 30_000);
    await crictl.ok(['rmp', '-f', pod]);
    // a DEL without the namespace would have left them (the plugin reads the pod's addresses in it)
    expect(await natRules()).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(pod);
  });

  it('publishes a pod port through the portmap plugin', async () => {
    const hostPort = await freePort();
    const pod = (await crictl.ok(['runp', podConfig('ports', { port_mappings: [{ protocol: 0, container_port: 8080, host_port: hostPort }] })])).trim();
    const ctr = (await crictl.ok(['create', pod, containerConfig('ports', 'httpd', ['sh', '-c', 'mkdir -p /www && echo pod-says-hi > /www/index.html && exec httpd -f -p 8080 -h /www']), podConfig('ports')])).trim();
    await crictl.ok(['start', ctr]);
    const ip = (JSON.parse(await crictl.ok(['inspectp', pod])) as { status: { network: { ip: string } } }).status.network.ip;
    const get = async (url: string): Promise<string> => {
      const r = await request(url, { headersTimeout: 3000, bodyTimeout: 3000 });
      return r.body.text();
    };
    await waitFor(async () => (await get(`http://${ip}:8080/`).catch(() => '')).includes('pod-says-hi'), 15_000);
    // the host port, reached from the host through its bridge address (portmap's DNAT in OUTPUT)
    expect(await get(`http://${net.gateway}:${hostPort}/`)).toContain('pod-says-hi');
    // this pod's rules (its id in the comments, its address, of this test's own subnet, in the DNAT), not anyone's port
    const podRules = async (): Promise<string[]> =>
      (await runCommand('iptables', ['-w', '-t', 'nat', '-S'])).stdout.split('\n').filter((l) => l.includes(`id: \\"${pod}\\"`) || l.includes(`--to-destination ${ip}:8080`));
    expect((await podRules()).filter((l) => l.includes(`--dport ${hostPort} `))).not.toEqual([]);
    await crictl.ok(['rmp', '-f', pod]);
    expect(await podRules()).toEqual([]);
  });

  it('masks paths (masked_paths) and propagates mounts both ways through a bidirectional bind', async () => {
    const shared = mkdtempSync(join(tmpdir(), 'bt-prop-'));
    const etcView = join(shared, 'etc-view');
    await runCommand('mount', ['--bind', shared, shared]);
    await runCommand('mount', ['--make-rshared', shared]);
    try {
      const pod = (await crictl.ok(['runp', podConfig('sec', { linux: { security_context: { privileged: true } } })])).trim();
      const ctr = (
        await crictl.ok([
          'create',
          pod,
          containerConfig('sec', 'app', ['sleep', '1000'], {
            mounts: [{ container_path: '/shared', host_path: shared, propagation: 2 }],
            linux: { security_context: { privileged: true } },
          }),
          podConfig('sec'),
        ])
      ).trim();
      await crictl.ok(['start', ctr]);
      const masked = (
        await crictl.ok(['create', pod, containerConfig('sec', 'masked', ['sleep', '1000'], { linux: { security_context: { masked_paths: ['/etc/passwd'] } } }), podConfig('sec')])
      ).trim();
      await crictl.ok(['start', masked]);
      const sync = await criCall(join(d.execRoot, 'cri.sock'), 'ExecSync', { container_id: masked, cmd: ['wc', '-c', '/etc/passwd'], timeout: 10 });
      expect(Buffer.from(sync.stdout as Uint8Array).toString()).toMatch(/^\s*0 \/etc\/passwd/);
      // a mount made in the container shows on the host
      await crictl.ok(['exec', '-s', ctr, 'sh', '-c', 'mkdir -p /shared/etc-view && mount --bind /etc /shared/etc-view']);
      expect(existsSync(join(etcView, 'hostname'))).toBe(true);
      await crictl.ok(['rmp', '-f', pod]);
    } finally {
      await runCommand('umount', ['-l', etcView]);
      await runCommand('umount', ['-l', shared]);
      rmSync(shared, { recursive: true, force: true });
    }
  });

  it('stops a container whose PID 1 installs its SIGTERM handler only after the stop began (the dropped signal is sent again)', async () => {
    const pod = (await crictl.ok(['runp', podConfig('stopsig')])).trim();
    // PID 1 has no SIGTERM handler for its first 4 s: the kernel drops a SIGTERM sent to it meanwhile
    const cmd = ['sh', '-c', 'sleep 4; trap "exit 7" TERM; while :; do sleep 0.2; done'];
    const ctr = (await crictl.ok(['create', pod, containerConfig('stopsig', 'late-trap', cmd), podConfig('stopsig')])).trim();
    await crictl.ok(['start', ctr]);
    // right after the start, as critest and the kubelet do; without the second signal it would end by SIGKILL (137) after 30 s
    await criCall(join(d.execRoot, 'cri.sock'), 'StopContainer', { container_id: ctr, timeout: 30 });
    const st = JSON.parse(await crictl.ok(['inspect', ctr])) as { status: { state: string; exitCode: number } };
    expect(st.status).toMatchObject({ state: 'CONTAINER_EXITED', exitCode: 7 });
    await crictl.ok(['rmp', '-f', pod]);
  });

  it('mounts an image volume read-only (whole image and an image_sub_path) and unmounts it at RemoveContainer', async () => {
    const pod = (await crictl.ok(['runp', podConfig('imgvol')])).trim();
    const mounts = [
      { container_path: '/iv', readonly: true, image: { image } },
      { container_path: '/iv-etc', readonly: true, image: { image }, image_sub_path: 'etc' },
    ];
    const ctr = (await crictl.ok(['create', pod, containerConfig('imgvol', 'app', ['sleep', '1000'], { mounts }), podConfig('imgvol')])).trim();
    const volumesDir = join(d.dataRoot, 'cri', 'image-volumes');
    const mounted = (): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(volumesDir));
    expect(mounted()).toHaveLength(2);
    await crictl.ok(['start', ctr]);
    const sh = (cmd: string): Promise<Record<string, unknown>> => criCall(join(d.execRoot, 'cri.sock'), 'ExecSync', { container_id: ctr, cmd: ['sh', '-c', cmd], timeout: 10 });
    expect(await sh('test -x /iv/bin/busybox && test -f /iv-etc/passwd && test ! -e /iv-etc/etc && /iv/bin/busybox echo runs')).toMatchObject({ exit_code: 0 });
    const write = await sh('touch /iv/new 2>&1');
    expect(write.exit_code).not.toBe(0);
    expect(Buffer.from(write.stdout as Uint8Array).toString()).toContain('Read-only file system');
    // the image's ID, as PullImage answered it, in the status
    const st = JSON.parse(await crictl.ok(['inspect', ctr])) as { status: { mounts: { containerPath: string; image?: { imageRef?: string } }[] } };
    const imageId = JSON.parse(await crictl.ok(['inspecti', image])).status.id as string;
    expect(st.status.mounts.find((m) => m.containerPath === '/iv')?.image?.imageRef).toBe(imageId);
    // refused: writable, a sub path that is not in the image, one that climbs out
    for (const bad of [
      { container_path: '/rw', readonly: false, image: { image } },
      { container_path: '/nope', readonly: true, image: { image }, image_sub_path: 'not-there' },
      { container_path: '/out', readonly: true, image: { image }, image_sub_path: '../..' },
    ]) {
      const r = await crictl.run(['create', pod, containerConfig('imgvol', 'bad', ['true'], { mounts: [bad] }), podConfig('imgvol')]);
      expect(r.code, JSON.stringify(bad)).not.toBe(0);
    }
    expect(mounted()).toHaveLength(2);
    await crictl.ok(['rmp', '-f', pod]);
    expect(mounted()).toEqual([]);
  });

  it('answers the CRI metrics: descriptors, and per pod its network and each container\'s cgroup, process and file-system series', async () => {
    const pod = (await crictl.ok(['runp', podConfig('metrics')])).trim();
    const ctr = (await crictl.ok(['create', pod, containerConfig('metrics', 'app', ['sleep', '1000']), podConfig('metrics')])).trim();
    await crictl.ok(['start', ctr]);
    const sock = join(d.execRoot, 'cri.sock');
    const descs = (await criCall(sock, 'ListMetricDescriptors', {})).descriptors as { name: string; label_keys: string[] }[];
    const keys = new Map(descs.map((x) => [x.name, x.label_keys.length]));
    expect(keys.get('container_memory_working_set_bytes')).toBe(6);
    type Metric = { name: string; label_values: string[]; value: { value: string } };
    const all = (await criCall(sock, 'ListPodSandboxMetrics', {})).pod_metrics as { pod_sandbox_id: string; metrics: Metric[]; container_metrics: { container_id: string; metrics: Metric[] }[] }[];
    const mine = all.find((m) => m.pod_sandbox_id === pod);
    const rx = mine?.metrics.find((m) => m.name === 'container_network_receive_bytes_total');
    expect(rx?.label_values.at(-1)).toBe('eth0');
    const series = mine?.container_metrics.find((c) => c.container_id === ctr)?.metrics ?? [];
    const value = (name: string): number => Number(series.find((m) => m.name === name)?.value.value);
    expect(value('container_processes')).toBe(1);
    expect(value('container_memory_usage_bytes')).toBeGreaterThan(0);
    expect(value('container_fs_inodes_total')).toBeGreaterThan(0);
    // every series has as many label values as its descriptor has keys
    for (const m of [...(mine?.metrics ?? []), ...series]) expect(m.label_values.length, m.name).toBe(keys.get(m.name));
    await crictl.ok(['rmp', '-f', pod]);
  });

  it('streams the List* items through the Stream* RPCs, with the same filters (CRIListStreaming)', async () => {
    const pod = (await crictl.ok(['runp', podConfig('lists', { labels: { list: 'yes' } })])).trim();
    const ctr = (await crictl.ok(['create', pod, containerConfig('lists', 'app', ['sleep', '1000'], { labels: { list: 'app' } }), podConfig('lists')])).trim();
    await crictl.ok(['start', ctr]);
    const idle = (await crictl.ok(['create', pod, containerConfig('lists', 'idle', ['true']), podConfig('lists')])).trim();
    const sock = join(d.execRoot, 'cri.sock');
    type M = Record<string, unknown>;
    // every message holds at least one item; the items of all messages, in order, are the List answer's
    const streamed = async (method: string, field: string, req: M, service?: 'ImageService'): Promise<M[]> => {
      const msgs = await criStream(sock, method, req, service);
      for (const m of msgs) expect((m[field] as M[]).length, method).toBeGreaterThan(0);
      return msgs.flatMap((m) => m[field] as M[]);
    };
    const byId = (items: M[], id: (x: M) => string): M[] => [...items].sort((a, b) => id(a).localeCompare(id(b)));
    const idOf = (x: M): string => String(x.id);
    for (const filter of [{}, { id: pod }, { label_selector: { list: 'yes' } }, { state: { state: 'SANDBOX_READY' } }, { label_selector: { list: 'no' } }]) {
      const list = (await criCall(sock, 'ListPodSandbox', { filter })).items as M[];
      expect(byId(await streamed('StreamPodSandboxes', 'pod_sandboxes', { filter }), idOf), JSON.stringify(filter)).toEqual(byId(list, idOf));
    }
    for (const filter of [{}, { id: ctr }, { pod_sandbox_id: pod }, { state: { state: 'CONTAINER_CREATED' } }, { label_selector: { list: 'app' } }, { id: 'nope' }]) {
      const list = (await criCall(sock, 'ListContainers', { filter })).containers as M[];
      expect(byId(await streamed('StreamContainers', 'containers', { filter }), idOf), JSON.stringify(filter)).toEqual(byId(list, idOf));
    }
    expect((await streamed('StreamContainers', 'containers', { filter: { pod_sandbox_id: pod } })).map(idOf).sort()).toEqual([ctr, idle].sort());
    const list = (await criCall(sock, 'ListImages', {}, 'ImageService')).images as M[];
    expect(byId(await streamed('StreamImages', 'images', {}, 'ImageService'), idOf)).toEqual(byId(list, idOf));
    const one = await streamed('StreamImages', 'images', { filter: { image: { image } } }, 'ImageService');
    expect(one.map(idOf)).toEqual(list.filter((i) => (i.repo_tags as string[]).includes(image)).map(idOf));
    expect(one).toHaveLength(1);
    expect(await criStream(sock, 'StreamImages', { filter: { image: { image: 'no/such:image' } } }, 'ImageService')).toEqual([]);
    // stats and metrics change between calls: the same items (by id), the same shape
    const attrId = (x: M): string => String((x.attributes as M).id);
    for (const filter of [{}, { pod_sandbox_id: pod }, { id: ctr }, { id: idle }]) {
      const list = ((await criCall(sock, 'ListContainerStats', { filter })).stats as M[]).map(attrId).sort();
      expect((await streamed('StreamContainerStats', 'container_stats', { filter })).map(attrId).sort(), JSON.stringify(filter)).toEqual(list);
    }
    expect((await streamed('StreamContainerStats', 'container_stats', { filter: { pod_sandbox_id: pod } })).map(attrId)).toEqual([ctr]);
    for (const filter of [{}, { id: pod }, { label_selector: { list: 'yes' } }, { id: 'nope' }]) {
      const list = ((await criCall(sock, 'ListPodSandboxStats', { filter })).stats as M[]).map(attrId).sort();
      expect((await streamed('StreamPodSandboxStats', 'pod_sandbox_stats', { filter })).map(attrId).sort(), JSON.stringify(filter)).toEqual(list);
    }
    const podId = (x: M): string => String(x.pod_sandbox_id);
    const metrics = ((await criCall(sock, 'ListPodSandboxMetrics', {})).pod_metrics as M[]).map(podId).sort();
    const streamedMetrics = await streamed('StreamPodSandboxMetrics', 'pod_sandbox_metrics', {});
    expect(streamedMetrics.map(podId).sort()).toEqual(metrics);
    expect(metrics).toContain(pod);
    await crictl.ok(['rmp', '-f', pod]);
    // nothing matches: the stream ends without a message
    expect(await criStream(sock, 'StreamContainers', { filter: { pod_sandbox_id: pod } })).toEqual([]);
  });

  it('takes the pod-level resources of an in-place resize (UpdatePodSandboxResources) and records them, as containerd', async () => {
    const sock = join(d.execRoot, 'cri.sock');
    const pod = (await crictl.ok(['runp', podConfig('resize', { linux: { resources: { cpu_shares: 512, memory_limit_in_bytes: 64 << 20 } } })])).trim();
    type Info = { resources?: Record<string, unknown>; overhead?: Record<string, unknown> };
    const info = async (): Promise<Info> => JSON.parse(((await criCall(sock, 'PodSandboxStatus', { pod_sandbox_id: pod, verbose: true })).info as Record<string, string>).info ?? '{}') as Info;
    expect((await info()).resources).toMatchObject({ cpu_shares: '512', memory_limit_in_bytes: String(64 << 20) });
    expect(await criCall(sock, 'UpdatePodSandboxResources', { pod_sandbox_id: pod, overhead: { cpu_shares: 2 }, resources: { cpu_quota: 50_000, cpu_period: 100_000, memory_limit_in_bytes: 128 << 20 } })).toEqual({});
    const after = await info();
    expect(after.resources).toMatchObject({ cpu_quota: '50000', cpu_period: '100000', memory_limit_in_bytes: String(128 << 20) });
    expect(after.overhead).toMatchObject({ cpu_shares: '2' });
    await expect(criCall(sock, 'UpdatePodSandboxResources', { pod_sandbox_id: 'no-such-pod', resources: {} })).rejects.toMatchObject({ code: 5 });
    await crictl.ok(['rmp', '-f', pod]);
  });

  it('streams exec (stdin, tty) over SPDY and WebSocket and port-forwards to the pod', async () => {
    const pod = (await crictl.ok(['runp', podConfig('stream')])).trim();
    const ctr = (
      await crictl.ok(['create', pod, containerConfig('stream', 'web', ['sh', '-c', 'mkdir -p /www && echo forwarded-page > /www/index.html && exec httpd -f -p 8080 -h /www']), podConfig('stream')])
    ).trim();
    await crictl.ok(['start', ctr]);
    for (const transport of ['spdy', 'websocket']) {
      const r = await crictl.run(['exec', '-i', '--transport', transport, ctr, 'sh', '-c', 'cat; echo err >&2; exit 4'], { input: `hello over ${transport}\n` });
      expect(r.stdout).toBe(`hello over ${transport}\n`);
      expect(r.stderr).toContain('err');
      expect(r.code).not.toBe(0);
    }
    // a terminal: script(1) gives crictl one, the process sees a pty
    const tty = await runCommand('script', ['-qec', `${join(crictl.bin, 'crictl')} --runtime-endpoint unix://${crictl.socket} --timeout 60s exec -it ${ctr} tty`, '/dev/null'], {
      env: { ...process.env, CRI_CONFIG_FILE: '/dev/null' },
    });
    expect(tty.stdout).toMatch(/\/dev\/pts\/\d+/);
    // the terminal's size reaches the process (sent as the resize stream opens, before the exec runs), and
    // nothing but the process's output comes back (no stray byte on the stream's opening)
    const sizes: string[] = [];
    for (const transport of ['spdy', 'websocket']) {
      // script's stdin stays open while it runs (at its end, script passes EOF on to the terminal crictl reads)
      const script = spawn(
        'script',
        ['-qec', `stty rows 31 cols 101; ${join(crictl.bin, 'crictl')} --runtime-endpoint unix://${crictl.socket} --timeout 60s exec -it --transport ${transport} ${ctr} stty size`, '/dev/null'],
        { env: { ...process.env, CRI_CONFIG_FILE: '/dev/null' }, stdio: ['pipe', 'pipe', 'inherit'] },
      );
      let out = '';
      script.stdout.on('data', (b: Buffer) => (out += b.toString()));
      await new Promise((resolve) => script.on('close', resolve));
      script.stdin.end();
      sizes.push(`${transport}: ${JSON.stringify(out)}`);
    }
    expect(sizes).toEqual(['spdy: "31 101\\r\\n"', 'websocket: "31 101\\r\\n"']);

    const local = await freePort();
    const pf = spawn(join(crictl.bin, 'crictl'), ['--runtime-endpoint', `unix://${crictl.socket}`, 'port-forward', pod, `${local}:8080`], {
      env: { ...process.env, CRI_CONFIG_FILE: '/dev/null' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      pf.stdout.on('data', (b: Buffer) => (out += b.toString()));
      await waitFor(() => out.includes('Forwarding from'), 15_000);
      const r = await request(`http://127.0.0.1:${local}/`, { headersTimeout: 5000, bodyTimeout: 5000 });
      expect(await r.body.text()).toContain('forwarded-page');
    } finally {
      pf.kill();
    }
    await crictl.ok(['rmp', '-f', pod]);
  });
});

describe('pods in a user namespace (NamespaceOption.userns_options mode POD)', () => {
  // a range no other test maps (critest uses 1000)
  const HOST_ID = 3_100_000;
  const SIZE = 65_536;
  const userns = { userns_options: { mode: 0, uids: [{ container_id: 0, host_id: HOST_ID, length: SIZE }], gids: [{ container_id: 0, host_id: HOST_ID, length: SIZE }] } };
  const sock = (): string => join(d.execRoot, 'cri.sock');
  beforeAll(async () => {
    await crictl.ok(['pull', image], { timeoutMs: 120_000 });
  });
  const execSync = async (ctr: string, cmd: string[]): Promise<{ out: string; code: number }> => {
    const r = await criCall(sock(), 'ExecSync', { container_id: ctr, cmd, timeout: 10 });
    return { out: Buffer.from(r.stdout as Uint8Array).toString() + Buffer.from(r.stderr as Uint8Array).toString(), code: Number(r.exit_code) };
  };

  it('maps the pod root to the kubelet\'s range: image files are root\'s, what it writes is the mapped ids\', host files are nobody\'s; all gone at rmp, also after a daemon restart', async () => {
    const vol = mkdtempSync(join(tmpdir(), 'bt-userns-'));
    chmodSync(vol, 0o777);
    writeFileSync(join(vol, 'host-owned'), 'host\n', { mode: 0o644 });
    // a volume the kubelet asks idmapped (it sets the pod's maps on every mount of such a pod)
    const mapped = mkdtempSync(join(tmpdir(), 'bt-userns-idmap-'));
    writeFileSync(join(mapped, 'host-owned'), 'host\n', { mode: 0o644 });
    const maps = { container_id: 0, host_id: HOST_ID, length: SIZE };
    try {
      const pod = (await crictl.ok(['runp', podConfig('uns', { linux: { security_context: { namespace_options: userns } } })])).trim();
      const podStatus = JSON.parse(await crictl.ok(['inspectp', pod])) as { status: { network: { ip: string }; linux: { namespaces: { options: { usernsOptions: { mode: string; uids: unknown[] } } } } }; info: { netns: string; pid: number } };
      expect(podStatus.status.linux.namespaces.options.usernsOptions).toEqual({ mode: 'POD', uids: [{ containerId: 0, hostId: HOST_ID, length: SIZE }], gids: [{ containerId: 0, hostId: HOST_ID, length: SIZE }] });
      // CNI ran against the holder's network namespace, which is owned by the pod's user namespace
      expect(podStatus.status.network.ip.startsWith(net.subnet.replace(/0\/24$/, ''))).toBe(true);
      const netns = podStatus.info.netns;
      expect(statSync(netns).ino).toBe(statSync(`/proc/${podStatus.info.pid}/ns/net`).ino);
      expect(readlinkSync(`/proc/${podStatus.info.pid}/ns/user`)).not.toBe(readlinkSync('/proc/self/ns/user'));

      const ctr = (await crictl.ok(['create', pod, containerConfig('uns', 'app', ['sleep', '1000'], { mounts: [{ container_path: '/vol', host_path: vol }, { container_path: '/mapped', host_path: mapped, uidMappings: [maps], gidMappings: [maps] }] }), podConfig('uns', { linux: { security_context: { namespace_options: userns } } })])).trim();
      await crictl.ok(['start', ctr]);
      const ctrPid = (JSON.parse(await crictl.ok(['inspect', ctr])) as { info: { pid: number } }).info.pid;
      expect(readFileSync(`/proc/${ctrPid}/uid_map`, 'utf8')).toMatch(new RegExp(`^\\s*0\\s+${HOST_ID}\\s+${SIZE}\\n$`));
      expect(readFileSync(`/proc/${ctrPid}/gid_map`, 'utf8')).toMatch(new RegExp(`^\\s*0\\s+${HOST_ID}\\s+${SIZE}\\n$`));
      // the pod's containers share the holder's user namespace
      expect(readlinkSync(`/proc/${ctrPid}/ns/user`)).toBe(readlinkSync(`/proc/${podStatus.info.pid}/ns/user`));
      expect(readlinkSync(`/proc/${ctrPid}/ns/user`)).not.toBe(readlinkSync('/proc/self/ns/user'));

      // the image's files (root's on the host) are the container root's: idmapped layers
      expect(await execSync(ctr, ['sh', '-c', 'id -u; stat -c %u:%g /bin/busybox /etc/passwd; cat /proc/self/uid_map'])).toEqual({ out: expect.stringMatching(new RegExp(`^0\\n0:0\\n0:0\\n\\s*0\\s+${HOST_ID}\\s+${SIZE}\\n$`)), code: 0 });
      // what it writes, in its rootfs and in a volume, is owned by the mapped root on the host
      expect((await execSync(ctr, ['sh', '-c', 'echo a > /made-in-rootfs && echo b > /vol/made-in-volume && mkdir /dir-in-rootfs'])).code).toBe(0);
      expect(statSync(`/proc/${ctrPid}/root/made-in-rootfs`).uid).toBe(HOST_ID);
      expect(statSync(`/proc/${ctrPid}/root/dir-in-rootfs`).gid).toBe(HOST_ID);
      expect(statSync(join(vol, 'made-in-volume')).uid).toBe(HOST_ID);
      // a host root's file is nobody's inside, and root there cannot write it
      const hostOwned = await execSync(ctr, ['sh', '-c', 'stat -c %u /vol/host-owned; echo x >> /vol/host-owned']);
      expect(hostOwned.out).toMatch(/^65534\n.*(Permission denied|can't create)/s);
      expect(hostOwned.code).not.toBe(0);
      expect(readFileSync(join(vol, 'host-owned'), 'utf8')).toBe('host\n');
      // through an idmapped volume the host's root is the container's root, both ways
      expect(await execSync(ctr, ['sh', '-c', 'stat -c %u:%g /mapped/host-owned && echo more >> /mapped/host-owned && echo new > /mapped/new'])).toEqual({ out: '0:0\n', code: 0 });
      expect(readFileSync(join(mapped, 'host-owned'), 'utf8')).toBe('host\nmore\n');
      expect(statSync(join(mapped, 'new')).uid).toBe(0);
      // nothing of the container is mounted on the host (idmapped layers and binds are the container's own)
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(ctr);

      // a daemon restart keeps the pod; exec still joins it, and rmp removes everything
      await d.signal('SIGTERM');
      await d.launch();
      expect((await execSync(ctr, ['id', '-u'])).out).toBe('0\n');
      await crictl.ok(['rmp', '-f', pod]);
      expect(existsSync(netns)).toBe(false);
      for (const pid of [ctrPid, podStatus.info.pid]) expect(existsSync(`/proc/${pid}/ns/user`) && readlinkSync(`/proc/${pid}/ns/user`) === readlinkSync(`/proc/${ctrPid}/ns/user`)).toBe(false);
    } finally {
      rmSync(vol, { recursive: true, force: true });
      rmSync(mapped, { recursive: true, force: true });
    }
  });

  it('refuses what a user namespace cannot be: CONTAINER/TARGET modes, several or rootless mappings, host namespaces', async () => {
    const run = (name: string, nso: Record<string, unknown>): Promise<{ code: number; stderr: string }> =>
      crictl.run(['runp', podConfig(name, { linux: { security_context: { namespace_options: nso } } })]);
    const one = [{ container_id: 0, host_id: HOST_ID, length: SIZE }];
    for (const [name, nso, text] of [
      ['bad-mode', { userns_options: { mode: 1 } }, 'unsupported user namespace mode: CONTAINER'],
      ['bad-two', { userns_options: { mode: 0, uids: [...one, { container_id: 0, host_id: HOST_ID + SIZE, length: SIZE }], gids: one } }, 'exactly one uid mapping'],
      ['bad-root', { userns_options: { mode: 0, uids: [{ container_id: 1, host_id: HOST_ID, length: SIZE }], gids: one } }, 'must map container ID 0'],
      ['bad-host', { network: 2, userns_options: { mode: 0, uids: one, gids: one } }, "cannot use the host's network namespace"],
    ] as const) {
      const r = await run(name, nso);
      expect(r.code, name).not.toBe(0);
      expect(r.stderr, name).toContain(text);
    }
    expect((await crictl.ok(['pods', '--name', 'bad-', '-q'])).trim()).toBe('');
  });
});
