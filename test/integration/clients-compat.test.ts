import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';

const PTY_RUN = fileURLToPath(new URL('../fixtures/clients/pty_run.py', import.meta.url));

/**
 * Behaviours the clients' own test suites (docker-py tests/integration, dockerode test/) exposed; each is checked
 * here the way the client calls it, because CI cannot run those suites.
 */
describe('client compatibility', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    if (load.code !== 0) throw new Error(load.stderr);
  });
  afterAll(async () => {
    await d?.stop();
  });

  const NOT_MANAGER =
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';

  describe('a daemon that is not in a swarm', () => {
    it('answers swarm-mode endpoints with 503 as dockerd does (docker-py leave_swarm(force=True) relies on it)', async () => {
      for (const [method, path] of [
        ['GET', '/swarm'], ['GET', '/v1.41/nodes'], ['GET', '/services'], ['POST', '/services/create'], ['GET', '/tasks'],
        ['GET', '/secrets'], ['GET', '/configs/abc'], ['DELETE', '/services/x'], ['GET', '/services/x/logs'],
      ] as const) {
        const r = await d.request(method, path);
        expect(r.status, `${method} ${path}`).toBe(503);
        expect(r.json()).toEqual({ message: NOT_MANAGER });
      }
      const leave = await d.request('POST', '/v1.41/swarm/leave?force=true');
      expect(leave.status).toBe(503);
      expect(leave.json()).toEqual({ message: 'This node is not part of a swarm' });
    });

    it('reports the same through the docker CLI', async () => {
      const ls = await d.docker(['node', 'ls']);
      expect(ls.code).not.toBe(0);
      expect(ls.stderr).toContain(NOT_MANAGER);
      const leave = await d.docker(['swarm', 'leave', '--force']);
      expect(leave.stderr).toContain('This node is not part of a swarm');
      const info = await d.docker(['info', '--format', '{{json .Swarm}}']);
      expect(JSON.parse(info.stdout)).toMatchObject({ LocalNodeState: 'inactive', NodeID: '', ControlAvailable: false });
    });

    it('lists no plugins and answers a named plugin with dockerd\'s not-found error', async () => {
      const list = await d.request('GET', '/plugins');
      expect(list.status).toBe(200);
      expect(list.json()).toEqual([]);
      const inspect = await d.request('GET', '/plugins/vieux/sshfs/json');
      expect(inspect.status).toBe(404);
      expect(inspect.json()).toEqual({ message: 'plugin "vieux/sshfs:latest" not found' });
      const rm = await d.request('DELETE', '/plugins/foo:1.0');
      expect(rm.json()).toEqual({ message: 'plugin "foo:1.0" not found' });
      const cli = await d.docker(['plugin', 'ls', '--format', '{{.Name}}']);
      expect(cli.code).toBe(0);
      expect(cli.stdout).toBe('');
    });
  });

  /** Runs a docker-py snippet (Debian's python3-docker) against the daemon; `c` is an APIClient. */
  async function dockerPy(code: string): Promise<string> {
    const prelude = 'import docker, json, sys\nc = docker.APIClient(base_url=sys.argv[1], version="auto")\n';
    const r = await runCommand('/usr/bin/python3', ['-c', prelude + code, `unix://${d.socket}`]);
    if (r.code !== 0) throw new Error(`docker-py failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  describe('exec streams', () => {
    let id = '';
    beforeAll(async () => {
      const r = await d.docker(['run', '-d', '-i', '--init', 'busybox', 'cat']);
      id = r.stdout.trim();
    });
    afterAll(async () => {
      await d.docker(['rm', '-f', id]);
    });

    it('frames output by the start request\'s Tty: exec_start(socket=True) on a TTY exec reads a stdout frame', async () => {
      const out = await dockerPy(`
from docker.utils.socket import next_frame_header, read_exactly
e = c.exec_create(sys.argv[2], ['printf', 'yay, interactive exec!'], tty=True)
s = c.exec_start(e, socket=True)
stream, size = next_frame_header(s)
print(json.dumps([stream, size, read_exactly(s, size).decode()]))
`.replace('sys.argv[2]', JSON.stringify(id)));
      expect(JSON.parse(out)).toEqual([1, 22, 'yay, interactive exec!']);
    });

    it('keeps every byte of TTY output (exec_start with and without tty) and demuxes non-TTY output', async () => {
      const out = await dockerPy(`
cmd = ['sh', '-c', 'echo hello out; echo hello err >&2']
res = []
for tty, start_tty, demux in [(True, False, False), (True, True, False), (False, False, True)]:
    e = c.exec_create(ID, cmd, tty=tty)
    r = c.exec_start(e, tty=start_tty, demux=demux)
    res.append([x.decode() if x is not None else None for x in r] if demux else r.decode())
print(json.dumps(res))
`.replace('ID', JSON.stringify(id)));
      expect(JSON.parse(out)).toEqual(['hello out\r\nhello err\r\n', 'hello out\r\nhello err\r\n', ['hello out\n', 'hello err\n']]);
    });

    async function execInPty(keysHex: string, extraArgs: string[] = []): Promise<{ exit: number; output: string }> {
      const r = await runCommand('python3', [PTY_RUN, 'READY', keysHex, '--', 'docker', 'exec', '-it', ...extraArgs, id, 'sh', '-c', 'echo READY; exec sleep 300'], { env: d.env });
      return JSON.parse(r.stdout) as { exit: number; output: string };
    }

    /**
     * The docker CLI watches for the detach keys too: whichever side sees them first ends the session, so the CLI
     * exits 0 (the daemon closed the stream) or 1 with "read escape sequence" (its own proxy did), as with dockerd.
     */
    function expectDetached(r: { exit: number; output: string }): void {
      expect(r.output).toContain('READY');
      if (r.exit !== 0) {
        expect(r.exit).toBe(1);
        expect(r.output).toContain('read escape sequence');
      }
    }

    /** Starts a TTY exec on a raw hijacked socket, types `keys` once `READY` shows, resolves when the daemon ends the stream. */
    function rawExecDetach(execId: string, keys: Buffer): Promise<string> {
      return new Promise((resolve, reject) => {
        const sock = createConnection(d.socket);
        const body = JSON.stringify({ Detach: false, Tty: true });
        let seen = '';
        let typed = false;
        const timer = setTimeout(() => {
          sock.destroy();
          reject(new Error(`the daemon did not end the stream on the detach keys; got ${JSON.stringify(seen)}`));
        }, 15_000);
        sock.on('data', (b: Buffer) => {
          seen += b.toString('latin1');
          if (!typed && seen.includes('READY')) {
            typed = true;
            sock.write(keys);
          }
        });
        sock.on('end', () => {
          clearTimeout(timer);
          sock.end();
          resolve(seen);
        });
        sock.on('error', reject);
        sock.write(
          `POST /v1.50/exec/${execId}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        );
      });
    }

    it('the daemon itself ends a TTY exec stream on the exec\'s DetachKeys (docker-py/dockerode sockets)', async () => {
      const before = await runningSleeps();
      // docker-py sends its client config's keys as `detachKeys` (Go matches JSON keys case-insensitively)
      for (const [keysSpec, typed, key] of [
        [undefined, Buffer.from([0x10, 0x11]), 'DetachKeys'],
        ['ctrl-x,x', Buffer.from([0x18, 0x78]), 'DetachKeys'],
        ['ctrl-p', Buffer.from([0x10]), 'detachKeys'],
      ] as const) {
        const create = await d.request('POST', `/containers/${id}/exec`, {
          body: { Cmd: ['sh', '-c', 'echo READY; exec sleep 300'], Tty: true, AttachStdin: true, AttachStdout: true, ...(keysSpec ? { [key]: keysSpec } : {}) },
        });
        const seen = await rawExecDetach(create.json<{ Id: string }>().Id, typed);
        expect(seen).toMatch(/^HTTP\/1.1 101 UPGRADED/);
        expect((await d.request('GET', `/exec/${create.json<{ Id: string }>().Id}/json`)).json()).toMatchObject({ Running: true });
      }
      expect(await runningSleeps()).toBe(before + 3);
    });

    async function runningSleeps(): Promise<number> {
      const top = await d.docker(['top', id]);
      return top.stdout.split('\n').filter((l) => l.includes('sleep 300')).length;
    }

    it('detaches from exec -it with Ctrl-P Ctrl-Q, leaving the process running', async () => {
      const before = await runningSleeps();
      const since = Math.floor(Date.now() / 1000) - 1;
      expectDetached(await execInPty('1011'));
      // Seen failing under full-suite load (the exec gone after the detach): a failure says how the exec ended.
      const after = await runningSleeps();
      if (after !== before + 1) {
        const ev = await d.docker(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000)), '--filter', `container=${id}`, '--format', '{{.Action}} {{json .Actor.Attributes.exitCode}}']);
        expect.fail(`sleeps ${before} -> ${after}; exec events: ${ev.stdout.trim()}`);
      }
    });

    it('detaches with the client config\'s detachKeys (sent as the exec\'s DetachKeys)', async () => {
      const cfgDir = join(d.dir, 'docker-config');
      mkdirSync(cfgDir, { recursive: true });
      writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ detachKeys: 'ctrl-x,x' }));
      try {
        const before = await runningSleeps();
        // Ctrl-P Ctrl-Q no longer detaches; Ctrl-X x does.
        expectDetached(await execInPty('1011' + '18' + '78'));
        expect(await runningSleeps()).toBe(before + 1);
      } finally {
        writeFileSync(join(cfgDir, 'config.json'), '{}');
      }
    });

    it('refuses invalid detach keys at exec create', async () => {
      const r = await d.request('POST', `/containers/${id}/exec`, { body: { Cmd: ['true'], DetachKeys: 'ctrl-' } });
      expect(r.status).toBe(400);
      expect(r.json()).toEqual({ message: 'Invalid escape keys (ctrl-) provided' });
    });
  });

  async function inspect<T = Record<string, unknown>>(id: string): Promise<T> {
    const r = await d.request('GET', `/containers/${id}/json`);
    return r.json<T>();
  }

  describe('inspect shapes', () => {
    it('reports HostConfig.Runtime "runc" and refuses unknown runtimes as dockerd', async () => {
      const r = await d.docker(['create', 'busybox', 'true']);
      const id = r.stdout.trim();
      try {
        expect((await inspect<{ HostConfig: { Runtime: string } }>(id)).HostConfig.Runtime).toBe('runc');
      } finally {
        await d.docker(['rm', id]);
      }
      const bad = await d.docker(['run', '--rm', '--runtime', 'runsc', 'busybox', 'true']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('unknown or invalid runtime name: runsc');
      const info = await d.docker(['info', '--format', '{{.DefaultRuntime}}']);
      expect(info.stdout.trim()).toBe('runc');
    });

    it('keeps a container-wide mac_address (docker-py create_container(mac_address=…)) and applies it', async () => {
      const out = await dockerPy(`
c2 = c.create_container('busybox', ['sleep', '60'], mac_address='02:42:ac:11:00:0a')
c.start(c2)
info = c.inspect_container(c2)
c.remove_container(c2, force=True)
print(json.dumps([info['Config'].get('MacAddress'), info['NetworkSettings']['MacAddress']]))
`);
      expect(JSON.parse(out)).toEqual(['02:42:ac:11:00:0a', '02:42:ac:11:00:0a']);
    });

    it('shows a killed container exited with 137 as soon as kill returns (docker-py KillTest.test_kill)', async () => {
      const out = await dockerPy(`
c2 = c.create_container('busybox', ['sleep', '9999'])
c.start(c2)
c.kill(c2)
st = c.inspect_container(c2)['State']
c.remove_container(c2)
print(json.dumps([st['Running'], st['ExitCode'], st['Status']]))
`);
      expect(JSON.parse(out)).toEqual([false, 137, 'exited']);
    });

    it('keeps real-time CPU settings sent as docker-py spells them (CPURealtimePeriod: Go matches names case-insensitively)', async () => {
      const out = await dockerPy(`
ct = c.create_container('busybox', 'true', host_config=c.create_host_config(cpu_rt_period=1000, cpu_rt_runtime=500))
hc = c.inspect_container(ct)['HostConfig']
c.remove_container(ct)
print(json.dumps([hc['CpuRealtimePeriod'], hc['CpuRealtimeRuntime']]))
`);
      expect(JSON.parse(out)).toEqual([1000, 500]);
    });

    it('resets the image entrypoint with --entrypoint ""', async () => {
      const img = 'compat-entrypoint:1';
      const base = await d.docker(['create', 'busybox', 'true']);
      await d.docker(['commit', '--change', 'ENTRYPOINT ["/bin/false"]', base.stdout.trim(), img]);
      await d.docker(['rm', base.stdout.trim()]);
      try {
        const r = await d.docker(['run', '--rm', '--entrypoint', '', img, 'sh', '-c', 'echo ok']);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('ok\n');
        const none = await d.docker(['run', '--rm', '--entrypoint', '', img]);
        expect(none.stderr).toContain('No command specified');
      } finally {
        await d.docker(['rmi', img]);
      }
    });
  });

  describe('log configuration', () => {
    it('reports LogConfig as the client gave it (docker-py log config tests) and refuses unknown drivers', async () => {
      const out = await dockerPy(`
from docker.types import LogConfig
res = []
for t, cfg in [('json-file', {'max-file': '100'}), ('', {'max-file': '100'}), ('json-file', None), ('none', None), ('local', None)]:
    c2 = c.create_container('busybox', ['true'], host_config=c.create_host_config(log_config=LogConfig(type=t, config=cfg)))
    res.append(c.inspect_container(c2)['HostConfig']['LogConfig'])
    c.remove_container(c2)
try:
    c.create_container('busybox', ['true'], host_config=c.create_host_config(log_config=LogConfig(type='asdf', config={})))
except docker.errors.APIError as e:
    res.append([e.status_code, e.explanation])
print(json.dumps(res))
`);
      expect(JSON.parse(out)).toEqual([
        { Type: 'json-file', Config: { 'max-file': '100' } },
        { Type: 'json-file', Config: { 'max-file': '100' } },
        { Type: 'json-file', Config: {} },
        { Type: 'none', Config: {} },
        { Type: 'local', Config: {} },
        [400, "logger: no log driver named 'asdf' is registered"],
      ]);
    });

    it('runs with --log-driver none (docker logs refused as dockerd does) and local (logs readable)', async () => {
      const none = await d.docker(['run', '-d', '--log-driver', 'none', 'busybox', 'sh', '-c', 'echo hidden; sleep 300']);
      const noneId = none.stdout.trim();
      try {
        expect(none.code).toBe(0);
        const logs = await d.docker(['logs', noneId]);
        expect(logs.code).not.toBe(0);
        expect(logs.stderr).toContain('configured logging driver does not support reading');
        expect(existsSync(join(d.dataRoot, 'containers', noneId, `${noneId}-json.log`))).toBe(false);
      } finally {
        await d.docker(['rm', '-f', noneId]);
      }
      const local = await d.docker(['run', '--name', 'compat-local-log', '--log-driver', 'local', 'busybox', 'sh', '-c', 'echo one; echo two >&2']);
      try {
        expect(local.stdout).toBe('one\n');
        const logs = await d.docker(['logs', 'compat-local-log']);
        expect(logs.stdout).toBe('one\n');
        expect(logs.stderr).toBe('two\n');
      } finally {
        await d.docker(['rm', '-f', 'compat-local-log']);
      }
    });

    it('honours json-file compress, labels, env and tag: a rotated .gz log and attrs in every entry', async () => {
      const r = await d.docker([
        'run', '--name', 'compat-gz', '--label', 'team=blue', '-e', 'STAGE=test',
        '--log-opt', 'max-size=2k', '--log-opt', 'max-file=3', '--log-opt', 'compress=true',
        '--log-opt', 'labels=team', '--log-opt', 'env=STAGE', '--log-opt', 'tag={{.Name}}',
        'busybox', 'sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done',
      ]);
      expect(r.code).toBe(0);
      try {
        const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'compat-gz'])).stdout.trim();
        const dir = join(d.dataRoot, 'containers', id);
        const files = readdirSync(dir).filter((f) => f.startsWith(`${id}-json.log`)).sort();
        expect(files).toEqual([`${id}-json.log`, `${id}-json.log.1.gz`, `${id}-json.log.2.gz`]);
        const rotated = gunzipSync(readFileSync(join(dir, `${id}-json.log.1.gz`))).toString().trim().split('\n');
        const entry = JSON.parse(rotated[0] ?? '{}') as { log: string; stream: string; attrs: Record<string, string>; time: string };
        expect(entry.attrs).toEqual({ STAGE: 'test', tag: 'compat-gz', team: 'blue' });
        expect(entry.log).toMatch(/^line \d+\n$/);
        // docker logs reads the compressed files too: the newest lines, in order, ending with the last
        const logs = (await d.docker(['logs', 'compat-gz'])).stdout.trim().split('\n');
        expect(logs.at(-1)).toBe('line 199');
        const nums = logs.map((l) => Number(l.split(' ')[1]));
        expect(nums).toEqual(nums.map((_, i) => (nums[0] ?? 0) + i));
        expect(logs.length).toBeGreaterThan(rotated.length);
      } finally {
        await d.docker(['rm', '-f', 'compat-gz']);
      }
    });
  });

  describe('restart policy and volume subpaths', () => {
    it('refuses to remove a restarting container without force (docker-py test_create_with_restart_policy)', async () => {
      const out = await dockerPy(`
c2 = c.create_container('busybox', ['sleep', '0'], host_config=c.create_host_config(restart_policy={"Name": "always", "MaximumRetryCount": 0}, network_mode="none"))
c.start(c2)
c.wait(c2)
res = []
try:
    c.remove_container(c2)
except docker.errors.APIError as e:
    res.append([e.status_code, e.explanation])
c.remove_container(c2, force=True)
print(json.dumps(res))
`);
      const [[status, message]] = JSON.parse(out) as [[number, string]];
      expect(status).toBe(409);
      expect(message).toMatch(/^You cannot remove a (restarting|running) container [0-9a-f]{64}\. Stop the container before attempting removal or force remove$/);
    });

    it('mounts a volume Subpath (API 1.45), confined to the volume, and refuses bad ones', async () => {
      const vol = 'compat-subpath';
      await d.docker(['volume', 'create', vol]);
      try {
        const seed = await d.docker(['run', '--rm', '-v', `${vol}:/v`, 'busybox', 'sh', '-c', 'mkdir -p /v/a/b && echo inside > /v/a/b/f && ln -s /etc /v/escape && echo top > /v/top']);
        expect(seed.code).toBe(0);
        const r = await d.docker(['run', '--rm', '--mount', `type=volume,src=${vol},dst=/data,volume-subpath=a/b`, 'busybox', 'sh', '-c', 'cat /data/f; ls /data']);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('inside\nf\n');
        const inspect = await d.request('POST', '/containers/create', {
          body: { Image: 'busybox', Cmd: ['true'], HostConfig: { Mounts: [{ Type: 'volume', Source: vol, Target: '/d', VolumeOptions: { Subpath: 'a' } }] } },
        });
        expect(inspect.status).toBe(201);
        await d.docker(['rm', inspect.json<{ Id: string }>().Id]);
        // An absolute symlink in the volume resolves inside the volume: /etc there does not exist.
        const esc = await d.docker(['run', '--rm', '--mount', `type=volume,src=${vol},dst=/data,volume-subpath=escape`, 'busybox', 'ls', '/data']);
        expect(esc.code).not.toBe(0);
        expect(esc.stderr).toContain('cannot access path');
        const missing = await d.docker(['run', '--rm', '--mount', `type=volume,src=${vol},dst=/data,volume-subpath=nope`, 'busybox', 'true']);
        expect(missing.stderr).toContain('cannot access path');
        const climb = await d.docker(['run', '--rm', '--mount', `type=volume,src=${vol},dst=/data,volume-subpath=../x`, 'busybox', 'true']);
        expect(climb.stderr).toContain('subpath must be a relative path within the volume');
        expect(existsSync(join(d.dataRoot, 'volume-subpaths'))).toBe(true);
        expect(readdirSync(join(d.dataRoot, 'volume-subpaths'))).toEqual([]);
        // The volume's data is intact after all of it.
        const after = await d.docker(['run', '--rm', '-v', `${vol}:/v`, 'busybox', 'cat', '/v/a/b/f', '/v/top']);
        expect(after.stdout).toBe('inside\ntop\n');
      } finally {
        await d.docker(['volume', 'rm', '-f', vol]);
      }
    });
  });

  describe('networks (docker-py api_network_test)', () => {
    // Four hex digits without a leading zero: the tag is an IPv6 group below, which addresses print without it.
    const tag = (0x1000 + Math.floor(Math.random() * 0xf000)).toString(16);

    it('shows IPAM Options as the client sent them: null when absent (docker-py), {} from the CLI; the bridge null', async () => {
      const out = await dockerPy(`
from docker.types import IPAMConfig, IPAMPool
n = c.create_network('cc-ipam-${tag}', ipam=IPAMConfig(driver='default', pool_configs=[IPAMPool(
    subnet='10.212.0.0/16', iprange='10.212.5.0/24', gateway='10.212.5.254', aux_addresses={'a': '10.212.1.5', 'b': '10.212.1.6'})]))
ipam = c.inspect_network(n['Id'])['IPAM']
c.remove_network(n['Id'])
print(json.dumps(ipam))
`);
      expect(JSON.parse(out)).toEqual({
        Driver: 'default', Options: null,
        Config: [{ Subnet: '10.212.0.0/16', IPRange: '10.212.5.0/24', Gateway: '10.212.5.254', AuxiliaryAddresses: { a: '10.212.1.5', b: '10.212.1.6' } }],
      });
      expect((await d.docker(['network', 'create', `cc-cli-${tag}`])).code).toBe(0);
      try {
        expect((await d.docker(['network', 'inspect', '--format', '{{json .IPAM.Options}}', `cc-cli-${tag}`, 'bridge'])).stdout.trim().split('\n')).toEqual(['{}', 'null']);
      } finally {
        await d.docker(['network', 'rm', `cc-cli-${tag}`]);
      }
    });

    it('takes a network name with a space: create, inspect and remove by that name', async () => {
      const out = await dockerPy(`
n = c.create_network('cc test ${tag}')
name = c.inspect_network('cc test ${tag}')['Name']
print(json.dumps([name, c.remove_network('cc test ${tag}')]))
`);
      expect(JSON.parse(out)).toEqual([`cc test ${tag}`, null]);
    });

    it('puts link-local IPs on the interface and reports them in IPAMConfig (create_endpoint_config(link_local_ips=…))', async () => {
      const out = await dockerPy(`
ct = c.create_container('busybox', ['sleep', '60'], host_config=c.create_host_config(network_mode='bridge'),
    networking_config=c.create_networking_config({'bridge': c.create_endpoint_config(link_local_ips=['169.254.8.8'])}))
try:
    c.start(ct)
    cfg = c.inspect_container(ct)['NetworkSettings']['Networks']['bridge']['IPAMConfig']
    e = c.exec_create(ct, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])
    addrs = c.exec_start(e).decode()
finally:
    c.remove_container(ct, force=True)
print(json.dumps([cfg, 'inet 169.254.8.8/16' in addrs]))
`);
      expect(JSON.parse(out)).toEqual([{ LinkLocalIPs: ['169.254.8.8'] }, true]);
    });

    it('creates IPv6 networks (EnableIPv6 with an IPv6 pool) and gives containers static IPv6 addresses at create and connect', async () => {
      const subnet = `2001:db8:${tag}::/64`;
      const out = await dockerPy(`
from docker.types import IPAMConfig, IPAMPool
n = c.create_network('cc-v6-${tag}', enable_ipv6=True, ipam=IPAMConfig(driver='default', pool_configs=[
    IPAMPool(subnet='${subnet}', iprange='2001:db8:${tag}::/96', gateway='2001:db8:${tag}::ffff')]))
res = {}
ct = None
try:
    net = c.inspect_network(n['Id'])
    res['enabled'] = net['EnableIPv6']
    res['v6config'] = [x for x in net['IPAM']['Config'] if ':' in x['Subnet']]
    ct = c.create_container('busybox', ['sleep', '60'], host_config=c.create_host_config(network_mode='cc-v6-${tag}'),
        networking_config=c.create_networking_config({'cc-v6-${tag}': c.create_endpoint_config(ipv6_address='2001:db8:${tag}::f00d')}))
    c.start(ct)
    ns = c.inspect_container(ct)['NetworkSettings']['Networks']['cc-v6-${tag}']
    res['create'] = [ns['IPAMConfig'], ns['GlobalIPv6Address'], ns['GlobalIPv6PrefixLen'], ns['IPv6Gateway'], bool(ns['IPAddress'])]
    e = c.exec_create(ct, ['sh', '-c', 'ip -6 -o addr show dev eth0; ping -c 1 -W 5 2001:db8:${tag}::ffff >/dev/null && echo gateway-reached'])
    res['inside'] = c.exec_start(e).decode()
    c.disconnect_container_from_network(ct, n['Id'])
    c.connect_container_to_network(ct, n['Id'], ipv6_address='2001:db8:${tag}::beef')
    ns = c.inspect_container(ct)['NetworkSettings']['Networks']['cc-v6-${tag}']
    res['connect'] = [ns['IPAMConfig'], ns['GlobalIPv6Address']]
    res['containers'] = [x['IPv6Address'] for x in c.inspect_network(n['Id'])['Containers'].values()]
finally:
    if ct: c.remove_container(ct, force=True)
    c.remove_network(n['Id'])
print(json.dumps(res))
`);
      const res = JSON.parse(out) as Record<string, unknown>;
      expect(res.enabled).toBe(true);
      expect(res.v6config).toEqual([{ Subnet: subnet, IPRange: `2001:db8:${tag}::/96`, Gateway: `2001:db8:${tag}::ffff` }]);
      expect(res.create).toEqual([{ IPv6Address: `2001:db8:${tag}::f00d` }, `2001:db8:${tag}::f00d`, 64, `2001:db8:${tag}::ffff`, true]);
      expect(res.inside).toContain(`inet6 2001:db8:${tag}::f00d/64`);
      expect(res.inside).toContain('gateway-reached');
      expect(res.connect).toEqual([{ IPv6Address: `2001:db8:${tag}::beef` }, `2001:db8:${tag}::beef`]);
      expect(res.containers).toEqual([`2001:db8:${tag}::beef/64`]);
    });

    it('refuses what it cannot do with IPv6 with a clear message', async () => {
      const noPool = await d.request('POST', '/networks/create', { body: { Name: `cc-v6x-${tag}`, EnableIPv6: true } });
      expect(noPool.status).toBe(400);
      expect(noPool.json()).toEqual({ message: 'Berth needs an IPv6 subnet for EnableIPv6 (--subnet)' });
      const notEnabled = await d.request('POST', '/networks/create', { body: { Name: `cc-v6x-${tag}`, IPAM: { Config: [{ Subnet: 'fd00:1::/64' }] } } });
      expect(notEnabled.status).toBe(400);
      const onBridge = await d.docker(['run', '--rm', '--ip6', '2001:db8::5', 'busybox', 'true']);
      expect(onBridge.stderr).toContain('user specified IP address is supported on user defined networks only');
    });

    it('resolves a link alias given on a user network for the linking container (create_endpoint_config(links=…), connect(links=…))', async () => {
      const out = await dockerPy(`
net = 'cc-links-${tag}'
n = c.create_network(net)
made = []
def run(name=None, **kw):
    ct = c.create_container('busybox', ['sleep', '60'], name=name, host_config=c.create_host_config(network_mode=net), **kw)
    made.append(ct)
    c.start(ct)
    return ct
def lookup(ct, name):
    e = c.exec_create(ct, ['nslookup', name])
    out = c.exec_start(e).decode()
    return [c.exec_inspect(e)['ExitCode'], out]
try:
    a = run(networking_config=c.create_networking_config({net: c.create_endpoint_config(links=[('cc-upstream-${tag}', 'bar')])}))
    b = run()
    c.disconnect_container_from_network(b, net)
    c.connect_container_to_network(b, net, links=[('cc-upstream-${tag}', 'baz')])
    up = run(name='cc-upstream-${tag}')
    ip = c.inspect_container(up)['NetworkSettings']['Networks'][net]['IPAddress']
    res = [c.inspect_container(a)['NetworkSettings']['Networks'][net]['Links'], ip, lookup(a, 'bar'), lookup(b, 'baz'), lookup(b, 'bar')[0]]
finally:
    for ct in made: c.remove_container(ct, force=True)
    c.remove_network(n['Id'])
print(json.dumps(res))
`);
      const [links, ip, viaCreate, viaConnect, notMine] = JSON.parse(out) as [string[], string, [number, string], [number, string], number];
      expect(links).toEqual([`cc-upstream-${tag}:bar`]);
      expect(viaCreate[0]).toBe(0);
      expect(viaCreate[1]).toContain(`Address: ${ip}`);
      expect(viaConnect[0]).toBe(0);
      expect(viaConnect[1]).toContain(`Address: ${ip}`);
      expect(notMine).not.toBe(0);
    });
  });
});
