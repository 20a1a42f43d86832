import { InvalidParameterError } from '../errors.js';

/** One mirror of a registry as containerd's hosts.toml declares it. */
export interface HostsTomlHost {
  /** scheme://host[:port] (a path after the host is not supported: override_path mirrors are refused). */
  origin: string;
  capabilities: string[];
  skipVerify: boolean;
}

export interface HostsToml {
  /** The upstream registry (`server`), tried after the mirrors; undefined: https://<registry>. */
  server?: string;
  hosts: HostsTomlHost[];
}

type TomlValue = string | boolean | string[];

function parseValue(raw: string, where: string): TomlValue {
  const v = raw.trim();
  if (v === 'true' || v === 'false') return v === 'true';
  if (/^"(?:[^"\\]|\\.)*"$/.test(v)) return JSON.parse(v) as string;
  if (/^'[^']*'$/.test(v)) return v.slice(1, -1);
  if (v.startsWith('[') && v.endsWith(']')) {
    const inner = v.slice(1, -1).trim();
    if (inner === '') return [];
    return inner.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
      const x = parseValue(s, where);
      if (typeof x !== 'string') throw new InvalidParameterError(`${where}: arrays hold strings only`);
      return x;
    });
  }
  throw new InvalidParameterError(`${where}: unsupported value ${v}`);
}

/**
 * containerd's registry host configuration (certs.d/<registry>/hosts.toml): `server = "…"` and `[host."<url>"]`
 * tables with `capabilities` (pull, resolve, push) and `skip_verify`, mirrors in file order. The subset of TOML
 * those files use: comments, `key = value` with strings, booleans and string arrays on one line, table headers.
 */
export function parseHostsToml(text: string, file: string): HostsToml {
  const out: HostsToml = { hosts: [] };
  let current: HostsTomlHost | undefined;
  text.split('\n').forEach((rawLine, i) => {
    const where = `${file}:${i + 1}`;
    const line = rawLine.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const table = /^\[\s*host\.(?:"([^"]+)"|'([^']+)')\s*\]$/.exec(line);
    if (table) {
      const url = table[1] ?? table[2] ?? '';
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        throw new InvalidParameterError(`${where}: invalid host URL "${url}"`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidParameterError(`${where}: unsupported scheme in "${url}"`);
      if (u.pathname !== '/' && u.pathname !== '' && u.pathname !== '/v2' && u.pathname !== '/v2/') {
        throw new InvalidParameterError(`${where}: mirror paths (override_path) are not supported: "${url}"`);
      }
      current = { origin: u.origin, capabilities: ['pull', 'resolve', 'push'], skipVerify: false };
      out.hosts.push(current);
      return;
    }
    if (line.startsWith('[')) throw new InvalidParameterError(`${where}: unsupported table ${line}`);
    const eq = line.indexOf('=');
    if (eq < 0) throw new InvalidParameterError(`${where}: expected key = value`);
    const key = line.slice(0, eq).trim();
    const value = parseValue(line.slice(eq + 1), where);
    if (!current) {
      if (key === 'server' && typeof value === 'string') out.server = value.replace(/\/+$/, '');
      return; // other top-level keys (ca, client…) are certs.d's business
    }
    if (key === 'capabilities' && Array.isArray(value)) current.capabilities = value;
    else if (key === 'skip_verify' && typeof value === 'boolean') current.skipVerify = value;
  });
  return out;
}
