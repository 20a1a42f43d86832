import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, InvalidParameterError, errorMessage } from '../errors.js';
import { allocateSubnet, cidrOverlaps, cidrToString, DOCKER_DEFAULT_POOLS, ipToString, parseCidr, parseIp, routesToCidrs, type Cidr } from './ipam.js';
import { BridgeTakenError } from './plumbing.js';
import type { DaemonRegistry } from './daemon-registry.js';
import type { EmbeddedDns } from './dns-server.js';
import { firewallTag, removeFirewallOf } from './firewall.js';
import { nowRfc3339, randomId } from './state.js';
import type { NetworkContext, NetworkRecord } from './types.js';

export const BRIDGE_NAME_OPT = 'com.docker.network.bridge.name';
export const MTU_OPT = 'com.docker.network.driver.mtu';
export const MASQ_OPT = 'com.docker.network.bridge.enable_ip_masquerade';
export const ICC_OPT = 'com.docker.network.bridge.enable_icc';
export const HOST_BINDING_OPT = 'com.docker.network.bridge.host_binding_ipv4';

/**
 * What daemon start needs before any container: IP forwarding, leftovers of a crash removed (tagged
 * links and namespaces nobody owns), the predefined networks (bridge, host, none), free subnets and
 * bridge names chosen, the bridges brought up with their embedded DNS.
 */
export class NetworkBootstrap {
  constructor(
    private readonly ctx: NetworkContext,
    private readonly dns: EmbeddedDns,
  ) {}

  /** Turns on IPv4 forwarding; the warning for docker info when that fails. */
  async enableForwarding(): Promise<string[]> {
    try {
      await this.ctx.plumbing.sysctl('net.ipv4.ip_forward', '1');
      this.ctx.log.info('net.ipv4.ip_forward set to 1 (containers need routing to reach the outside)');
      return [];
    } catch (e) {
      this.ctx.log.warn({ err: errorMessage(e) }, 'could not enable net.ipv4.ip_forward');
      return ['WARNING: IPv4 forwarding is disabled'];
    }
  }

  /** Links tagged with this daemon's owner alias that no network or endpoint accounts for. */
  async removeLeftoverLinks(): Promise<void> {
    const { state, plumbing, owner, log } = this.ctx;
    const wanted = new Set<string>();
    for (const n of state.networks.values()) if (n.bridge) wanted.add(n.bridge);
    for (const e of state.allEndpoints()) if (e.hostIfName) wanted.add(e.hostIfName);
    for (const link of await plumbing.links()) {
      if (link.ifalias === owner && !wanted.has(link.ifname)) {
        log.info({ link: link.ifname }, 'removing a leftover link');
        await plumbing.deleteLink(link.ifname);
      }
    }
  }

  /**
   * What daemons that died without stopping (killed) left on the host: their links (tagged with their owner alias)
   * and firewall chains, which would otherwise drop traffic of a later bridge that reuses a name. Only daemons
   * the registry proves dead, and none whose bridge still has ports (its containers may still be running, for
   * that daemon to take back when it restarts).
   */
  async removeDeadDaemons(registry: DaemonRegistry): Promise<void> {
    const { plumbing, log, opts } = this.ctx;
    const dead = registry.dead().filter((id) => id !== opts.daemonId);
    if (dead.length === 0) return;
    const links = await plumbing.links();
    for (const id of dead) {
      const theirs = links.filter((l) => l.ifalias === `berth:${id}`);
      const bridges = new Set(theirs.filter((l) => l.linkinfo?.info_kind === 'bridge').map((l) => l.ifname));
      const attached = links.filter((l) => l.master !== undefined && bridges.has(l.master));
      if (attached.length > 0) {
        log.info({ daemon: id, ports: attached.map((l) => l.ifname) }, 'a dead daemon\'s bridge still has ports: its leftovers are kept');
        continue;
      }
      for (const l of theirs) await plumbing.deleteLink(l.ifname, true);
      const rules = await removeFirewallOf(log, firewallTag(id));
      registry.forget(id);
      log.info({ daemon: id, links: theirs.map((l) => l.ifname), rules }, 'removed the leftovers of a daemon that is gone');
    }
  }

  async removeLeftoverNetns(): Promise<void> {
    const dir = join(this.ctx.opts.execRoot, 'netns');
    if (!existsSync(dir)) return;
    const wanted = new Set([...this.ctx.state.sandboxes.values()].map((s) => s.netnsPath).filter((p): p is string => p !== undefined));
    for (const f of readdirSync(dir)) {
      const path = join(dir, f);
      if (!wanted.has(path)) {
        this.ctx.log.info({ path }, 'removing a leftover network namespace');
        await this.ctx.plumbing.deleteNetns(path).catch((e: unknown) => this.ctx.log.warn({ path, err: errorMessage(e) }, 'could not remove a leftover network namespace'));
      }
    }
  }

  async ensurePredefined(): Promise<void> {
    const { state, opts } = this.ctx;
    const byName = new Map([...state.networks.values()].map((n) => [n.Name, n]));
    for (const [name, driver] of [['host', 'host'], ['none', 'null']] as const) {
      if (byName.has(name)) continue;
      state.saveNetwork({
        Id: randomId(), Name: name, Created: nowRfc3339(), Driver: driver, Internal: false, Attachable: false,
        Options: {}, Labels: {}, IPAM: { Driver: 'default', Options: null, Config: [] }, mtu: 1500,
        predefined: true, autoSubnet: false, masquerade: false,
      }, true);
    }
    const existing = byName.get('bridge');
    if (existing) {
      this.applyDaemonBridgeConfig(existing, false);
      return;
    }
    let subnet: Cidr;
    let gateway: string;
    if (opts.bip) {
      const c = parseCidr(opts.bip);
      const ip = parseIp(opts.bip.split('/')[0] ?? '');
      if (!c || ip === undefined) throw new InvalidParameterError(`invalid bip: ${opts.bip}`);
      subnet = c;
      gateway = ipToString(ip);
    } else {
      subnet = await this.pickSubnet([]);
      gateway = ipToString(subnet.base + 1);
    }
    const bridge = await this.pickDefaultBridgeName();
    this.applyDaemonBridgeConfig({
      Id: randomId(), Name: 'bridge', Created: nowRfc3339(), Driver: 'bridge', Internal: false, Attachable: false,
      Options: {
        'com.docker.network.bridge.default_bridge': 'true',
        [ICC_OPT]: 'true',
        'com.docker.network.bridge.enable_ip_masquerade': 'true',
        [HOST_BINDING_OPT]: '0.0.0.0',
        [BRIDGE_NAME_OPT]: bridge,
        [MTU_OPT]: '1500',
      },
      Labels: {},
      IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: cidrToString(subnet), Gateway: gateway }] },
      bridge, mtu: 1500, predefined: true, autoSubnet: opts.bip === undefined, masquerade: true,
    }, true);
  }

  /** daemon.json icc and ip, applied to the default bridge at every start (as dockerd does). */
  private applyDaemonBridgeConfig(n: NetworkRecord, insert: boolean): void {
    const icc = this.ctx.opts.icc ?? true;
    const ip = this.ctx.opts.defaultBindIp ?? '0.0.0.0';
    if (parseIp(ip) === undefined) throw new InvalidParameterError(`invalid ip: ${ip} is not an IPv4 address`);
    const options = { ...n.Options, [ICC_OPT]: String(icc), [HOST_BINDING_OPT]: ip };
    const next: NetworkRecord = { ...n, Options: options, icc };
    if (ip === '0.0.0.0') delete next.hostBinding;
    else next.hostBinding = ip;
    if (insert || JSON.stringify(next) !== JSON.stringify(n)) this.ctx.state.saveNetwork(next, insert);
  }

  /** berth0, or the next berthN that is free or already ours (several daemons may share a host). */
  private async pickDefaultBridgeName(): Promise<string> {
    const links = await this.ctx.plumbing.links();
    const taken = new Map(links.map((l) => [l.ifname, l.ifalias]));
    const claimed = new Set([...this.ctx.state.networks.values()].map((n) => n.bridge));
    const preferred = this.ctx.opts.defaultBridgeName ?? 'berth0';
    const candidates = [preferred, ...Array.from({ length: 100 }, (_, i) => `berth${i}`)];
    for (const name of candidates) {
      if (claimed.has(name)) continue;
      if (!taken.has(name) || taken.get(name) === this.ctx.owner) return name;
    }
    throw new BerthError('no free name for the default bridge (berth0..berth99 all exist)');
  }

  /** The first pool subnet free of host routes (other than our own bridges') and of other networks. */
  async pickSubnet(extraTaken: Cidr[], ownBridge?: string): Promise<Cidr> {
    const routes = JSON.parse((await this.ctx.plumbing.routesJson()) || '[]') as { dst?: string; dev?: string }[];
    const foreign = routes.filter((r) => r.dev === undefined || r.dev !== ownBridge);
    const taken = [...routesToCidrs(JSON.stringify(foreign)), ...extraTaken];
    for (const n of this.ctx.state.networks.values()) {
      for (const c of n.IPAM.Config) {
        const cidr = parseCidr(c.Subnet);
        if (cidr && n.bridge !== ownBridge) taken.push(cidr);
      }
    }
    const pools = this.ctx.opts.defaultAddressPools && this.ctx.opts.defaultAddressPools.length > 0 ? this.ctx.opts.defaultAddressPools : DOCKER_DEFAULT_POOLS;
    return allocateSubnet(pools, taken);
  }

  /** Creates the bridge device with its gateway address; an auto-picked subnet that now collides is re-picked. */
  async bringUpBridge(n: NetworkRecord): Promise<void> {
    const { state, plumbing, owner, log } = this.ctx;
    if (!n.bridge) return;
    const cfg = n.IPAM.Config[0];
    if (!cfg) return;
    const hasEndpoints = state.endpointsOf(n.Id).length > 0;
    const taken: Cidr[] = [];
    for (let attempt = 0; ; attempt++) {
      const subnet = parseCidr(cfg.Subnet)!;
      try {
        await plumbing.ensureBridge(n.bridge, `${cfg.Gateway}/${subnet.prefix}`, n.mtu, owner, !state.isDefaultBridge(n) || hasEndpoints);
      } catch (e) {
        // The default bridge's device name was taken meanwhile (another daemon starting): take the next one.
        if (!(e instanceof BridgeTakenError) || attempt >= 5) throw e;
        n.bridge = await this.pickDefaultBridgeName();
        n.Options[BRIDGE_NAME_OPT] = n.bridge;
        state.saveNetwork(n, false);
        log.info({ bridge: n.bridge }, 'default bridge device name taken; using another');
        continue;
      }
      if (!n.autoSubnet || hasEndpoints || attempt >= 5) break;
      // Another device routes an overlapping subnet (a host route, or another daemon's bridge that took the subnet
      // while this daemon was down): it keeps it. Callers hold the host network lock, so the other device was
      // there first and a daemon bringing up a bridge at the same moment cannot be missed.
      const clashes = await this.overlappingDevices(subnet, n.bridge);
      if (clashes.length === 0) break;
      await plumbing.deleteAddr(n.bridge, `${cfg.Gateway}/${subnet.prefix}`);
      taken.push(subnet);
      const fresh = await this.pickSubnet(taken, n.bridge);
      cfg.Subnet = cidrToString(fresh);
      cfg.Gateway = ipToString(fresh.base + 1);
      state.saveNetwork(n, false);
      log.info({ network: n.Name, subnet: cfg.Subnet, clashes }, 'subnet also routed elsewhere; picked a new one');
    }
    const c6 = n.enableIPv6 ? n.IPAM.Config.find((c) => c.Subnet.includes(':')) : undefined;
    if (c6) await plumbing.ensureAddr6(n.bridge, `${c6.Gateway}/${c6.Subnet.split('/')[1]}`);
    if (!state.isDefaultBridge(n) && cfg.Gateway) {
      try {
        await this.dns.listen(n.Id, cfg.Gateway);
      } catch (e) {
        log.warn({ network: n.Name, err: errorMessage(e) }, 'embedded DNS could not listen on the gateway');
      }
    }
  }

  private async overlappingDevices(subnet: Cidr, ownDev: string): Promise<{ dev: string; berth: boolean }[]> {
    const routes = JSON.parse((await this.ctx.plumbing.routesJson()) || '[]') as { dst?: string; dev?: string }[];
    const aliases = new Map((await this.ctx.plumbing.links()).map((l) => [l.ifname, l.ifalias ?? '']));
    const out: { dev: string; berth: boolean }[] = [];
    for (const r of routes) {
      if (!r.dev || r.dev === ownDev || !r.dst || r.dst === 'default') continue;
      const c = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      if (c && cidrOverlaps(c, subnet)) out.push({ dev: r.dev, berth: (aliases.get(r.dev) ?? '').startsWith('berth:') });
    }
    return out;
  }
}
