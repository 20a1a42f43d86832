import { isIP } from 'node:net';

/** One `-H` address, parsed the way dockerd reads them. */
export type HostAddress =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  /** Sockets handed over by systemd: all of them (`fd://`, `fd://*`), one fd number, or one LISTEN_FDNAMES name. */
  | { kind: 'fd'; select: 'all' | number | string };

export const DEFAULT_TLS_PORT = 2376;
export const DEFAULT_PLAIN_PORT = 2375;

/** Parses `unix:///path`, `/path`, `tcp://host:port`, `tcp://:port`, `fd://`, `fd://N`, `fd://name`. */
export function parseHost(spec: string, tls: boolean): HostAddress {
  if (spec.startsWith('/')) return { kind: 'unix', path: spec };
  const m = /^([a-z]+):\/\/(.*)$/.exec(spec);
  if (!m) throw new Error(`invalid host ${JSON.stringify(spec)}: expected unix:///path, tcp://host:port or fd://`);
  const [, proto, rest = ''] = m;
  switch (proto) {
    case 'unix':
      if (!rest.startsWith('/')) throw new Error(`invalid host ${JSON.stringify(spec)}: a unix socket needs an absolute path`);
      return { kind: 'unix', path: rest };
    case 'fd':
      if (rest === '' || rest === '*') return { kind: 'fd', select: 'all' };
      if (/^\d+$/.test(rest)) return { kind: 'fd', select: Number(rest) };
      return { kind: 'fd', select: rest };
    case 'tcp': {
      const hp = /^(\[[^\]]+\]|[^:/]*)(?::(\d+))?\/?$/.exec(rest);
      if (!hp) throw new Error(`invalid host ${JSON.stringify(spec)}: expected tcp://host:port`);
      let host = hp[1] ?? '';
      if (host.startsWith('[')) host = host.slice(1, -1);
      if (host === '' || host === 'localhost') host = '127.0.0.1';
      if (host.includes(':') && isIP(host) !== 6) throw new Error(`invalid host ${JSON.stringify(spec)}: bad IPv6 address`);
      const port = hp[2] !== undefined ? Number(hp[2]) : tls ? DEFAULT_TLS_PORT : DEFAULT_PLAIN_PORT;
      if (!(port > 0 && port < 65536)) throw new Error(`invalid host ${JSON.stringify(spec)}: port out of range`);
      return { kind: 'tcp', host, port };
    }
    default:
      throw new Error(`invalid host ${JSON.stringify(spec)}: unsupported protocol ${proto} (unix, tcp or fd)`);
  }
}

/** True for 127.0.0.0/8 and ::1. */
export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === '::1';
}
