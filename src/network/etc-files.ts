import { parseIp } from './ipam.js';
import { InvalidParameterError } from '../errors.js';

/**
 * Contents of a container's /etc/hosts, /etc/resolv.conf and /etc/hostname, as dockerd writes them
 * (libnetwork etchosts and resolvconf).
 */

export interface HostsEntry {
  ip: string;
  names: string[];
}

const HOSTS_HEADER = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::\tip6-localnet',
  'ff00::\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

/** `--add-host name:ip` (also `name=ip`, and `host-gateway` replaced by `hostGateway`). */
export function parseExtraHost(spec: string, hostGateway: string | undefined): HostsEntry {
  const m = /^([^:=]+)[:=](.+)$/.exec(spec);
  if (!m) throw new InvalidParameterError(`invalid extra host: ${spec}`);
  let ip = m[2]!.trim();
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (ip === 'host-gateway') {
    if (!hostGateway) throw new InvalidParameterError('unable to derive the IP value for host-gateway');
    ip = hostGateway;
  }
  if (parseIp(ip) === undefined && !ip.includes(':')) throw new InvalidParameterError(`invalid IP address in add-host: "${ip}"`);
  return { ip, names: [m[1]!.trim()] };
}

/**
 * The container's own entries come after the fixed localhost block, then --add-host entries and
 * legacy --link entries, each `ip\tname...`.
 */
export function buildHostsFile(own: readonly HostsEntry[], extra: readonly HostsEntry[]): string {
  const lines = [...HOSTS_HEADER];
  for (const e of [...extra, ...own]) lines.push(`${e.ip}\t${e.names.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** hostname and domainname as the entry names for the container's own address. */
export function ownHostNames(hostname: string, domainname: string | undefined, aliases: readonly string[] = []): string[] {
  const names: string[] = [];
  if (domainname) names.push(`${hostname}.${domainname}`);
  names.push(hostname);
  for (const a of aliases) if (!names.includes(a)) names.push(a);
  return names;
}

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (line === '') continue;
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.search = rest;
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}

function isLoopback(ns: string): boolean {
  return ns.startsWith('127.') || ns === '::1';
}

export function renderResolvConf(r: ResolvConf): string {
  const lines: string[] = [];
  if (r.search.length > 0) lines.push(`search ${r.search.join(' ')}`);
  for (const ns of r.nameservers) lines.push(`nameserver ${ns}`);
  if (r.options.length > 0) lines.push(`options ${r.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

export interface ResolvInputs {
  /** The host's resolv.conf contents. */
  host: string;
  /** Embedded DNS address for user-defined networks; undefined on the default bridge. */
  embedded: string | undefined;
  dns: readonly string[];
  dnsSearch: readonly string[];
  dnsOptions: readonly string[];
  /** host network mode: the host's file unchanged unless overridden. */
  hostMode: boolean;
}

/**
 * dockerd's rules: user networks get the embedded resolver (the host's servers become its upstreams);
 * the default bridge gets the host's servers without loopback ones (8.8.8.8/8.8.4.4 when none remain);
 * --dns / --dns-search / --dns-option override.
 */
export function buildResolvConf(i: ResolvInputs): string {
  const host = parseResolvConf(i.host);
  if (i.hostMode && i.dns.length === 0 && i.dnsSearch.length === 0 && i.dnsOptions.length === 0) {
    return i.host.endsWith('\n') || i.host === '' ? i.host : `${i.host}\n`;
  }
  const out: ResolvConf = { nameservers: [], search: host.search, options: host.options };
  if (i.embedded !== undefined) {
    out.nameservers = [i.embedded];
    out.options = out.options.filter((o) => !o.startsWith('ndots:'));
    out.options.push('ndots:0');
  } else if (i.dns.length > 0) {
    out.nameservers = [...i.dns];
  } else {
    out.nameservers = host.nameservers.filter((ns) => !isLoopback(ns) && !ns.includes(':'));
    if (out.nameservers.length === 0) out.nameservers = ['8.8.8.8', '8.8.4.4'];
  }
  if (i.dnsSearch.length > 0) out.search = i.dnsSearch.filter((s) => s !== '.');
  if (i.dnsOptions.length > 0) out.options = [...i.dnsOptions];
  return renderResolvConf(out);
}

/** Upstream resolvers for the embedded DNS: --dns when given, else the host's (loopback ones too: berthd forwards). */
export function upstreamsFrom(hostResolv: string, dns: readonly string[]): string[] {
  if (dns.length > 0) return [...dns];
  return parseResolvConf(hostResolv).nameservers.filter((ns) => !ns.includes(':') || ns === '::1');
}
