import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { EmbeddedDns } from '../../../src/network/dns-server.js';
import { buildQuery, buildResponse, parseQuery, parseResponse, RCODE_SERVFAIL, TYPE_A } from '../../../src/network/dns-codec.js';

const PORT = 20000 + Math.floor(Math.random() * 10000);

function udpAsk(name: string, from = '127.0.0.1', waitMs = 5000): Promise<ReturnType<typeof parseResponse>> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no answer'));
    }, waitMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(parseResponse(m));
    });
    s.bind(0, from, () => s.send(buildQuery(4242, name), PORT, '127.0.0.1'));
  });
}

/** A TCP connection to the server from `from`; resolves once connected, `closed` once the server ends it. */
function tcpOpen(port: number, from = '127.0.0.1'): Promise<{ sock: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port, localAddress: from });
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('error', () => undefined);
    sock.once('connect', () => resolve({ sock, closed }));
    sock.once('error', reject);
  });
}

function tcpAsk(name: string): Promise<ReturnType<typeof parseResponse>> {
  return new Promise((resolve, reject) => {
    const q = buildQuery(4343, name);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(q.length, 0);
    const s = connect({ host: '127.0.0.1', port: PORT }, () => s.write(Buffer.concat([len, q])));
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.destroy();
        resolve(parseResponse(buf.subarray(2)));
      }
    });
    s.on('error', reject);
  });
}

describe('embedded DNS server', () => {
  let upstreamPort = 0;
  const upstream = createSocket('udp4');
  let forwardTo: { host: string; port: number }[] = [];
  const dns = new EmbeddedDns(
    pino({ level: 'silent' }),
    {
      serves: (nid, asker) => asker === '127.0.0.1',
      lookup: (nid, asker, name) => (nid === 'net1' && name === 'web' ? ['10.0.0.2'] : name === 'noaddr' ? [] : undefined),
      mayForward: (nid) => nid === 'net1',
    },
    () => forwardTo,
    PORT,
  );

  beforeAll(async () => {
    upstream.on('message', (m, r) => {
      const q = parseQuery(m);
      upstream.send(buildResponse(q, 0, [{ address: '192.0.2.53', ttl: 5 }]), r.port, r.address);
    });
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
    upstreamPort = upstream.address().port;
    await dns.listen('net1', '127.0.0.1');
  });

  afterAll(async () => {
    await dns.closeAll();
    upstream.close();
  });

  it('answers its own names over UDP and TCP', async () => {
    const u = await udpAsk('web');
    expect(u.id).toBe(4242);
    expect(u.answers.map((a) => a.address)).toEqual(['10.0.0.2']);
    const t = await tcpAsk('WEB.');
    expect(t.id).toBe(4343);
    expect(t.answers.map((a) => a.address)).toEqual(['10.0.0.2']);
  });

  it('forwards other names to the upstream and relays its answer', async () => {
    forwardTo = [{ host: '127.0.0.1', port: upstreamPort }];
    const r = await udpAsk('example.test');
    expect(r.answers.map((a) => a.address)).toEqual(['192.0.2.53']);
  });

  it('answers SERVFAIL when no upstream answers', async () => {
    const dead = createSocket('udp4');
    await new Promise<void>((r) => dead.bind(0, '127.0.0.1', () => r()));
    forwardTo = [{ host: '127.0.0.1', port: dead.address().port }];
    const r = await udpAsk('example.test');
    dead.close();
    expect(r.rcode).toBe(RCODE_SERVFAIL);
  });

  it('answers SERVFAIL instead of forwarding for askers with no way out (dockerd), NOTIMP for other opcodes', async () => {
    const q = buildQuery(1, 'example.test');
    expect(parseResponse((await dns.answer('internal', '10.0.0.9', q))!).rcode).toBe(RCODE_SERVFAIL);
    const notify = Buffer.from(q);
    notify.writeUInt16BE(0x2000, 2); // opcode 4 (NOTIFY)
    expect(parseResponse((await dns.answer('net1', '10.0.0.9', notify))!).rcode).toBe(4);
    const noaddr = parseResponse((await dns.answer('net1', '10.0.0.9', buildQuery(2, 'noaddr', TYPE_A)))!);
    expect(noaddr.rcode).toBe(0);
    expect(noaddr.answers).toEqual([]);
  });
});

describe('embedded DNS server against askers from elsewhere', () => {
  const port = PORT + 1;
  const resolver = {
    serves: (nid: string, asker: string) => asker === '127.0.0.1',
    lookup: (nid: string, asker: string, name: string) => (name === 'web' ? ['10.0.0.2'] : undefined),
    mayForward: () => true,
  };
  const quiet = pino({ level: 'silent' });
  const dns = new EmbeddedDns(quiet, resolver, () => [], port, { tcpIdleMs: 300, tcpMaxConnections: 100 });
  const capped = new EmbeddedDns(quiet, resolver, () => [], port + 1, { tcpIdleMs: 60_000, tcpMaxConnections: 3 });
  const opened: Socket[] = [];

  beforeAll(async () => {
    await dns.listen('net1', '127.0.0.1');
    await capped.listen('net1', '127.0.0.1');
  });
  afterAll(async () => {
    for (const s of opened) s.destroy();
    await dns.closeAll();
    await capped.closeAll();
  });

  it('ignores UDP queries and closes TCP connections from sources that are not its network\'s containers', async () => {
    const u = createSocket('udp4');
    const got: Buffer[] = [];
    u.on('message', (m) => got.push(m));
    await new Promise<void>((r) => u.bind(0, '127.0.0.2', () => r()));
    u.send(buildQuery(7, 'web'), port, '127.0.0.1');
    // A member's query sent after the stranger's is answered; the stranger's never is.
    const ok = createSocket('udp4');
    const answered = new Promise<Buffer>((r) => ok.once('message', (m) => r(m)));
    ok.send(buildQuery(8, 'web'), port, '127.0.0.1');
    expect(parseResponse(await answered).id).toBe(8);
    await new Promise<void>((r) => setImmediate(r));
    ok.close();
    u.close();
    expect(got).toEqual([]);
    const stranger = await tcpOpen(port + 1, '127.0.0.2');
    opened.push(stranger.sock);
    await stranger.closed;
  });

  it('closes a TCP connection that stays silent', async () => {
    const idle = await tcpOpen(port);
    opened.push(idle.sock);
    idle.sock.write(Buffer.from([0])); // one byte of a length prefix, never completed
    await idle.closed;
  });

  it('closes TCP connections over the cap at once and keeps the others', async () => {
    const held: Awaited<ReturnType<typeof tcpOpen>>[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await tcpOpen(port + 1);
      opened.push(c.sock);
      held.push(c);
    }
    const over = await tcpOpen(port + 1);
    opened.push(over.sock);
    await over.closed;
    // The held ones still get answers.
    const q = buildQuery(9, 'web');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(q.length, 0);
    const reply = new Promise<Buffer>((r) => held[0]!.sock.once('data', (d: Buffer) => r(d)));
    held[0]!.sock.write(Buffer.concat([len, q]));
    expect(parseResponse((await reply).subarray(2)).answers.map((a) => a.address)).toEqual(['10.0.0.2']);
  });
});
