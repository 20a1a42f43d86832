import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';

/**
 * Debian's `docker-registry` (the CNCF distribution registry, 2.8) on 127.0.0.1 with a temp config and storage,
 * in one of its auth modes, stopped by PID. Token mode comes with a small token server (RS256 JWTs signed by a key
 * and self-signed certificate made here) that answers like Docker Hub's auth.docker.io.
 */

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export type RegistryAuthMode = 'none' | 'htpasswd' | 'token';

export interface RegistryOptions {
  auth?: RegistryAuthMode;
  /** Users for htpasswd/token modes (default user "tester" / "s3cret-pw"). */
  users?: Record<string, string>;
  /** TLS with this certificate/key (PEM files). */
  tls?: { cert: string; key: string };
}

export const TEST_USER = 'tester';
export const TEST_PASSWORD = 's3cret-pw';

/** Whether a TCP server can listen on every address at `port` right now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createNetServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * A TCP port free on every address, for a server the test starts next: a random one of 20000-32767, below the
 * kernel's ephemeral range (32768-60999), where connect() takes source ports and Berth its ephemeral published
 * ports (each daemon of the concurrent test files in order from 32768), so nothing else on the host takes it
 * before the server binds it but another test's freePort, which picks at random. listen(0) handed out ports of
 * that busy range.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (await canListen(port)) return port;
  }
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** One token request as the test token server saw it. */
export interface TokenRequest {
  method: string;
  query: URLSearchParams;
  form?: URLSearchParams;
  account?: string;
}

/** A Docker-Hub-like token server: GET (Basic or anonymous) and POST (OAuth2 password/refresh_token grants). */
export class TokenServer {
  readonly requests: TokenRequest[] = [];
  /** Repositories anonymous users may pull (e.g. "library/busybox"); everything else needs a login. */
  readonly anonymousPull = new Set<string>();
  private readonly refreshTokens = new Map<string, string>();
  private server: Server | undefined;
  port = 0;
  /** Lifetime of issued tokens in seconds. */
  expiresIn = 300;

  constructor(
    private readonly key: KeyObject,
    private readonly certDer: Buffer,
    readonly service: string,
    readonly issuer: string,
    private readonly users: Record<string, string>,
  ) {}

  get realm(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        res.writeHead(500);
        res.end(String(e));
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private deny(res: ServerResponse, status: number, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ details: message }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/token') return this.deny(res, 404, 'not found');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const form = req.method === 'POST' ? new URLSearchParams(Buffer.concat(chunks).toString('utf8')) : undefined;
    let account: string | undefined;
    const authz = req.headers.authorization;
    if (authz?.startsWith('Basic ')) {
      const [u = '', p = ''] = Buffer.from(authz.slice(6), 'base64').toString('utf8').split(/:(.*)/s);
      if (this.users[u] !== p) return this.deny(res, 401, 'incorrect username or password');
      account = u;
    }
    let refresh: string | undefined;
    if (form) {
      const grant = form.get('grant_type');
      if (grant === 'password') {
        const u = form.get('username') ?? '';
        if (this.users[u] !== form.get('password')) return this.deny(res, 401, 'incorrect username or password');
        account = u;
        if (form.get('access_type') === 'offline') refresh = this.newRefresh(u);
      } else if (grant === 'refresh_token') {
        const u = this.refreshTokens.get(form.get('refresh_token') ?? '');
        if (!u) return this.deny(res, 401, 'invalid refresh token');
        account = u;
      } else return this.deny(res, 400, `unsupported grant_type ${String(grant)}`);
    } else if (account !== undefined && url.searchParams.get('offline_token') === 'true') {
      refresh = this.newRefresh(account);
    }
    const params = form ?? url.searchParams;
    this.requests.push({ method: req.method ?? 'GET', query: url.searchParams, ...(form ? { form } : {}), ...(account ? { account } : {}) });
    if ((params.get('service') ?? '') !== this.service) return this.deny(res, 400, 'unknown service');
    const scopes = form ? (form.get('scope') ?? '').split(' ').filter((s) => s !== '') : url.searchParams.getAll('scope');
    const access: { type: string; name: string; actions: string[] }[] = [];
    for (const s of scopes) {
      const m = /^([a-z0-9]+):(.+):([a-z*,]+)$/.exec(s);
      if (!m) continue;
      const [, type = '', name = '', actions = ''] = m;
      const wanted = actions.split(',');
      const granted = account !== undefined ? wanted : this.anonymousPull.has(name) ? wanted.filter((a) => a === 'pull') : [];
      access.push({ type, name, actions: granted });
    }
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [this.certDer.toString('base64')] };
    const claims = {
      iss: this.issuer,
      sub: account ?? '',
      aud: this.service,
      exp: now + this.expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const jwt = `${signingInput}.${b64url(sign('sha256', Buffer.from(signingInput), this.key))}`;
    const body: Record<string, unknown> = { token: jwt, access_token: jwt, expires_in: this.expiresIn, issued_at: new Date(now * 1000).toISOString() };
    if (refresh) body.refresh_token = refresh;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private newRefresh(user: string): string {
    const t = randomBytes(16).toString('hex');
    this.refreshTokens.set(t, user);
    return t;
  }
}

/** A self-signed certificate/key pair (PEM paths) for `cn`, with IP/DNS SANs. */
export function selfSignedCert(dir: string, name: string, cn: string, sans = 'IP:127.0.0.1,DNS:localhost'): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', `subjectAltName=${sans}`,
  ], { stdio: 'ignore' });
  return { cert, key };
}

export class TestRegistry {
  process: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly auth: RegistryAuthMode,
    readonly tokenServer: TokenServer | undefined,
    readonly tls: boolean,
  ) {}

  /** host:port as used in image names. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://${this.host}`;
  }

  get storage(): string {
    return join(this.dir, 'storage');
  }

  static async start(options: RegistryOptions = {}): Promise<TestRegistry> {
    if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing: apt-get install -y docker-registry`);
    const auth = options.auth ?? 'none';
    const users = options.users ?? { [TEST_USER]: TEST_PASSWORD };
    const dir = mkdtempSync(join(tmpdir(), 'berth-reg-'));
    const port = await freePort();
    let authYaml = '';
    let tokenServer: TokenServer | undefined;
    if (auth === 'htpasswd') {
      const lines = Object.entries(users).map(([u, p]) => execFileSync('htpasswd', ['-nbB', u, p], { encoding: 'utf8' }).trim());
      writeFileSync(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
      authYaml = `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${join(dir, 'htpasswd')}\n`;
    } else if (auth === 'token') {
      const { cert, key } = selfSignedCert(dir, 'token', 'berth test token issuer');
      const der = Buffer.from(new X509Certificate(readFileSync(cert)).raw);
      tokenServer = new TokenServer(createPrivateKey(readFileSync(key)), der, 'berth-test-registry', 'berth-test-issuer', users);
      await tokenServer.start();
      authYaml =
        `auth:\n  token:\n    realm: ${tokenServer.realm}\n    service: ${tokenServer.service}\n` +
        `    issuer: ${tokenServer.issuer}\n    rootcertbundle: ${cert}\n`;
    }
    const tlsYaml = options.tls ? `  tls:\n    certificate: ${options.tls.cert}\n    key: ${options.tls.key}\n` : '';
    const config =
      `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n` +
      `storage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\n  delete:\n    enabled: true\n` +
      `  maintenance:\n    uploadpurging:\n      enabled: false\n` +
      `http:\n  addr: 127.0.0.1:${port}\n  secret: ${randomBytes(16).toString('hex')}\n${tlsYaml}` +
      authYaml;
    writeFileSync(join(dir, 'config.yml'), config);
    const reg = new TestRegistry(dir, port, auth, tokenServer, options.tls !== undefined);
    await reg.launch();
    return reg;
  }

  private async launch(): Promise<void> {
    const fd = openSync(join(this.dir, 'registry.log'), 'a');
    const child = spawn(REGISTRY_BIN, ['serve', join(this.dir, 'config.yml')], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.process = child;
    let exited: number | null | undefined;
    child.once('exit', (code) => {
      exited = code;
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`docker-registry exited with ${exited}:\n${this.logs()}`);
      try {
        const r = await request(`${this.url}/v2/`, { method: 'GET', ...(this.tls ? { dispatcher: insecureAgent() } : {}) });
        await r.body.dump();
        if (r.statusCode === 200 || r.statusCode === 401) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer within 15s:\n${this.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  logs(): string {
    try {
      return readFileSync(join(this.dir, 'registry.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Request lines of the registry's access log ("GET /v2/x/blobs/sha256:… HTTP/1.1" 200 …) matching `re`. */
  requests(re: RegExp): string[] {
    return this.logs()
      .split('\n')
      .map((l) => /"([A-Z]+ \S+ HTTP\/[\d.]+)" (\d{3})/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `${m[1]} ${m[2]}`)
      .filter((l) => re.test(l));
  }

  /** Path of a blob's data file in the registry's filesystem storage (to tamper with it). */
  blobPath(digest: string): string {
    const hex = digest.replace(/^sha256:/, '');
    return join(this.storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  }

  /** A bearer token for raw test requests (token mode) or Basic credentials (htpasswd mode). */
  async authHeader(scope: string, user = TEST_USER, password = TEST_PASSWORD): Promise<Record<string, string>> {
    const basic = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    if (this.auth === 'htpasswd') return { authorization: basic };
    if (this.auth === 'none' || !this.tokenServer) return {};
    const ts = this.tokenServer;
    const r = await request(`${ts.realm}?service=${encodeURIComponent(ts.service)}&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basic } });
    const body = (await r.body.json()) as { token: string };
    return { authorization: `Bearer ${body.token}` };
  }

  /** Stops the registry (by its PID) and the token server, and removes the temp directory. */
  async stop(): Promise<void> {
    const child = this.process;
    if (child && child.exitCode === null && child.signalCode === null) {
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(timer);
    }
    await this.tokenServer?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let insecure: Agent | undefined;
function insecureAgent(): Agent {
  insecure ??= new Agent({ connect: { rejectUnauthorized: false } });
  return insecure;
}

export function startRegistry(options?: RegistryOptions): Promise<TestRegistry> {
  return TestRegistry.start(options);
}

export function sha256Hex(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}
