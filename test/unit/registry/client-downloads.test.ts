import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ContentStore, DigestMismatchError } from '../../../src/content/content-store.js';
import { createLogger } from '../../../src/util/logger.js';
import { RegistryAuth } from '../../../src/registry/auth.js';
import { RepositoryClient } from '../../../src/registry/client.js';
import { BlobDownloader, type DownloadEvent } from '../../../src/registry/downloads.js';
import type { Endpoint } from '../../../src/registry/hosts.js';
import { Limiter } from '../../../src/registry/limiter.js';

const log = createLogger('silent');
const blob = Buffer.alloc(1 << 20);
for (let i = 0; i < blob.length; i++) blob[i] = (i * 7919) & 0xff;
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface Fake {
  server: Server;
  origin: string;
  handler: Handler;
  seen: { method: string; url: string; headers: IncomingMessage['headers'] }[];
}

async function fake(): Promise<Fake> {
  const f: Fake = { server: createServer((req, res) => {
    f.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    f.handler(req, res);
  }), origin: '', handler: () => undefined, seen: [] };
  await new Promise<void>((r) => f.server.listen(0, '127.0.0.1', r));
  const a = f.server.address();
  f.origin = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  return f;
}

/** Serves the blob with Range support; `cut` bytes into the first full GET the connection is dropped. */
function blobServer(cutAt: number | undefined, honourRange = true): Handler {
  let cut = cutAt;
  return (req, res) => {
    if (req.url === '/v2/') return void res.writeHead(200).end('{}');
    if (req.url !== `/v2/demo/x/blobs/${digest}`) return void res.writeHead(404).end();
    const m = honourRange ? /^bytes=(\d+)-$/.exec(req.headers.range ?? '') : null;
    const start = m ? Number(m[1]) : 0;
    const body = blob.subarray(start);
    res.writeHead(m ? 206 : 200, { 'content-length': body.length, ...(m ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}) });
    if (cut !== undefined) {
      const n = cut;
      cut = undefined;
      res.write(body.subarray(0, n), () => res.destroy());
      return;
    }
    res.end(body);
  };
}

let dir: string;
let content: ContentStore;
const agent = new Agent();
const servers: Fake[] = [];

function endpoint(f: Fake): Endpoint {
  return { origin: f.origin, registry: new URL(f.origin).host, mirror: false, insecure: true, dispatcher: agent };
}

function downloader(): BlobDownloader {
  return new BlobDownloader(content, join(dir, 'partial'), new Limiter(3), log, { backoffMs: 1 });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-regunit-'));
});
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.server.closeAllConnections();
    await new Promise((r) => s.server.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
  dir = mkdtempSync(join(tmpdir(), 'berth-regunit-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await agent.close();
});

async function setup(handler: Handler): Promise<{ f: Fake; client: RepositoryClient }> {
  const f = await fake();
  servers.push(f);
  f.handler = handler;
  content = new ContentStore(join(dir, 'root'));
  return { f, client: new RepositoryClient(endpoint(f), 'demo/x', new RegistryAuth(log), { kind: 'anonymous' }, ['pull'], log) };
}

describe('BlobDownloader', () => {
  it('resumes an interrupted download with Range and verifies the whole blob', async () => {
    const { f, client } = await setup(blobServer(300_000));
    const events: DownloadEvent[] = [];
    await downloader().fetch(client, { mediaType: 'x', digest, size: blob.length }, (e) => events.push(e));
    expect(content.has(digest)).toBe(true);
    expect(content.read(digest).equals(blob)).toBe(true);
    const gets = f.seen.filter((s) => s.url.includes('/blobs/'));
    expect(gets).toHaveLength(2);
    expect(gets[0]?.headers.range).toBeUndefined();
    expect(gets[1]?.headers.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(gets[1]?.headers.range ?? '')?.[0])).toBeGreaterThan(0);
    expect(events.map((e) => e.kind)).toContain('retrying');
    expect(events.at(-2)?.kind).toBe('verifying');
    expect(events.at(-1)?.kind).toBe('complete');
    expect(readdirSync(join(dir, 'partial'))).toEqual([]);
  });

  it('a partial file left by an earlier (failed) pull is continued by the next one', async () => {
    const { f, client } = await setup(blobServer(400_000));
    const d = new BlobDownloader(content, join(dir, 'partial'), new Limiter(1), log, { attempts: 1, backoffMs: 1 });
    await expect(d.fetch(client, { mediaType: 'x', digest, size: blob.length }, () => undefined)).rejects.toThrow();
    expect(content.has(digest)).toBe(false);
    expect(readdirSync(join(dir, 'partial'))).toEqual([digest.slice(7)]);
    await d.fetch(client, { mediaType: 'x', digest, size: blob.length }, () => undefined);
    expect(content.read(digest).equals(blob)).toBe(true);
    expect(f.seen.filter((s) => s.url.includes('/blobs/')).at(-1)?.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('starts over when the registry ignores Range', async () => {
    const { client } = await setup(blobServer(200_000, false));
    await downloader().fetch(client, { mediaType: 'x', digest, size: blob.length }, () => undefined);
    expect(content.read(digest).equals(blob)).toBe(true);
  });

  it('refuses content that does not match the digest and keeps nothing', async () => {
    const wrong = `sha256:${'1'.repeat(64)}`;
    const { client } = await setup((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      res.writeHead(200, { 'content-length': blob.length }).end(blob);
    });
    await expect(downloader().fetch(client, { mediaType: 'x', digest: wrong, size: blob.length }, () => undefined)).rejects.toThrow(DigestMismatchError);
    expect(content.has(wrong)).toBe(false);
    expect(readdirSync(join(dir, 'partial'))).toEqual([]);
  });

  it('downloads a blob once for concurrent callers', async () => {
    const { f, client } = await setup(blobServer(undefined));
    const d = downloader();
    const desc = { mediaType: 'x', digest, size: blob.length };
    await Promise.all([d.fetch(client, desc, () => undefined), d.fetch(client, desc, () => undefined), d.fetch(client, desc, () => undefined)]);
    expect(f.seen.filter((s) => s.url.includes('/blobs/'))).toHaveLength(1);
  });

  it('follows a redirect to another origin without sending the registry credentials there', async () => {
    const storage = await fake();
    servers.push(storage);
    storage.handler = (_req, res) => void res.writeHead(200, { 'content-length': blob.length }).end(blob);
    const { f } = await setup((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      if (req.headers.authorization !== `Basic ${Buffer.from('u:p').toString('base64')}`) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      res.writeHead(307, { location: `${storage.origin}/bucket/blob?sig=1` }).end();
    });
    const client = new RepositoryClient(endpoint(f), 'demo/x', new RegistryAuth(log), { kind: 'basic', username: 'u', password: 'p' }, ['pull'], log);
    await downloader().fetch(client, { mediaType: 'x', digest, size: blob.length }, () => undefined);
    expect(content.has(digest)).toBe(true);
    expect(storage.seen[0]?.url).toBe('/bucket/blob?sig=1');
    expect(storage.seen[0]?.headers.authorization).toBeUndefined();
  });
});

describe('bearer tokens', () => {
  it('reuses a cached token per scope and fetches a new one when the registry rejects it', async () => {
    let issued = 0;
    let valid = 'none';
    const tokenServer = await fake();
    servers.push(tokenServer);
    tokenServer.handler = (_req, res) => {
      issued++;
      valid = `tok${issued}`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: valid, expires_in: 300 }));
    };
    const challenge = (): string => `Bearer realm="${tokenServer.origin}/token",service="fake",scope="repository:demo/x:pull"`;
    const { f } = await setup((req, res) => {
      if (req.headers.authorization !== `Bearer ${valid}`) return void res.writeHead(401, { 'www-authenticate': challenge() }).end();
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' }).end('{"schemaVersion":2}');
    });
    const auth = new RegistryAuth(log);
    const client = (): RepositoryClient => new RepositoryClient(endpoint(f), 'demo/x', auth, { kind: 'anonymous' }, ['pull'], log);
    await client().getManifest('1');
    await client().getManifest('2');
    expect(issued).toBe(1);
    expect(new URL(tokenServer.seen[0]?.url ?? '', 'http://x').searchParams.getAll('scope')).toEqual(['repository:demo/x:pull']);
    valid = 'rotated';
    await client().getManifest('3');
    expect(issued).toBe(2);
    expect(f.seen.filter((s) => s.url.includes('/manifests/3'))).toHaveLength(2);
  });

  it('reports the registry\'s 401 when no credentials can answer a Basic challenge', async () => {
    const { f } = await setup((_req, res) => void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"', 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'));
    const client = new RepositoryClient(endpoint(f), 'demo/x', new RegistryAuth(log), { kind: 'anonymous' }, ['pull'], log);
    await expect(client.getManifest('1')).rejects.toThrow('unauthorized: authentication required');
    expect(existsSync(dir)).toBe(true);
  });
});
