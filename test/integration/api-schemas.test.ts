import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';

// Request bodies are checked against Docker's v1.50 spec as Go's JSON decoder would check them.
describe('API request schemas', () => {
  let d: TestDaemon;
  const created: string[] = [];
  beforeAll(async () => {
    d = await startDaemon();
    expect((await d.docker(['load', '-i', await busyboxImageTar()])).code).toBe(0);
  });
  afterAll(async () => {
    if (created.length > 0) await d.docker(['rm', '-f', ...created]);
    await d.docker(['network', 'rm', 'schemanet']);
    await d.stop();
  });

  async function refused(method: string, path: string, body: unknown): Promise<string> {
    const r = await d.request(method, path, { body });
    expect(r.status, r.text()).toBe(400);
    expect(r.headers['content-type']).toBe('application/json');
    return r.json<{ message: string }>().message;
  }

  it('refuses numbers where Env wants strings with 400, not 500', async () => {
    expect(await refused('POST', '/containers/create', { Image: 'busybox', Env: [1, 2] })).toBe(
      'json: cannot unmarshal number into Go struct field ContainerCreate.Env of type string',
    );
  });

  it('refuses a string CpuShares', async () => {
    expect(await refused('POST', '/v1.50/containers/create', { Image: 'busybox', HostConfig: { CpuShares: 'x' } })).toBe(
      'json: cannot unmarshal string into Go struct field ContainerCreate.HostConfig.CpuShares of type int',
    );
  });

  it('refuses wrong types deep in HostConfig, labels and endpoint settings', async () => {
    expect(await refused('POST', '/containers/create', { Image: 'busybox', Labels: { a: 1 } })).toMatch(/ContainerCreate\.Labels of type string$/);
    expect(await refused('POST', '/containers/create', { Image: 'busybox', HostConfig: { PortBindings: { '80/tcp': [{ HostPort: 8080 }] } } })).toMatch(
      /HostConfig\.PortBindings\.HostPort of type string$/,
    );
    expect(await refused('POST', '/containers/create', { Image: 'busybox', HostConfig: { Privileged: 'yes' } })).toMatch(/of type bool$/);
    expect(await refused('POST', '/containers/create', { Image: 'busybox', Cmd: 5 })).toMatch(/ContainerCreate\.Cmd of type strslice\.StrSlice$/);
    expect(await refused('POST', '/containers/create', [1])).toBe('json: cannot unmarshal array into Go value of type ContainerCreate');
  });

  // schemathesis finding: CpuQuota -9223372036854775808 was stored, then written to cpu.cfs_quota_us as
  // "-9223372036854776000" (a double's digits), and start and restart answered 500 ERANGE.
  it('refuses integers beyond Go\'s 64 bits (and the int64 minimum a double cannot print) at create and update', async () => {
    expect(await refused('POST', '/containers/create', { Image: 'busybox', HostConfig: { CpuQuota: -9223372036854775808 } })).toBe(
      'json: cannot unmarshal number -9223372036854776000 into Go struct field ContainerCreate.HostConfig.CpuQuota of type int64',
    );
    expect(await refused('POST', '/containers/create', { Image: 'busybox', HostConfig: { Memory: 1e300 } })).toMatch(
      /^json: cannot unmarshal number 1e\+300 into Go struct field ContainerCreate\.HostConfig\.Memory of type int64$/,
    );
    const r = await d.request('POST', '/containers/create?name=schemarange', { body: { Image: 'busybox', Cmd: ['true'] } });
    expect(r.status, r.text()).toBe(201);
    created.push('schemarange');
    expect(await refused('POST', '/containers/schemarange/update', { CpuQuota: -9223372036854775808 })).toMatch(/CpuQuota of type int64$/);
    // Values Go takes pass validation; one the kernel refuses when the container starts is a 400 with the kernel's
    // word, not a 500 (schemathesis: pids.max EINVAL), and the container can start once the limit is fixed.
    const big = await d.request('POST', '/containers/schemarange/update', { body: { CpuQuota: -1, PidsLimit: 9007199254740991 } });
    expect(big.status, big.text()).toBe(200);
    const refusedStart = await d.request('POST', '/containers/schemarange/start');
    expect(refusedStart.status, refusedStart.text()).toBe(400);
    expect(refusedStart.json<{ message: string }>().message).toMatch(/pids\.max: EINVAL/);
    expect((await d.request('POST', '/containers/schemarange/update', { body: { PidsLimit: 100 } })).status).toBe(200);
    const started = await d.request('POST', '/containers/schemarange/start');
    expect(started.status, started.text()).toBe(204);
    // An integer query parameter beyond what a number holds exactly is refused too.
    const stop = await d.request('POST', '/containers/schemarange/stop?t=99999999999999999999');
    expect(stop.status).toBe(400);
    expect(stop.json()).toEqual({ message: 'invalid value for t: 99999999999999999999' });
  });

  it('takes a string Cmd and Entrypoint as one-element lists, and null anywhere', async () => {
    const r = await d.request('POST', '/containers/create?name=schemacmd', {
      body: { Image: 'busybox', Cmd: 'hello', Entrypoint: 'echo', Env: null, HostConfig: { Binds: null, Memory: null }, Labels: null },
    });
    expect(r.status, r.text()).toBe(201);
    created.push('schemacmd');
    const info = (await d.request('GET', '/containers/schemacmd/json')).json<{ Config: { Cmd: string[]; Entrypoint: string[] } }>();
    expect(info.Config.Cmd).toEqual(['hello']);
    expect(info.Config.Entrypoint).toEqual(['echo']);
  });

  it('matches field names case-insensitively as Go does, then checks them under the spec names (docker-py sends CPURealtimePeriod)', async () => {
    const r = await d.request('POST', '/containers/create?name=schemacase', {
      body: { image: 'busybox', CMD: 'hello', HostConfig: { CPURealtimePeriod: 1000, CPURealtimeRuntime: 500, memory: 8000000 }, Labels: { lower: 'kept' } },
    });
    expect(r.status, r.text()).toBe(201);
    created.push('schemacase');
    const info = (await d.request('GET', '/containers/schemacase/json')).json<{ Config: { Cmd: string[]; Labels: Record<string, string> }; HostConfig: Record<string, unknown> }>();
    expect(info.Config.Cmd).toEqual(['hello']);
    expect(info.Config.Labels).toEqual({ lower: 'kept' });
    expect([info.HostConfig.CpuRealtimePeriod, info.HostConfig.CpuRealtimeRuntime, info.HostConfig.Memory]).toEqual([1000, 500, 8000000]);
    expect(info.HostConfig).not.toHaveProperty('CPURealtimePeriod');
    expect(await refused('POST', '/containers/create', { Image: 'busybox', HostConfig: { cpurealtimeperiod: 'x' } })).toMatch(/HostConfig\.CpuRealtimePeriod of type int64$/);
  });

  it('checks exec, network and volume bodies too', async () => {
    expect(await refused('POST', '/containers/schemacmd/exec', { Cmd: 'ls' })).toMatch(/of type \[\]string$/);
    expect(await refused('POST', '/networks/create', { Name: 'schemanet', Options: { a: 1 } })).toMatch(/Options of type string$/);
    expect(await refused('POST', '/volumes/create', { Name: 'schemavol', Labels: [] })).toMatch(/Labels of type map\[string\]string$/);
    expect((await d.request('POST', '/networks/create', { body: { Name: 'schemanet', Options: {} } })).status).toBe(201);
  });

  it('leaves query strings to the routes: all=1 still lists everything', async () => {
    const r = await d.request('GET', '/containers/json?all=1&filters=%7B%7D');
    expect(r.status).toBe(200);
    expect(r.json<unknown[]>().length).toBeGreaterThan(0);
  });
});
