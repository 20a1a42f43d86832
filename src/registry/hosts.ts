import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Agent, Dispatcher } from 'undici';
import { createAgent } from './http.js';
import { InvalidParameterError } from '../errors.js';
import { packageRequire } from '../package-root.js';
import { parseHostsToml, type HostsToml } from './hosts-toml.js';

/** Where Docker Hub's registry API lives (docker.io names are served there). */
export const HUB_REGISTRY = 'registry-1.docker.io';
export const HUB_INDEX_SERVER = 'https://index.docker.io/v1/';

/** One place a repository may be fetched from. */
export interface Endpoint {
  /** scheme://host[:port] */
  origin: string;
  /** The registry as image names spell it (docker.io, 127.0.0.1:5000). */
  registry: string;
  mirror: boolean;
  /** Plain HTTP, or HTTPS without certificate verification. */
  insecure: boolean;
  dispatcher: Dispatcher;
}

export interface RegistryHostsOptions {
  mirrors: readonly string[];
  insecureRegistries: readonly string[];
  /** certs.d: <dir>/<host[:port]>/ca.crt (and *.crt), client.cert + client.key. */
  certsDir: string;
}

interface Cidr {
  family: 4 | 6;
  bits: bigint;
  prefix: number;
}

function ipToBigInt(ip: string): { family: 4 | 6; value: bigint } | undefined {
  const fam = isIP(ip);
  if (fam === 4) return { family: 4, value: ip.split('.').reduce((a, p) => (a << 8n) | BigInt(Number(p)), 0n) };
  if (fam === 6) {
    let s = ip;
    const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
    if (v4) {
      const n = ipToBigInt(v4[1] as string)?.value ?? 0n;
      s = s.replace(v4[1] as string, `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`);
    }
    const [head = '', tail] = s.split('::');
    const h = head === '' ? [] : head.split(':');
    const t = tail === undefined || tail === '' ? [] : tail.split(':');
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return { family: 6, value: groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g || '0', 16)), 0n) };
  }
  return undefined;
}

function parseCidr(s: string): Cidr | undefined {
  const m = /^(.+)\/(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const ip = ipToBigInt(m[1] as string);
  if (!ip) return undefined;
  return { family: ip.family, bits: ip.value, prefix: Number(m[2]) };
}

function inCidr(ip: string, c: Cidr): boolean {
  const v = ipToBigInt(ip);
  if (!v || v.family !== c.family) return false;
  const width = c.family === 4 ? 32n : 128n;
  const shift = width - BigInt(c.prefix);
  return v.value >> shift === c.bits >> shift;
}

/** host part of host[:port] (IPv6 in brackets). */
export function hostOnly(hostport: string): string {
  if (hostport.startsWith('[')) return hostport.slice(1, hostport.indexOf(']'));
  const i = hostport.lastIndexOf(':');
  return i >= 0 && hostport.indexOf(':') === i ? hostport.slice(0, i) : hostport;
}

/**
 * The registry endpoints for a reference's domain, as dockerd picks them: mirrors then registry-1.docker.io for
 * docker.io; HTTPS for secure registries; HTTPS without verification then plain HTTP for insecure ones
 * (loopback is insecure by default). TLS trust per registry comes from certs.d.
 */
export class RegistryHosts {
  private readonly cidrs: Cidr[];
  private readonly names: Set<string>;
  private readonly agents = new Map<string, Agent>();

  constructor(private readonly opts: RegistryHostsOptions) {
    this.cidrs = [parseCidr('127.0.0.0/8') as Cidr, parseCidr('::1/128') as Cidr];
    this.names = new Set();
    for (const r of opts.insecureRegistries) {
      const entry = r.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '');
      const c = parseCidr(entry);
      if (c) this.cidrs.push(c);
      else this.names.add(entry.toLowerCase());
    }
    for (const m of opts.mirrors) {
      let u: URL;
      try {
        u = new URL(m);
      } catch {
        throw new InvalidParameterError(`invalid mirror: "${m}" is not a valid URI`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidParameterError(`invalid mirror: unsupported scheme "${u.protocol.slice(0, -1)}" in "${m}"`);
    }
  }

  /** dockerd's isSecureIndex: named in insecure-registries, or an IP (localhost included) inside an insecure CIDR. */
  isInsecure(hostport: string): boolean {
    const hp = hostport.toLowerCase();
    if (this.names.has(hp) || this.names.has(hostOnly(hp))) return true;
    const host = hostOnly(hp);
    const ips = host === 'localhost' ? ['127.0.0.1', '::1'] : isIP(host) ? [host] : [];
    return ips.some((ip) => this.cidrs.some((c) => inCidr(ip, c)));
  }

  /** certs.d/<registry>/hosts.toml, read at each resolution (edits apply without a restart). */
  private hostsToml(domain: string): HostsToml | undefined {
    const file = join(this.opts.certsDir, domain, 'hosts.toml');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
    return parseHostsToml(text, file);
  }

  /** Endpoints to try in order; `forPush` leaves out mirrors (pushes go to the registry itself). */
  endpoints(domain: string, forPush = false): Endpoint[] {
    const out: Endpoint[] = [];
    // containerd-style per-registry mirrors: hosts.toml's [host."…"] tables with the pull capability, in order.
    const toml = forPush ? undefined : this.hostsToml(domain);
    for (const h of toml?.hosts ?? []) {
      if (!h.capabilities.includes('pull')) continue;
      const u = new URL(h.origin);
      const insecure = u.protocol === 'http:' || h.skipVerify || this.isInsecure(u.host);
      out.push({ origin: u.origin, registry: domain, mirror: true, insecure, dispatcher: this.agentFor(u.host, insecure) });
    }
    if (domain === 'docker.io') {
      if (!forPush) {
        for (const m of this.opts.mirrors) {
          const u = new URL(m);
          const insecure = u.protocol === 'http:' || this.isInsecure(u.host);
          out.push({ origin: u.origin, registry: domain, mirror: true, insecure, dispatcher: this.agentFor(u.host, insecure) });
        }
      }
      out.push({ origin: `https://${HUB_REGISTRY}`, registry: domain, mirror: false, insecure: false, dispatcher: this.agentFor(HUB_REGISTRY, false) });
      return out;
    }
    if (toml?.server) {
      const u = new URL(toml.server);
      const insecure = u.protocol === 'http:' || this.isInsecure(u.host);
      out.push({ origin: u.origin, registry: domain, mirror: false, insecure, dispatcher: this.agentFor(u.host, insecure) });
      return out;
    }
    const insecure = this.isInsecure(domain);
    out.push({ origin: `https://${domain}`, registry: domain, mirror: false, insecure, dispatcher: this.agentFor(domain, insecure) });
    if (insecure) out.push({ origin: `http://${domain}`, registry: domain, mirror: false, insecure, dispatcher: this.agentFor(domain, true) });
    return out;
  }

  /** A keep-alive agent per host with its certs.d trust and client certificate. */
  agentFor(hostport: string, insecure: boolean): Agent {
    const key = `${hostport}|${insecure}`;
    let a = this.agents.get(key);
    if (!a) {
      const tls = this.tlsFor(hostport);
      a = createAgent({
        connect: { ...tls, rejectUnauthorized: !insecure, timeout: 30_000 },
        keepAliveTimeout: 30_000,
        connections: 16,
        headersTimeout: 60_000,
        bodyTimeout: 120_000,
      });
      this.agents.set(key, a);
    }
    return a;
  }

  private tlsFor(hostport: string): { ca?: string[]; cert?: string; key?: string } {
    const dir = join(this.opts.certsDir, hostport.replace(/^\[|\]/g, (c) => c));
    if (!existsSync(dir)) return {};
    const out: { ca?: string[]; cert?: string; key?: string } = {};
    const cas: string[] = [];
    for (const f of readdirSync(dir).sort()) {
      const p = join(dir, f);
      if (f.endsWith('.crt')) cas.push(readFileSync(p, 'utf8'));
      else if (f.endsWith('.cert')) {
        const keyFile = join(dir, `${f.slice(0, -'.cert'.length)}.key`);
        if (!existsSync(keyFile)) throw new InvalidParameterError(`missing key ${keyFile} for client certificate ${p}. CA certificates must use the extension .crt`);
        out.cert = readFileSync(p, 'utf8');
        out.key = readFileSync(keyFile, 'utf8');
      }
    }
    // node:tls loaded here: imported from ESM it would build its root certificate list at every start.
    if (cas.length > 0) out.ca = [...(packageRequire('node:tls') as typeof import('node:tls')).rootCertificates, ...cas];
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.close().catch(() => undefined)));
    this.agents.clear();
  }
}
