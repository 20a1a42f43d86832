import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { MiB, peakGrowth } from '../helpers/memory.js';

/** What a hostile registry sends where an honest one sends a few hundred bytes. */
const ENDLESS = 256 * MiB;

/** Writes up to `total` bytes, honouring backpressure, until the client hangs up; returns what was written. */
async function endless(res: ServerResponse, total = ENDLESS): Promise<number> {
  const chunk = Buffer.alloc(MiB, 0x7b); // '{', never valid JSON
  let sent = 0;
  let gone = false;
  res.once('close', () => (gone = true));
  while (sent < total && !gone) {
    if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    sent += chunk.length;
  }
  res.end();
  return sent;
}

/** A registry on 127.0.0.1 (insecure by default, reached over plain HTTP) answering with `handle`. */
class HostileRegistry {
  /** Bytes of hostile bodies written before the client hung up. */
  served = 0;
  readonly paths: string[] = [];
  private constructor(private readonly server: Server) {}

  static async start(handle: (req: IncomingMessage, res: ServerResponse, self: HostileRegistry) => Promise<void>): Promise<HostileRegistry> {
    let self: HostileRegistry | undefined;
    const server = createServer((req, res) => {
      if (!self) return;
      self.paths.push(`${req.method} ${req.url}`);
      handle(req, res, self).catch(() => res.destroy());
    });
    self = new HostileRegistry(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return self;
  }

  get host(): string {
    const a = this.server.address();
    return `127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  }

  async endless(res: ServerResponse, status: number, type = 'application/json'): Promise<void> {
    res.writeHead(status, { 'content-type': type, 'docker-distribution-api-version': 'registry/2.0' });
    this.served += await endless(res);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function ok(res: ServerResponse, body: string, type = 'application/json'): void {
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'docker-distribution-api-version': 'registry/2.0' });
  res.end(body);
}

// Each hostile registry answers one request with a 256 MiB body: berthd must read a bounded prefix, hang up,
// and report a clear error, its memory barely moving.
describe('security: a hostile registry cannot exhaust berthd memory', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d.stop();
  });

  async function pull(reg: HostileRegistry, image: string): Promise<{ code: number; stderr: string; growth: number }> {
    const pid = d.process?.pid ?? 0;
    const { result, growth } = await peakGrowth(pid, () => d.docker(['pull', `${reg.host}/${image}`], { timeoutMs: 120_000 }));
    return { code: result.code, stderr: result.stderr, growth };
  }

  it('reads only the start of an endless ping body', async () => {
    const reg = await HostileRegistry.start(async (req, res, self) => {
      if (req.url === '/v2/') return self.endless(res, 500);
      res.writeHead(404).end();
    });
    try {
      const r = await pull(reg, 'evil/ping:1');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/500/);
      expect(reg.served).toBeLessThan(64 * MiB);
      expect(r.growth).toBeLessThan(128 * MiB);
    } finally {
      await reg.stop();
    }
  });

  it('refuses an endless token answer', async () => {
    const reg = await HostileRegistry.start(async (req, res, self) => {
      if (req.url === '/v2/') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${self.host}/token",service="evil"`, 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
        return;
      }
      if (req.url?.startsWith('/token')) return self.endless(res, 200);
      res.writeHead(404).end();
    });
    try {
      const r = await pull(reg, 'evil/token:1');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/token response from http:\/\/127\.0\.0\.1:\d+\/token is larger than 1 MiB/);
      expect(reg.served).toBeLessThan(64 * MiB);
      expect(r.growth).toBeLessThan(128 * MiB);
    } finally {
      await reg.stop();
    }
  });

  it('reads only the start of an endless error body', async () => {
    const reg = await HostileRegistry.start(async (req, res, self) => {
      if (req.url === '/v2/') return ok(res, '{}');
      return self.endless(res, 404);
    });
    try {
      const r = await pull(reg, 'evil/error:1');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/not found|manifest unknown/i);
      expect(reg.served).toBeLessThan(64 * MiB);
      expect(r.growth).toBeLessThan(128 * MiB);
    } finally {
      await reg.stop();
    }
  });

  it('refuses a config blob the manifest says is huge, before fetching it', async () => {
    const configDigest = `sha256:${'c'.repeat(64)}`;
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: 2 * 1024 * MiB, digest: configDigest },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 32, digest: `sha256:${'d'.repeat(64)}` }],
    });
    const reg = await HostileRegistry.start(async (req, res, self) => {
      if (req.url === '/v2/') return ok(res, '{}');
      if (req.url?.includes('/manifests/')) return ok(res, manifest, 'application/vnd.docker.distribution.manifest.v2+json');
      if (req.url?.includes(`/blobs/${configDigest}`)) return self.endless(res, 200, 'application/octet-stream');
      res.writeHead(404).end();
    });
    try {
      const r = await pull(reg, 'evil/config:1');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`image config ${configDigest} is too large: ${2 * 1024 * MiB} bytes (at most ${8 * MiB})`);
      expect(reg.paths.some((p) => p.includes('/blobs/'))).toBe(false);
      expect(r.growth).toBeLessThan(128 * MiB);
    } finally {
      await reg.stop();
    }
  });
});
