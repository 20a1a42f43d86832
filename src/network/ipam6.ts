import { BerthError, ConflictError, InvalidParameterError } from '../errors.js';

/**
 * IPv6 address management for networks created with EnableIPv6, pure logic: 128-bit addresses as bigints,
 * subnets, the gateway (the subnet's first address unless given), static and allocated endpoint addresses.
 */

export interface Cidr6 {
  base: bigint;
  prefix: number;
}

const ALL = (1n << 128n) - 1n;

export function parseIp6(s: string): bigint | undefined {
  const t = s.trim().toLowerCase();
  if (!/^[0-9a-f:]+$/.test(t) || t.length < 2) return undefined;
  const halves = t.split('::');
  if (halves.length > 2) return undefined;
  const part = (x: string): string[] | undefined => {
    if (x === '') return [];
    const g = x.split(':');
    return g.every((h) => /^[0-9a-f]{1,4}$/.test(h)) ? g : undefined;
  };
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const groups = halves.length === 2 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head;
  if (groups.length !== 8 || (halves.length === 2 && head.length + tail.length > 7)) return undefined;
  return groups.reduce((n, h) => (n << 16n) | BigInt(parseInt(h, 16)), 0n);
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups as "::". */
export function ip6ToString(n: bigint): string {
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function mask6(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL << BigInt(128 - prefix)) & ALL;
}

export function parseCidr6(s: string): Cidr6 | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp6(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (ip === undefined || !/^\d{1,3}$/.test(p) || Number(p) > 128) return undefined;
  const prefix = Number(p);
  return { base: ip & mask6(prefix), prefix };
}

export function cidr6ToString(c: Cidr6): string {
  return `${ip6ToString(c.base)}/${c.prefix}`;
}

export function cidr6Contains(c: Cidr6, ip: bigint): boolean {
  return (ip & mask6(c.prefix)) === c.base;
}

export function cidr6Overlaps(a: Cidr6, b: Cidr6): boolean {
  return cidr6Contains(a, b.base) || cidr6Contains(b, a.base);
}

function cidr6Last(c: Cidr6): bigint {
  return c.base | (~mask6(c.prefix) & ALL);
}

export interface SubnetPlan6 {
  subnet: Cidr6;
  gateway: bigint;
  ipRange: Cidr6 | undefined;
}

/** A network's IPv6 IPAM entry: subnet without host bits, gateway inside it (default: first address), ip-range inside it. */
export function planSubnet6(subnetText: string, gateway?: string, ipRange?: string): SubnetPlan6 {
  const subnet = parseCidr6(subnetText);
  if (!subnet) throw new InvalidParameterError(`invalid subnet ${subnetText}: invalid CIDR address: ${subnetText}`);
  if (parseIp6(subnetText.slice(0, subnetText.indexOf('/'))) !== subnet.base) {
    throw new InvalidParameterError(`invalid subnet ${subnetText}: it should be ${cidr6ToString(subnet)}`);
  }
  if (subnet.prefix > 126) throw new InvalidParameterError(`invalid subnet ${subnetText}: too small for a network`);
  let gw = subnet.base + 1n;
  if (gateway !== undefined && gateway !== '') {
    const g = parseIp6(gateway);
    if (g === undefined) throw new InvalidParameterError(`invalid gateway: ${gateway}`);
    if (!cidr6Contains(subnet, g)) throw new InvalidParameterError(`no matching subnet for gateway ${gateway}`);
    gw = g;
  }
  let range: Cidr6 | undefined;
  if (ipRange !== undefined && ipRange !== '') {
    range = parseCidr6(ipRange);
    if (!range) throw new InvalidParameterError(`invalid ip-range ${ipRange}`);
    if (!cidr6Contains(subnet, range.base) || range.prefix < subnet.prefix) throw new InvalidParameterError(`no matching subnet for range ${ipRange}`);
  }
  return { subnet, gateway: gw, ipRange: range };
}

/** A requested static address (inside the subnet, not the subnet address, the gateway or taken), or the lowest free one. */
export function allocateAddress6(plan: SubnetPlan6, used: ReadonlySet<bigint>, requested?: string): bigint {
  if (requested !== undefined && requested !== '') {
    const ip = parseIp6(requested);
    if (ip === undefined) throw new InvalidParameterError(`invalid IPv6 address: ${requested}`);
    if (!cidr6Contains(plan.subnet, ip)) {
      throw new InvalidParameterError(`invalid endpoint settings:\nno configured subnet or ip-range contain the IP address ${requested}`);
    }
    if (ip === plan.subnet.base || ip === plan.gateway || used.has(ip)) throw new ConflictError('Address already in use');
    return ip;
  }
  const from = plan.ipRange ? plan.ipRange.base : plan.subnet.base + 1n;
  const to = plan.ipRange ? cidr6Last(plan.ipRange) : cidr6Last(plan.subnet);
  // Addresses are handed out from the bottom and few are ever taken: a bounded walk always finds one.
  for (let ip = from, n = 0; ip <= to && n < 65536; ip++, n++) {
    if (ip !== plan.subnet.base && ip !== plan.gateway && !used.has(ip)) return ip;
  }
  throw new BerthError(`no available IPv6 addresses on this network's address pools: ${cidr6ToString(plan.subnet)}`);
}
