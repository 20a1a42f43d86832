import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { runCommand, type CliResult } from './daemon.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../../scripts/build-cri-tools.sh', import.meta.url));

/** crictl and critest from scripts/build-cri-tools.sh (built on first use; CI builds them in .ci/run). */
export function criToolsBin(): string {
  return execFileSync('bash', [BUILD_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 20 * 60_000 }).trim();
}

/** A CNI network of the test's own: a bridge and a /24 no other test uses, host-local state in the test dir. */
export interface TestCniNetwork {
  confDir: string;
  bridge: string;
  subnet: string;
  gateway: string;
  dataDir: string;
  /** The conflist's network name: the CNI plugins put it in the comments of their iptables rules. */
  name: string;
  /** Holds the subnet's claim (see claimSubnet) until removeTestCniNetwork. */
  claim: Server;
}

/**
 * Claims a /24 of 10.200.0.0/16 for this process: the claim is an abstract unix socket name (`\0berth-test/cni-<n>`)
 * that only one process can bind, released when it is closed or the process ends, however it ends. The CRI test
 * files run at the same time; a random third octet alone gave two of them the same subnet now and then (routes
 * of both bridges for one prefix). A subnet something on the host already routes (a leftover) is passed over.
 */
async function claimSubnet(): Promise<{ third: number; claim: Server }> {
  const routed = execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' });
  const start = randomBytes(1)[0] ?? 0;
  for (let i = 0; i < 256; i++) {
    const third = (start + i) % 256;
    if (routed.includes(`10.200.${third}.`)) continue;
    const server = createServer();
    const taken = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(true));
      server.listen({ path: `\0berth-test/cni-${third}` }, () => resolve(false));
    });
    if (!taken) {
      server.unref();
      return { third, claim: server };
    }
  }
  throw new Error('no free test subnet in 10.200.0.0/16');
}

export async function writeTestConflist(dir: string): Promise<TestCniNetwork> {
  const confDir = join(dir, 'cni');
  const dataDir = join(dir, 'cni-ipam');
  mkdirSync(confDir, { recursive: true });
  const tag = randomBytes(3).toString('hex');
  const bridge = `bcri${tag}`;
  const { third, claim } = await claimSubnet();
  const subnet = `10.200.${third}.0/24`;
  const gateway = `10.200.${third}.1`;
  writeFileSync(
    join(confDir, '10-test.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: `test-${tag}`,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: { type: 'host-local', dataDir, ranges: [[{ subnet, gateway }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  return { confDir, bridge, subnet, gateway, dataDir, name: `test-${tag}`, claim };
}

/** Splits an `iptables -S` rule into arguments (quoted comments stay one argument). */
export function splitRule(rule: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(rule); m; m = re.exec(rule)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string));
  return out;
}

/**
 * The nat rules the CNI plugins made for this network's pods and did not remove (their comments name the network:
 * the bridge plugin's masquerade jump `name: "<net>" id: "<pod>"`, portmap's `dnat name: ...`): every pod was
 * torn down when this runs, so any such rule is a leak. They are removed with the per-pod chains they jump to, and
 * returned so the test can report them.
 */
export async function removeLeftoverCniRules(n: TestCniNetwork): Promise<string[]> {
  const r = await runCommand('iptables', ['-w', '-t', 'nat', '-S']);
  if (r.code !== 0) return [];
  const mark = `name: \\"${n.name}\\"`;
  const leaked = r.stdout.split('\n').filter((l) => l.startsWith('-A ') && l.includes(mark));
  const chains = new Set<string>();
  for (const rule of leaked) {
    const [, chain = '', ...rest] = splitRule(rule);
    const j = rest.indexOf('-j');
    const target = j >= 0 ? (rest[j + 1] ?? '') : '';
    if (/^CNI-/.test(target) && !target.startsWith('CNI-HOSTPORT-')) chains.add(target);
    if (!/^CNI-/.test(chain) || chain.startsWith('CNI-HOSTPORT-')) await runCommand('iptables', ['-w', '-t', 'nat', '-D', chain, ...rest]);
    else chains.add(chain);
  }
  for (const c of chains) await runCommand('iptables', ['-w', '-t', 'nat', '-F', c]);
  for (const c of chains) await runCommand('iptables', ['-w', '-t', 'nat', '-X', c]);
  return leaked;
}

/** The daemon log lines about the pods whose rules leaked (their IDs are in the rules' comments), for the report. */
export function leakReport(leaked: string[], daemonLog: string): string {
  const ids = [...new Set(leaked.flatMap((l) => [...l.matchAll(/id: \\"([0-9a-f]{12,})\\"/g)].map((m) => m[1] as string)))];
  const lines = daemonLog.split('\n').filter((l) => ids.some((id) => l.includes(id.slice(0, 12))) && /CNI|cni|netns|sandbox|"level":[456]0/.test(l));
  return `CNI rules left behind for pods ${ids.join(', ')} (removed now):\n  ${leaked.join('\n  ')}\ndaemon log about them:\n  ${lines.slice(-60).map((l) => l.slice(0, 400)).join('\n  ')}\n`;
}

/**
 * Removes the bridge the CNI bridge plugin created (it never deletes it itself) and any rule the plugins left for
 * the network's pods, then gives the subnet back; returns the leftover rules (see removeLeftoverCniRules).
 */
export async function removeTestCniNetwork(n: TestCniNetwork): Promise<string[]> {
  const leaked = await removeLeftoverCniRules(n);
  if ((await runCommand('ip', ['link', 'show', n.bridge])).code === 0) await runCommand('ip', ['link', 'del', n.bridge]);
  await new Promise<void>((resolve) => n.claim.close(() => resolve()));
  return leaked;
}

/** crictl against one daemon's CRI socket. */
export class Crictl {
  constructor(
    readonly bin: string,
    readonly socket: string,
  ) {}

  run(args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    return runCommand(join(this.bin, 'crictl'), ['--runtime-endpoint', `unix://${this.socket}`, '--image-endpoint', `unix://${this.socket}`, '--timeout', '60s', ...args], {
      ...options,
      env: { ...process.env, CRI_CONFIG_FILE: '/dev/null' },
    });
  }

  /** Runs crictl and returns stdout; a failure throws with stderr. */
  async ok(args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(args, options);
    if (r.code !== 0) throw new Error(`crictl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }
}

/**
 * Removes every pod of the daemon (crictl rmp -f), once more for any still listed; returns what failed, with the
 * daemon's words. A pod left behind would outlive the daemon (containers run on without berthd), with its holder
 * process, namespace mounts and CNI rules.
 */
export async function removeAllPods(crictl: Crictl): Promise<string> {
  const failures: string[] = [];
  for (let round = 0; round < 2; round++) {
    const list = await crictl.run(['pods', '-q']);
    if (list.code !== 0) {
      failures.push(`crictl pods: ${list.stderr.trim()}`);
      continue;
    }
    const pods = list.stdout.split('\n').filter((x) => x !== '');
    if (pods.length === 0) return '';
    for (const p of pods) {
      const r = await crictl.run(['rmp', '-f', p]);
      if (r.code !== 0) failures.push(`crictl rmp -f ${p}: ${r.stderr.trim()}`);
    }
  }
  const left = await crictl.run(['pods']);
  return `pods not removed:\n  ${failures.join('\n  ')}\n${left.stdout}`;
}

export function criToolsPresent(bin: string): boolean {
  return existsSync(join(bin, 'crictl')) && existsSync(join(bin, 'critest'));
}

const PROTO = fileURLToPath(new URL('../../api-spec/cri-api-v0.37.0.proto', import.meta.url));
type CriService = 'RuntimeService' | 'ImageService';

/** A gRPC client of the CRI socket and its method `method` (bound), closed by the caller. */
function criMethod<F>(socket: string, method: string, service: CriService): { client: grpc.Client; fn: F } {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: Record<string, new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client> } };
  const Ctor = pkg.runtime.v1[service];
  if (!Ctor) throw new Error(`no service ${service}`);
  const client = new Ctor(`unix://${socket}`, grpc.credentials.createInsecure());
  const fn = (client as unknown as Record<string, ((...args: unknown[]) => unknown) | undefined>)[method];
  if (!fn) {
    client.close();
    throw new Error(`no method ${method}`);
  }
  return { client, fn: fn.bind(client) as F };
}

/** One unary CRI call straight over gRPC (for what crictl does not show: exact exit codes, error codes). */
export async function criCall(socket: string, method: string, req: Record<string, unknown>, service: CriService = 'RuntimeService'): Promise<Record<string, unknown>> {
  type Rpc = (req: unknown, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void;
  const { client, fn } = criMethod<Rpc>(socket, method, service);
  try {
    return await new Promise((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res))));
  } finally {
    client.close();
  }
}

/** One server-streaming CRI call straight over gRPC: every message until the server ends the stream. */
export async function criStream(socket: string, method: string, req: Record<string, unknown>, service: CriService = 'RuntimeService'): Promise<Record<string, unknown>[]> {
  const { client, fn } = criMethod<(req: unknown) => grpc.ClientReadableStream<Record<string, unknown>>>(socket, method, service);
  try {
    const call = fn(req);
    const out: Record<string, unknown>[] = [];
    return await new Promise((resolve, reject) => {
      call.on('data', (m: Record<string, unknown>) => out.push(m));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });
  } finally {
    client.close();
  }
}
