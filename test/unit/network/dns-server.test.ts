import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { EmbeddedDns } from '../../../src/network/dns-server.js';
import { buildQuery, buildResponse, parseQuery, parseResponse, RCODE_NXDOMAIN, RCODE_SERVFAIL, TYPE_A } from '../../../src/network/dns-codec.js';

const PORT = 20000 + Math.floor(Math.random() * 10000);

function udpAsk(name: string): Promise<ReturnType<typeof parseResponse>> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => reject(new Error('no answer')), 5000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(parseResponse(m));
    });
    s.send(buildQuery(4242, name), PORT, '127.0.0.1');
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

  it('answers NXDOMAIN instead of forwarding for networks that may not forward, NOTIMP for other opcodes', async () => {
    const q = buildQuery(1, 'example.test');
    expect(parseResponse((await dns.answer('internal', '10.0.0.9', q))!).rcode).toBe(RCODE_NXDOMAIN);
    const notify = Buffer.from(q);
    notify.writeUInt16BE(0x2000, 2); // opcode 4 (NOTIFY)
    expect(parseResponse((await dns.answer('net1', '10.0.0.9', notify))!).rcode).toBe(4);
    const noaddr = parseResponse((await dns.answer('net1', '10.0.0.9', buildQuery(2, 'noaddr', TYPE_A)))!);
    expect(noaddr.rcode).toBe(0);
    expect(noaddr.answers).toEqual([]);
  });
});
