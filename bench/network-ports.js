#!/usr/bin/env node
// Published-port benchmark: connection rate and throughput to a server in a network sandbox, through
// the userland proxy (127.0.0.1:<hostPort>), through DNAT (the bridge's gateway address, rewritten in
// the nat OUTPUT chain), and directly to the container address as a baseline. Needs root, iptables and
// python3 (the server), and a build (dist/). Traffic stays on loopback and on Berth's own bridge.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { openDatabase } from '../dist/metadata/database.js';
import { EventRepo } from '../dist/metadata/event-repo.js';
import { EventBus } from '../dist/events/event-bus.js';
import { NetworkRepo } from '../dist/metadata/network-repo.js';
import { NetworkService } from '../dist/network/network-service.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const BYTES = Number(process.env.BENCH_BYTES ?? 128 * 1024 * 1024);
const CONCURRENCY = 8;
const HOST_PORT = Number(process.env.BENCH_PORT ?? 18199);

// Server: port 7000 answers "ok" and closes (connection rate); port 7001 discards everything and
// replies with the byte count at EOF (throughput).
const SERVER = `
import asyncio
async def short(r, w):
    w.write(b'ok'); await w.drain(); w.close()
async def sink(r, w):
    n = 0
    while True:
        b = await r.read(1 << 20)
        if not b: break
        n += len(b)
    w.write(str(n).encode()); await w.drain(); w.close()
async def main():
    a = await asyncio.start_server(short, '0.0.0.0', 7000, backlog=1024)
    b = await asyncio.start_server(sink, '0.0.0.0', 7001, backlog=1024)
    print('ready', flush=True)
    await asyncio.gather(a.serve_forever(), b.serve_forever())
asyncio.run(main())
`;

function oneShort(host, port) {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    s.on('data', () => undefined);
    s.on('end', () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
}

async function connRate(host, port) {
  const deadline = Date.now() + SECONDS * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < deadline) {
        await oneShort(host, port);
        n++;
      }
    }),
  );
  return n / SECONDS;
}

function throughput(host, port) {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(1 << 20, 7);
    const s = connect({ host, port });
    const start = process.hrtime.bigint();
    let sent = 0;
    let reply = '';
    const pump = () => {
      while (sent < BYTES) {
        sent += chunk.length;
        if (!s.write(chunk)) return;
      }
      s.end();
    };
    s.on('connect', pump);
    s.on('drain', pump);
    s.on('data', (d) => (reply += d.toString()));
    s.on('end', () => {
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      if (Number(reply) !== sent) reject(new Error(`server counted ${reply}, sent ${sent}`));
      else resolve(sent / secs / (1024 * 1024));
    });
    s.on('error', reject);
  });
}

function dnatPackets(chain) {
  const out = execFileSync('iptables', ['-w', '-t', 'nat', '-L', chain, '-v', '-n', '-x'], { encoding: 'utf8' });
  return out.split('\n').map((l) => l.trim().split(/\s+/)).filter((c) => c[2] === 'DNAT').reduce((s, c) => s + Number(c[0]), 0);
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'bnbench-'));
  const log = pino({ level: 'warn' });
  const db = openDatabase(join(dir, 'berth.db'), log);
  const svc = new NetworkService(new NetworkRepo(db), new EventBus(new EventRepo(db, 100)), log, {
    execRoot: join(dir, 'run'), iptables: true, daemonId: randomUUID(), bip: '10.247.0.1/24',
  });
  let server;
  const id = randomUUID().replaceAll('-', '') + randomUUID().replaceAll('-', '');
  try {
    await svc.start();
    await svc.restore([]);
    mkdirSync(join(dir, 'c'), { recursive: true });
    const info = await svc.createSandbox(id, {
      name: 'bench', mode: 'bridge', hostname: 'bench', filesDir: join(dir, 'c'),
      portBindings: { '7000/tcp': [{ HostPort: String(HOST_PORT) }], '7001/tcp': [{ HostPort: String(HOST_PORT + 1) }] },
    });
    const cip = info.settings.Networks.bridge.IPAddress;
    const gw = info.settings.Networks.bridge.Gateway;
    server = spawn('nsenter', [`--net=${info.netnsPath}`, 'python3', '-c', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => {
      server.stdout.once('data', resolve);
      server.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    });
    const dnat = svc.firewallBackend === 'iptables';
    const paths = [
      ['direct (container IP)', cip, 7000, 7001],
      ['userland proxy (127.0.0.1)', '127.0.0.1', HOST_PORT, HOST_PORT + 1],
      ...(dnat ? [['DNAT (gateway address)', gw, HOST_PORT, HOST_PORT + 1]] : []),
    ];
    console.log(`connections: ${CONCURRENCY} concurrent for ${SECONDS}s; throughput: ${BYTES / 1048576} MiB on one connection`);
    for (const [name, host, p1, p2] of paths) {
      const before = dnat ? dnatPackets(svc.chains.dnat) : 0;
      const rate = await connRate(host, p1);
      const mbs = await throughput(host, p2);
      const via = dnat && name.startsWith('DNAT') ? ` (DNAT packets +${dnatPackets(svc.chains.dnat) - before})` : '';
      console.log(`${name.padEnd(28)} ${rate.toFixed(0).padStart(7)} conn/s  ${mbs.toFixed(0).padStart(6)} MiB/s${via}`);
    }
    if (!dnat) console.log('DNAT: skipped (no iptables)');
  } finally {
    server?.kill('SIGKILL');
    await svc.releaseSandbox(id).catch(() => undefined);
    await svc.stop();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
