import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { InvalidParameterError } from '../errors.js';
import { buildHostsFile, buildResolvConf, ownHostNames, parseExtraHost, upstreamsFrom, type HostsEntry } from './etc-files.js';
import type { Upstream } from './dns-server.js';
import type { NetworkContext, SandboxRecord } from './types.js';

/** Writes a file in place when it exists (bind mounts keep pointing at the same inode), atomically otherwise. */
export function writeEtcFile(path: string, text: string, inPlace: boolean): void {
  if (inPlace && existsSync(path)) {
    writeFileSync(path, text, { mode: 0o644 });
    return;
  }
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

/** hosts, resolv.conf and hostname of the sandboxes, from the host's files and the network records. */
export class SandboxFiles {
  constructor(private readonly ctx: NetworkContext) {}

  hostResolvText(): string {
    try {
      return readFileSync(this.ctx.opts.hostResolvConf ?? '/etc/resolv.conf', 'utf8');
    } catch {
      return '';
    }
  }

  /** The embedded DNS's upstreams: daemon.json dns, else the host's resolvers. */
  hostUpstreams(): Upstream[] {
    return upstreamsFrom(this.hostResolvText(), this.ctx.opts.dns ?? []).map((host) => ({ host, port: 53 }));
  }

  resolvFor(sb: SandboxRecord, embedded: string | undefined, hostMode: boolean): string {
    return buildResolvConf({
      host: this.hostResolvText(),
      embedded,
      dns: sb.dns.length > 0 ? sb.dns : embedded === undefined && !hostMode ? this.ctx.opts.dns ?? [] : sb.dns,
      dnsSearch: sb.dnsSearch,
      dnsOptions: sb.dnsOptions,
      hostMode,
    });
  }

  /** hosts, resolv.conf and hostname of a bridge/none sandbox. */
  write(sb: SandboxRecord, inPlace: boolean): void {
    const { state } = this.ctx;
    const own: HostsEntry[] = [];
    let embedded: string | undefined;
    for (const nid of sb.order) {
      const ep = state.endpoint(nid, sb.containerId);
      const n = state.networks.get(nid);
      if (!ep?.ip || !n) continue;
      own.push({ ip: ep.ip, names: ownHostNames(sb.hostname, sb.domainname || undefined) });
      if (embedded === undefined && !state.isDefaultBridge(n)) embedded = ep.gateway;
    }
    const primary = state.primaryEndpoint(sb);
    const extra = sb.extraHosts.map((h) => parseExtraHost(h, primary?.gateway));
    for (const l of sb.links) {
      const target = state.findSandbox(l.name);
      const ip = target ? state.primaryEndpoint(target)?.ip : undefined;
      if (!target || !ip) throw new InvalidParameterError(`could not get container for ${l.name}`);
      // dockerd: the alias, the linked container's hostname, and its name when that differs from the alias.
      const names = [l.alias, target.hostname || target.containerId.slice(0, 12), target.name].filter((x, i, a) => x !== '' && a.indexOf(x) === i);
      extra.push({ ip, names });
    }
    writeEtcFile(sb.hostsPath, buildHostsFile(own, extra), inPlace);
    if (!inPlace || !existsSync(sb.resolvConfPath)) writeEtcFile(sb.resolvConfPath, this.resolvFor(sb, embedded, false), inPlace);
    writeEtcFile(sb.hostnamePath, `${sb.hostname}\n`, inPlace);
  }
}
