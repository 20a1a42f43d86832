import { mkdirSync, writeFileSync } from 'node:fs';
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

    async function runningSleeps(): Promise<number> {
      const top = await d.docker(['top', id]);
      return top.stdout.split('\n').filter((l) => l.includes('sleep 300')).length;
    }

    it('detaches from exec -it with Ctrl-P Ctrl-Q, leaving the process running', async () => {
      const before = await runningSleeps();
      expectDetached(await execInPty('1011'));
      expect(await runningSleeps()).toBe(before + 1);
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
});
