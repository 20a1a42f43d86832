import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { waitForValue } from '../helpers/wait.js';
import { createSocket } from 'node:dgram';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { openDatabase, type Db } from '../../src/metadata/database.js';
import { EventRepo } from '../../src/metadata/event-repo.js';
import { EventBus } from '../../src/events/event-bus.js';
import { NetworkRepo } from '../../src/metadata/network-repo.js';
import { NetworkService, type NetworkServiceOptions } from '../../src/network/network-service.js';
import { buildQuery, buildResponse, parseQuery, parseResponse, TYPE_A } from '../../src/network/dns-codec.js';

/**
 * A NetworkService on a temporary database and exec root, as berthd builds it, for plumbing tests that
 * check the result from inside the namespaces with nsenter.
 */
export class NetHarness {
  readonly log = pino({ level: process.env.BERTH_TEST_LOG ?? 'warn' });
  db!: Db;
  events!: EventBus;
  service!: NetworkService;
  readonly daemonId = randomUUID();
  readonly owner = `berth:${this.daemonId}`;
  readonly tag = this.daemonId.replaceAll('-', '').slice(0, 8);

  private constructor(
    readonly dir: string,
    private readonly extra: Partial<NetworkServiceOptions>,
  ) {}

  static async start(extra: Partial<NetworkServiceOptions> = {}): Promise<NetHarness> {
    const h = new NetHarness(mkdtempSync(join(tmpdir(), 'bnet-')), extra);
    await h.open();
    return h;
  }

  /** (Re)opens database and service on the same directories: a daemon (re)start. */
  async open(): Promise<void> {
    this.db = openDatabase(join(this.dir, 'berth.db'), this.log);
    this.events = new EventBus(new EventRepo(this.db, 1000));
    this.service = new NetworkService(new NetworkRepo(this.db), this.events, this.log, {
      execRoot: join(this.dir, 'run'),
      iptables: true,
      daemonId: this.daemonId,
      ...this.extra,
    });
    await this.service.start();
  }

  /** A daemon stop: listeners and rules go, sandboxes of running containers stay. */
  async close(): Promise<void> {
    await this.service.stop();
    this.db.close();
  }

  containerDir(id: string): string {
    const d = join(this.dir, 'containers', id);
    mkdirSync(d, { recursive: true });
    return d;
  }

  /** Closes everything and removes the directory. */
  async destroy(): Promise<void> {
    await this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  ownedLinks(): string[] {
    const links = JSON.parse(execFileSync('ip', ['-d', '-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string; ifalias?: string }[];
    return links.filter((l) => l.ifalias === this.owner).map((l) => l.ifname);
  }

  rules(): string {
    return execFileSync('iptables', ['-w', '-S'], { encoding: 'utf8' }) + execFileSync('iptables', ['-w', '-t', 'nat', '-S'], { encoding: 'utf8' });
  }
}

export function randomHex(n = 64): string {
  let s = '';
  while (s.length < n) s += randomUUID().replaceAll('-', '');
  return s.slice(0, n);
}

/**
 * Runs a command inside a namespace and returns its result without throwing. Asynchronous on purpose:
 * the DNS server and the userland proxy under test live in this process and must keep answering.
 */
export function inNetns(netns: string, args: string[], timeoutSec = 5): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('timeout', [String(timeoutSec), 'nsenter', `--net=${netns}`, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: code === 0 ? stdout : `${stdout}${stderr}` });
    });
  });
}

/** busybox httpd serving `text` as /index.html inside a namespace; returns a stopper. */
export async function startHttpd(netns: string, port: number, text: string): Promise<{ stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'bhttpd-'));
  writeFileSync(join(dir, 'index.html'), text);
  const child: ChildProcess = spawn('nsenter', [`--net=${netns}`, 'busybox', 'httpd', '-f', '-p', String(port), '-h', dir], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await done;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await inNetns(netns, ['busybox', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${port}/`], 2);
    if (r.code === 0) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(child.exitCode !== null ? `httpd exited with ${child.exitCode}` : 'httpd did not start');
    }
    await new Promise((r2) => setTimeout(r2, 50));
  }
  return { stop };
}

/**
 * GET a URL from inside a namespace with busybox wget (bounded by timeout, never -T). With `resolvConf`
 * the container's resolv.conf is bind-mounted over /etc/resolv.conf in a private mount namespace first,
 * so names resolve as they would inside the container.
 */
export function wgetFrom(netns: string, url: string, timeoutSec = 3, resolvConf?: string): Promise<{ code: number; out: string }> {
  if (!resolvConf) return inNetns(netns, ['busybox', 'wget', '-q', '-O', '-', url], timeoutSec);
  return inNetns(netns, ['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec busybox wget -q -O - "$1"', resolvConf, url], timeoutSec);
}

/**
 * One UDP DNS query sent from inside network namespace `netns` (the embedded DNS answers its network's
 * containers only): a node child under nsenter sends the query and prints the reply in hex.
 */
export async function dnsQuery(netns: string, server: string, port: number, name: string, type = TYPE_A): Promise<ReturnType<typeof parseResponse>> {
  const script = [
    "const s = require('node:dgram').createSocket('udp4');",
    "const [q, host, port] = process.argv.slice(1);",
    "const t = setTimeout(() => process.exit(3), 3000);",
    "s.on('message', (m) => { clearTimeout(t); process.stdout.write(m.toString('hex')); s.close(); });",
    "s.send(Buffer.from(q, 'hex'), Number(port), host);",
  ].join('\n');
  const q = buildQuery(Math.floor(Math.random() * 65535), name, type).toString('hex');
  const r = await inNetns(netns, [process.execPath, '-e', script, q, server, String(port)]);
  if (r.code !== 0) throw new Error(`no DNS answer from ${server}:${port} for ${name} (${r.out.trim()})`);
  return parseResponse(Buffer.from(r.out.trim(), 'hex'));
}

/** A fake upstream resolver on 127.0.0.1 answering every A question with `address`. */
export async function fakeUpstream(address: string): Promise<{ port: number; queries: string[]; close(): Promise<void> }> {
  const sock = createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (m, rinfo) => {
    const q = parseQuery(m);
    queries.push(q.questions[0]?.name ?? '');
    sock.send(buildResponse(q, 0, [{ address, ttl: 30 }]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return {
    port: sock.address().port,
    queries,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}

/**
 * For the tests of the nft backend, which play an nftables-only host: this host has iptables too, and its FORWARD
 * chain (policy DROP, as dockerd leaves it, or as another test sets it) would drop what the daemon under test
 * forwards, where on a real nftables-only host there is no such chain. ACCEPT rules for `bridges` at the head of
 * it take it out of the way for this test's traffic only; the daemon's own nft rules still decide (their drop is
 * final whatever this chain says). Returns the function that removes them.
 */
export function passIptablesForward(bridges: string[]): () => void {
  const rules = bridges.flatMap((br) => [['-i', br, '-j', 'ACCEPT'], ['-o', br, '-j', 'ACCEPT']]);
  const iptables = (args: string[]): void => {
    execFileSync('iptables', ['-w', ...args], { stdio: 'ignore', env: { ...process.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  };
  for (const r of rules) iptables(['-I', 'FORWARD', '1', ...r]);
  return () => {
    for (const r of rules) {
      try {
        iptables(['-D', 'FORWARD', ...r]);
      } catch {
        // already gone
      }
    }
  };
}

/** Polls `fn` until it returns a truthy value (test/helpers/wait.ts does the polling). */
export function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 5000): Promise<T> {
  return waitForValue(what, async () => (await fn()) || undefined, timeoutMs, 50) as Promise<T>;
}
