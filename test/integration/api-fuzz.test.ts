import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { loadBerthSpec } from '../helpers/api-spec.js';
import { Rng, SchemaFuzzer, type Json } from '../helpers/fuzz.js';

/**
 * Property-based fuzzing of every operation in Berth's own spec: BERTH_FUZZ_EXAMPLES requests per operation
 * (default 8, five times that for JSON bodies; bounded so the run fits CI), drawn from a seeded generator (BERTH_FUZZ_SEED replays a run).
 * The properties: no 5xx the spec does not document for the operation (never a 500), no request left hanging,
 * the daemon still alive at the end, and once every container is removed through the API nothing of them is
 * left in the data root.
 */
const EXAMPLES = Number(process.env.BERTH_FUZZ_EXAMPLES ?? 8);
const SEED = Number(process.env.BERTH_FUZZ_SEED ?? 20261205);
const REQUEST_TIMEOUT_MS = 30_000;

/** Left out: they reach the internet (pull, push, login, search, remote build contexts), or stream until told to stop. */
const SKIP = new Set([
  'POST /images/create',
  'POST /images/{name}/push',
  'POST /auth',
  'GET /images/search',
  'GET /distribution/{name}/json',
  'POST /build',
  'POST /session',
  'POST /grpc',
  'POST /plugins/pull',
  'POST /plugins/{name}/upgrade',
  'GET /events',
  'GET /containers/{id}/logs',
  'POST /containers/{id}/wait',
  'GET /containers/{id}/stats',
]);

type Param = { name: string; in: string; schema?: Record<string, unknown>; $ref?: string };
type Op = {
  operationId?: string;
  parameters?: Param[];
  requestBody?: { content?: Record<string, { schema?: Record<string, unknown> }> };
  responses?: Record<string, unknown>;
  'x-hijack'?: boolean;
};

interface Finding {
  request: string;
  status: number | string;
  answer: string;
}

describe('property-based fuzzing against api-spec/berth.yaml', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
    expect((await d.docker(['load', '-i', await busyboxImageTar()])).code).toBe(0);
    expect((await d.docker(['create', '--name', 'fuzzbox', 'busybox', 'true'])).code).toBe(0);
    expect((await d.docker(['volume', 'create', 'fuzzvol'])).code).toBe(0);
    expect((await d.docker(['network', 'create', 'fuzznet'])).code).toBe(0);
  });
  afterAll(async () => {
    await d.stop();
  });

  it(`finds no 5xx, hang, crash or leaked container (${EXAMPLES} examples per operation, seed ${SEED})`, { timeout: 20 * 60_000 }, async () => {
    const spec = loadBerthSpec() as unknown as { paths: Record<string, Record<string, Op>>; components: Record<string, Record<string, Record<string, unknown>>> };
    // Request shapes come from Docker's spec, which Berth validates requests against (the build leaves it as JSON);
    // berth.yaml says which operations exist and which statuses each may answer.
    const docker = JSON.parse(readFileSync(new URL('../../dist/api/docker-engine-api-v1.50.json', import.meta.url), 'utf8')) as {
      definitions: Record<string, Record<string, unknown>>;
      paths: Record<string, Record<string, { parameters?: { name: string; in: string; type?: string; schema?: Record<string, unknown> }[] }>>;
    };
    const dockerParams = (method: string, path: string): { name: string; in: string; type?: string; schema?: Record<string, unknown> }[] =>
      docker.paths[path]?.[method.toLowerCase()]?.parameters ?? [];
    const known = ['fuzzbox', 'busybox', 'busybox:latest', 'bridge', 'host', 'none', 'fuzznet', 'fuzzvol', 'sha256:0000'];
    const rng = new Rng(SEED);
    const fz = new SchemaFuzzer(rng, { ...spec.components, definitions: docker.definitions }, known, { Image: ['busybox'], Container: ['fuzzbox'] });
    const ops: { method: string; path: string; op: Op }[] = [];
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [m, op] of Object.entries(item)) {
        const method = m.toUpperCase();
        if (!['GET', 'HEAD', 'POST', 'PUT', 'DELETE'].includes(method) || op['x-hijack'] || SKIP.has(`${method} ${path}`)) continue;
        ops.push({ method, path, op });
      }
    }
    // Reads first, then writes, then removals and prunes, so the fixtures serve most of the run.
    const rank = (o: { method: string; path: string }): number =>
      o.path.endsWith('/prune') ? 3 : o.method === 'DELETE' ? 2 : o.method === 'GET' || o.method === 'HEAD' ? 0 : 1;
    ops.sort((a, b) => rank(a) - rank(b));
    const resolveParam = (p: Param): Param => {
      if (!p.$ref) return p;
      const name = p.$ref.split('/').pop() ?? '';
      return (spec.components.parameters?.[name] as unknown as Param | undefined) ?? p;
    };

    const findings: Finding[] = [];
    let sent = 0;
    const statuses = new Map<number, number>();
    let created = 0;
    for (const { method, path, op } of ops) {
      const params = (op.parameters ?? []).map(resolveParam);
      // JSON bodies have the most room for mistakes: they get five times the examples.
      const examples = op.requestBody?.content?.['application/json'] ? EXAMPLES * 5 : EXAMPLES;
      for (let i = 0; i < examples; i++) {
        let url = path.replace(/\{([^}]+)\}/g, () => encodeURIComponent(fz.string() || 'x'));
        const q = new URLSearchParams();
        const dparams = dockerParams(method, path);
        const qparams = dparams.length > 0 ? dparams.filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema ?? { type: p.type } })) : params.filter((p) => p.in === 'query');
        for (const p of qparams) if (rng.chance(0.3)) q.append(p.name, fz.queryValue(p.schema));
        if (path === '/containers/create') q.set('name', `fuzz-${created++}`);
        if (rng.chance(0.2)) url = `/v1.${rng.int(24, 50)}${url}`;
        const qs = q.toString();
        const headers: Record<string, string> = {};
        let body: string | Buffer | undefined;
        const content = op.requestBody?.content ?? {};
        if (content['application/json']) {
          headers['content-type'] = 'application/json';
          const dbody = dparams.find((p) => p.in === 'body')?.schema;
          body = rng.chance(0.05) ? '{"Image":' : JSON.stringify(fz.value(dbody ?? content['application/json'].schema) as Json);
        } else if (Object.keys(content).length > 0) {
          headers['content-type'] = Object.keys(content)[0] ?? 'application/octet-stream';
          body = Buffer.from(Array.from({ length: rng.int(0, 2048) }, () => rng.int(0, 255)));
        }
        const target = `${method} ${url}${qs ? `?${qs}` : ''}`;
        sent++;
        try {
          const res = await request(`http://localhost${url}${qs ? `?${qs}` : ''}`, {
            method: method as 'GET',
            headers,
            body,
            dispatcher: d.agent,
            signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          });
          const answer = Buffer.from(await res.body.arrayBuffer()).subarray(0, 300).toString();
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          const documented = Object.keys(op.responses ?? {}).includes(String(res.statusCode));
          if (res.statusCode === 500 || (res.statusCode > 500 && !documented)) {
            findings.push({ request: `${target} ${typeof body === 'string' ? body.slice(0, 400) : ''}`, status: res.statusCode, answer });
          }
        } catch (e) {
          findings.push({ request: `${target} ${typeof body === 'string' ? body.slice(0, 400) : ''}`, status: (e as Error).name, answer: (e as Error).message });
        }
      }
    }
    expect(sent).toBeGreaterThan(ops.length * EXAMPLES);
    expect(findings, JSON.stringify(findings, null, 1)).toEqual([]);
    // Enough requests must get past routing and validation, or the run proves little.
    const ok = [...statuses].filter(([s]) => s < 300).reduce((n, [, c]) => n + c, 0);
    expect(ok, JSON.stringify([...statuses])).toBeGreaterThan(sent * 0.08);
    if (process.env.BERTH_FUZZ_VERBOSE) console.log(JSON.stringify([...statuses].sort()));

    // No crash: the daemon answers.
    expect(d.process?.exitCode).toBeNull();
    expect((await d.request('GET', '/_ping')).status).toBe(200);
    // No leaked container: removing every container through the API leaves nothing of them in the data root.
    const all = (await d.request('GET', '/containers/json?all=1')).json<{ Id: string }[]>();
    for (const c of all) {
      const r = await d.request('DELETE', `/containers/${c.Id}?force=1&v=1`);
      expect([204, 404]).toContain(r.status);
    }
    expect((await d.request('GET', '/containers/json?all=1')).json<unknown[]>()).toEqual([]);
    const left = readdirSync(join(d.dataRoot, 'containers'));
    expect(left).toEqual([]);
    // Networks the run created (bridges on this host) go too.
    for (const n of (await d.request('GET', '/networks')).json<{ Name: string }[]>()) {
      if (!['bridge', 'host', 'none'].includes(n.Name)) await d.request('DELETE', `/networks/${encodeURIComponent(n.Name)}`);
    }
    await d.request('POST', '/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D');
  });
});
