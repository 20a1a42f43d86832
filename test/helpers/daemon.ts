import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request as undiciRequest } from 'undici';

export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text(): string;
  json<T = unknown>(): T;
}

export interface DaemonOptions {
  /** daemon.json contents. */
  config?: Record<string, unknown>;
  /** Reuse a data root (restart tests). */
  dataRoot?: string;
  execRoot?: string;
  extraArgs?: string[];
}

/** A real berthd started as a child process on its own socket, data root and exec root. */
export class TestDaemon {
  process: ChildProcess | undefined;
  readonly agent: Agent;

  private constructor(
    readonly dir: string,
    readonly socket: string,
    readonly dataRoot: string,
    readonly execRoot: string,
    readonly logFile: string,
    private readonly args: string[],
  ) {
    this.agent = new Agent({ connect: { socketPath: socket }, keepAliveTimeout: 1000 });
  }

  static async start(options: DaemonOptions = {}): Promise<TestDaemon> {
    // Short paths: unix socket paths are limited to 108 bytes.
    const dir = mkdtempSync(join(tmpdir(), 'bt-'));
    const socket = join(dir, 'docker.sock');
    const dataRoot = options.dataRoot ?? join(dir, 'data');
    const execRoot = options.execRoot ?? join(dir, 'run');
    const configFile = join(dir, 'daemon.json');
    writeFileSync(configFile, JSON.stringify(options.config ?? {}));
    const args = [
      MAIN,
      '--host', `unix://${socket}`,
      '--data-root', dataRoot,
      '--exec-root', execRoot,
      '--config-file', configFile,
      '--log-level', 'debug',
      // NRI on the daemon's own socket: containerd's default path is one per host
      ...('nri-socket' in (options.config ?? {}) || (options.extraArgs ?? []).some((a) => a.startsWith('--nri-socket') || a === '--no-nri') ? [] : ['--nri-socket', join(execRoot, 'nri.sock')]),
      // and no host-wide pre-installed plugins (/opt/nri/plugins)
      ...('nri-plugin-path' in (options.config ?? {}) ? [] : ['--nri-plugin-path', '']),
      ...(options.extraArgs ?? []),
    ];
    const d = new TestDaemon(dir, socket, dataRoot, execRoot, join(dir, 'berthd.log'), args);
    await d.launch();
    return d;
  }

  /** Starts (again) the daemon process and waits until /_ping answers. */
  async launch(): Promise<void> {
    const fd = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, this.args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.process = child;
    let exited: number | null | undefined;
    child.once('exit', (code) => {
      exited = code;
    });
    // generous: on a loaded 2-core machine with other daemons starting (they queue on the host network lock)
    // a start can take many seconds, and a daemon given up on fails its whole test file
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`berthd exited with ${exited} during start-up:\n${this.logs()}`);
      try {
        const r = await this.request('GET', '/_ping');
        if (r.status === 200) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`berthd did not answer /_ping within 60s:\n${this.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  logs(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_HOST: `unix://${this.socket}`, DOCKER_CONFIG: join(this.dir, 'docker-config') };
  }

  /** Runs the real docker CLI against this daemon. */
  docker(args: string[], options: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
    return runCommand('docker', args, { ...options, env: { ...this.env, ...options.env } });
  }

  async request(
    method: string,
    path: string,
    options: { body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string> } = {},
  ): Promise<HttpResult> {
    const headers: Record<string, string> = { ...options.headers };
    let body: string | Buffer | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await undiciRequest(`http://localhost${path}`, { method: method as 'GET', headers, body, dispatcher: this.agent });
    const buf = Buffer.from(await res.body.arrayBuffer());
    return {
      status: res.statusCode,
      headers: res.headers,
      body: buf,
      text: () => buf.toString('utf8'),
      json: <T>() => JSON.parse(buf.toString('utf8')) as T,
    };
  }

  /** Sends a signal and waits for the process to end (SIGKILL after `timeoutMs`: a graceful stop under load can be slow). */
  async signal(sig: NodeJS.Signals, timeoutMs = 60_000): Promise<number | null> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(sig);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await done;
    clearTimeout(timer);
    return code;
  }

  /**
   * Graceful stop, then removes the temporary directory and the daemon's default bridge (which berthd
   * keeps across restarts, as dockerd keeps docker0) so tests leave no interfaces behind.
   */
  async stop(): Promise<void> {
    const id = await this.request('GET', '/info')
      .then((r) => (r.status === 200 ? r.json<{ ID: string }>().ID : undefined))
      .catch(() => undefined);
    const code = await this.signal('SIGTERM');
    if (id) await removeOwnedLinks(`berth:${id}`);
    await this.agent.close().catch(() => undefined);
    const left = unmountUnder(this.dir);
    if (left.length > 0) {
      // critest saw it in full runs: berthd gone (killed on the stop timeout) with its pooled namespaces still
      // mounted. The directory is still removed (its EBUSY hid what went wrong); where berthd's stop was is shown.
      const tail = this.logs().trimEnd().split('\n').slice(-15).map((l) => l.slice(0, 300));
      process.stderr.write(`berthd (exit ${code ?? 'by SIGKILL after the stop timeout'}) left mounts under ${this.dir}, unmounted now: ${left.join(', ')}\nlast log lines:\n${tail.join('\n')}\n`);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Lazily unmounts every mount point below `dir` (this test's own tree only), deepest first; returns them. */
function unmountUnder(dir: string): string[] {
  const unescape = (p: string): string => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((p) => p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) spawnSync('umount', ['-l', p]);
  return points;
}

/** Deletes the network interfaces whose alias names this daemon as their owner. */
export async function removeOwnedLinks(alias: string): Promise<void> {
  const r = await runCommand('ip', ['-o', 'link', 'show']);
  for (const line of r.stdout.split('\n')) {
    if (!line.includes(`alias ${alias}`)) continue;
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (name) await runCommand('ip', ['link', 'del', name]);
  }
}

export function runCommand(
  cmd: string,
  args: string[],
  options: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : -1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input);
  });
}

export function startDaemon(options?: DaemonOptions): Promise<TestDaemon> {
  return TestDaemon.start(options);
}
