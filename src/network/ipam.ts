import { InvalidParameterError, ConflictError, BerthError } from '../errors.js';

/**
 * IPv4 address management, pure logic: CIDR parsing, pools of subnets, address allocation
 * inside a subnet (gateway, ip-range, static addresses). Persistence lives in the network repo;
 * callers pass in what is already taken.
 */

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits cleared). */
  base: number;
  prefix: number;
}

export interface AddressPool {
  /** e.g. "172.17.0.0/12" */
  base: string;
  /** prefix length of the subnets carved from it, e.g. 16 */
  size: number;
}

/** Docker's local default pools: 172.17-31.0.0/16 then 192.168.0-240.0/20. */
export const DOCKER_DEFAULT_POOLS: readonly AddressPool[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/16', size: 16 },
  { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

export function parseIp(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255 || (m[i]!.length > 1 && m[i]!.startsWith('0'))) return undefined;
    n = n * 256 + part;
  }
  return n >>> 0;
}

export function ipToString(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function mustParseIp(s: string, what = 'IP address'): number {
  const n = parseIp(s);
  if (n === undefined) throw new InvalidParameterError(`invalid ${what}: ${s}`);
  return n;
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "a.b.c.d/n"; host bits are cleared (Docker refuses them only for --subnet; see parseSubnet). */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (ip === undefined || !/^\d{1,2}$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > 32) return undefined;
  return { base: (ip & maskOf(prefix)) >>> 0, prefix };
}

/** A subnet as given to `network create --subnet`: valid CIDR, IPv4, no host bits set. */
export function parseSubnet(s: string): Cidr {
  const c = parseCidr(s);
  if (!c) throw new InvalidParameterError(`invalid subnet ${s}: invalid CIDR address: ${s}`);
  const ip = parseIp(s.slice(0, s.indexOf('/')))!;
  if (ip !== c.base) {
    throw new InvalidParameterError(`invalid subnet ${s}: it should be ${cidrToString(c)}`);
  }
  if (c.prefix > 30) throw new InvalidParameterError(`invalid subnet ${s}: too small for a network`);
  return c;
}

export function cidrToString(c: Cidr): string {
  return `${ipToString(c.base)}/${c.prefix}`;
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function cidrLast(c: Cidr): number {
  return (c.base + cidrSize(c) - 1) >>> 0;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.base;
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b.base) || cidrContains(b, a.base);
}

/**
 * The first subnet of `pool.size` carved from the pools (in order) that overlaps none of `taken`.
 * `taken` holds existing networks' subnets and the host's routes.
 */
export function allocateSubnet(pools: readonly AddressPool[], taken: readonly Cidr[]): Cidr {
  for (const pool of pools) {
    const base = parseCidr(pool.base);
    if (!base) throw new InvalidParameterError(`invalid address pool base ${pool.base}`);
    if (!Number.isInteger(pool.size) || pool.size < base.prefix || pool.size > 30) {
      throw new InvalidParameterError(`invalid address pool size ${pool.size} for ${pool.base}`);
    }
    const step = 2 ** (32 - pool.size);
    const end = base.base + cidrSize(base);
    for (let n = base.base; n < end; n += step) {
      const candidate: Cidr = { base: n >>> 0, prefix: pool.size };
      if (!taken.some((t) => cidrOverlaps(t, candidate))) return candidate;
    }
  }
  throw new BerthError('all predefined address pools have been fully subnetted');
}

export interface SubnetPlan {
  subnet: Cidr;
  gateway: number;
  /** Where dynamic addresses come from (the whole subnet when unset). */
  ipRange: Cidr | undefined;
}

/**
 * Validates a network's IPAM config entry (subnet, optional gateway and ip-range) and fills in the gateway
 * (first usable address) as dockerd does.
 */
export function planSubnet(subnet: Cidr, gateway?: string, ipRange?: string): SubnetPlan {
  let gw: number;
  if (gateway !== undefined && gateway !== '') {
    gw = mustParseIp(gateway, 'gateway');
    if (!cidrContains(subnet, gw)) {
      throw new InvalidParameterError(`no matching subnet for gateway ${gateway}`);
    }
  } else {
    gw = (subnet.base + 1) >>> 0;
  }
  let range: Cidr | undefined;
  if (ipRange !== undefined && ipRange !== '') {
    range = parseCidr(ipRange);
    if (!range) throw new InvalidParameterError(`invalid ip-range ${ipRange}`);
    if (!cidrContains(subnet, range.base) || range.prefix < subnet.prefix) {
      throw new InvalidParameterError(`no matching subnet for range ${ipRange}`);
    }
  }
  return { subnet, gateway: gw, ipRange: range };
}

/**
 * Picks a free address for an endpoint: a requested static one (must lie in the subnet, not be the
 * network or broadcast address, the gateway or already used) or the lowest free one in the ip-range.
 */
export function allocateAddress(plan: SubnetPlan, used: ReadonlySet<number>, requested?: string): number {
  const first = (plan.subnet.base + 1) >>> 0;
  const last = (cidrLast(plan.subnet) - 1) >>> 0;
  if (requested !== undefined && requested !== '') {
    const ip = mustParseIp(requested, 'IPv4 address');
    if (!cidrContains(plan.subnet, ip)) {
      throw new InvalidParameterError(
        `invalid endpoint settings:\nno configured subnet or ip-range contain the IP address ${requested}`,
      );
    }
    if (ip < first || ip > last || ip === plan.gateway || used.has(ip)) {
      throw new ConflictError(`Address already in use`);
    }
    return ip;
  }
  const from = plan.ipRange ? Math.max(plan.ipRange.base, first) : first;
  const to = plan.ipRange ? Math.min(cidrLast(plan.ipRange), last) : last;
  for (let ip = from; ip <= to; ip++) {
    if (ip !== plan.gateway && !used.has(ip >>> 0)) return ip >>> 0;
  }
  throw new BerthError(`no available IPv4 addresses on this network's address pools: ${cidrToString(plan.subnet)}`);
}

/** Docker's classic MAC derivation: 02:42 followed by the four bytes of the IPv4 address. */
export function macForIp(ip: number): string {
  const b = [0x02, 0x42, ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function isValidMac(mac: string): boolean {
  return /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac);
}

/** Host routes as CIDRs from `ip -j route` output, ignoring the default route. */
export function routesToCidrs(json: string): Cidr[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const out: Cidr[] = [];
  for (const r of parsed) {
    const dst = (r as { dst?: unknown }).dst;
    if (typeof dst !== 'string' || dst === 'default') continue;
    const c = dst.includes('/') ? parseCidr(dst) : parseCidr(`${dst}/32`);
    if (c) out.push(c);
  }
  return out;
}
