import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';

/**
 * Behaviours the clients' own test suites (docker-py tests/integration, dockerode test/) exposed; each is checked
 * here the way the client calls it, because CI cannot run those suites.
 */
describe('client compatibility', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
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
});
