import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { freePort } from '../helpers/registry.js';
import { loadBerthSpec, type BerthSpec } from '../helpers/api-spec.js';

/**
 * Schemathesis (PyPI, installed by scripts/install-schemathesis.sh into the tools cache) against a private berthd
 * with Berth's own OpenAPI document, api-spec/berth.yaml: BERTH_SCHEMATHESIS_EXAMPLES test cases per operation
 * (positive and negative), seeded (BERTH_SCHEMATHESIS_SEED). The check is schemathesis' not_a_server_error (no 5xx)
 * with a per-request timeout (no hang); then the daemon must still answer (no crash) and, once every container is
 * removed through the API, nothing of them may be left in the data root (no leak). Left out, as in api-fuzz: the
 * operations that reach the internet, the ones that stream until told to stop, and the hijacked ones.
 */
const EXAMPLES = Number(process.env.BERTH_SCHEMATHESIS_EXAMPLES ?? 15);
const SEED = Number(process.env.BERTH_SCHEMATHESIS_SEED ?? 20261205);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const EXCLUDED = [
  'ImageCreate', 'ImagePush', 'SystemAuth', 'ImageSearch', 'DistributionInspect', 'ImageBuild', 'Session', 'Grpc',
  'PluginPull', 'PluginUpgrade', 'SystemEvents', 'ContainerLogs', 'ContainerWait', 'ContainerStats',
  'ContainerAttach', 'ContainerAttachWebsocket', 'ExecStart',
  // A tar body (application/x-tar) schemathesis has no serializer for; api-fuzz sends it random bytes.
  'ImageLoad',
];
const PRUNES = ['ContainerPrune', 'ImagePrune', 'NetworkPrune', 'VolumePrune', 'BuildPrune'];

/**
 * schemathesis.toml, one entry per operation that needs one:
 * - the 5xx statuses berth.yaml documents for it are allowed (swarm's 503 "not a swarm manager", plugins' 501, as
 *   dockerd answers them); any other 5xx fails the run;
 * - path parameters naming a container, image, network or volume are the fixtures' IDs (random names only reach
 *   the 404), except for removals, which would take the fixture away from the rest of the run.
 */
function configFor(spec: BerthSpec, fixtures: Record<string, string>): string {
  const lines: string[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!op?.operationId) continue;
      const documented = Object.keys(op.responses ?? {}).filter((s) => /^5\d\d$/.test(s));
      const area = /^\/(\w+)\/\{(\w+)\}/.exec(path);
      const fixture = area && method !== 'delete' ? fixtures[area[1] ?? ''] : undefined;
      if (documented.length === 0 && !fixture) continue;
      lines.push('[[operations]]', `include-operation-id = "${op.operationId}"`);
      if (documented.length > 0) lines.push(`checks.not_a_server_error.expected-statuses = ${JSON.stringify(['2xx', '3xx', '4xx', ...documented])}`);
      if (fixture && area) lines.push(`parameters = { "path.${area[2]}" = "${fixture}" }`);
      lines.push('');
    }
  }
  return lines.join('\n');
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A Swagger 2 schema of Docker's spec as an OpenAPI 3.1 one among berth.yaml's components (`Docker_<name>`). */
function fromDocker(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(fromDocker);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k.startsWith('x-')) continue;
    out[k] = k === '$ref' && typeof v === 'string' ? v.replace('#/definitions/', '#/components/schemas/Docker_') : fromDocker(v);
  }
  return out;
}

/**
 * The document schemathesis runs from: berth.yaml (which operations exist, what they may answer), with each JSON
 * request body's schema taken from Docker's spec (berth.yaml documents bodies as plain objects; Berth validates them
 * against Docker's). A container's Image is present and often the loaded busybox, so creates get past the image lookup.
 */
function fuzzDocument(spec: BerthSpec): string {
  const docker = JSON.parse(readFileSync(join(REPO, 'dist/api/docker-engine-api-v1.50.json'), 'utf8')) as {
    definitions: Record<string, Json>;
    paths: Record<string, Record<string, { parameters?: { in: string; schema?: Json }[] }>>;
  };
  const doc = JSON.parse(JSON.stringify(spec)) as BerthSpec & { components: { schemas: Record<string, Json> } };
  for (const [name, def] of Object.entries(docker.definitions)) doc.components.schemas[`Docker_${name}`] = fromDocker(def);
  const config = doc.components.schemas.Docker_ContainerConfig as { properties: Record<string, Json>; required?: Json };
  config.properties.Image = { anyOf: [{ enum: ['busybox', 'busybox:latest'] }, { type: 'string', minLength: 1 }] };
  // Without an Image every create ends at "Config cannot be empty": generated configs carry one.
  config.required = ['Image'];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item) as [string, { requestBody?: { content?: Record<string, { schema?: Json }> } }][]) {
      const json = op.requestBody?.content?.['application/json'];
      const body = docker.paths[path]?.[method]?.parameters?.find((p) => p.in === 'body')?.schema;
      if (json && body) json.schema = fromDocker(body);
    }
  }
  return JSON.stringify(doc);
}

describe('schemathesis against api-spec/berth.yaml', () => {
  let d: TestDaemon;
  let port: number;
  let st: string;
  let work: string;
  let fixtures: Record<string, string>;
  beforeAll(async () => {
    st = execFileSync(join(REPO, 'scripts/install-schemathesis.sh'), { encoding: 'utf8' }).trim();
    port = await freePort();
    d = await startDaemon({ extraArgs: ['--host', `tcp://127.0.0.1:${port}`, '--tls=false'] });
    work = mkdtempSync(join(d.dir, 'st-'));
    expect((await d.docker(['load', '-i', await busyboxImageTar()])).code).toBe(0);
    expect((await d.docker(['create', '--name', 'fuzzbox', 'busybox', 'true'])).code).toBe(0);
    expect((await d.docker(['volume', 'create', 'fuzzvol'])).code).toBe(0);
    expect((await d.docker(['network', 'create', 'fuzznet'])).code).toBe(0);
    const id = async (args: string[]): Promise<string> => (await d.docker(args)).stdout.trim();
    fixtures = {
      containers: await id(['inspect', '--format', '{{.Id}}', 'fuzzbox']),
      images: await id(['image', 'inspect', '--format', '{{.Id}}', 'busybox']),
      networks: await id(['network', 'inspect', '--format', '{{.Id}}', 'fuzznet']),
      volumes: 'fuzzvol',
    };
  }, 300_000);
  afterAll(async () => {
    await d?.stop();
  });

  it(`finds no 5xx, hang, crash or leaked container (${EXAMPLES} examples per operation, seed ${SEED})`, { timeout: 20 * 60_000 }, async () => {
    writeFileSync(join(work, 'schemathesis.toml'), configFor(loadBerthSpec(), fixtures));
    writeFileSync(join(work, 'berth-fuzz.json'), fuzzDocument(loadBerthSpec()));
    // Two passes: the prunes last, as they take the stopped fixture container (and what it holds) with them.
    const passes: { name: string; filter: string[] }[] = [
      { name: 'all-but-prunes', filter: [...EXCLUDED, ...PRUNES].flatMap((id) => ['--exclude-operation-id', id]) },
      { name: 'prunes', filter: PRUNES.flatMap((id) => ['--include-operation-id', id]) },
    ];
    for (const pass of passes) {
      const junit = join(work, `${pass.name}.xml`);
      const har = process.env.BERTH_SCHEMATHESIS_HAR ? `${process.env.BERTH_SCHEMATHESIS_HAR}.${pass.name}.har` : undefined;
      const args = [
        '--config-file', join(work, 'schemathesis.toml'),
        'run', join(work, 'berth-fuzz.json'),
        '--url', `http://127.0.0.1:${port}`,
        '--checks', 'not_a_server_error',
        '--max-examples', String(EXAMPLES),
        '--seed', String(SEED),
        '--phases', 'examples,coverage,fuzzing',
        // One worker: hypothesis' lambda descriptions call ast.parse, which is not thread-safe on CPython 3.11.
        '--workers', '1',
        '--request-timeout', '30',
        '--suppress-health-check', 'all',
        '--no-shrink',
        '--report', har ? 'junit,har' : 'junit',
        '--report-junit-path', junit,
        ...(har ? ['--report-har-path', har] : []),
        ...pass.filter,
      ];
      const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
        const p = spawn(st, args, { cwd: work, env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_TELEMETRY: 'false' } });
        let text = '';
        p.stdout.on('data', (c: Buffer) => (text += c.toString()));
        p.stderr.on('data', (c: Buffer) => (text += c.toString()));
        p.on('close', (code) => resolve({ code, text }));
      });
      if (process.env.BERTH_SCHEMATHESIS_VERBOSE) console.log(out.text);
      expect(out.code, `${pass.name}: ${out.text.slice(-20_000)}`).toBe(0);
      expect(readFileSync(junit, 'utf8')).not.toMatch(/<failure|<error/);
    }

    // No crash: the daemon answers.
    expect(d.process?.exitCode).toBeNull();
    expect((await d.request('GET', '/_ping')).status).toBe(200);
    // No leaked container: removing every container through the API leaves nothing of them in the data root.
    for (const c of (await d.request('GET', '/containers/json?all=1')).json<{ Id: string }[]>()) {
      expect([204, 404]).toContain((await d.request('DELETE', `/containers/${c.Id}?force=1&v=1`)).status);
    }
    expect((await d.request('GET', '/containers/json?all=1')).json<unknown[]>()).toEqual([]);
    expect(readdirSync(join(d.dataRoot, 'containers'))).toEqual([]);
    // Networks the run created (bridges on this host) and volumes go too.
    for (const n of (await d.request('GET', '/networks')).json<{ Name: string }[]>()) {
      if (!['bridge', 'host', 'none'].includes(n.Name)) await d.request('DELETE', `/networks/${encodeURIComponent(n.Name)}`);
    }
    await d.request('POST', '/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D');
    rmSync(work, { recursive: true, force: true });
  });
});
