import { join } from 'node:path';
import { BerthError, ConflictError, ForbiddenError, InvalidParameterError, errorMessage } from '../../errors.js';
import { allocateAddress, ipToString, isValidMac, macForIp, parseCidr, parseIp, type SubnetPlan } from '../ipam.js';
import { allocateAddress6, ip6ToString, parseIp6, planSubnet6 } from '../ipam6.js';
import type { EndpointPlumbing } from '../plumbing.js';
import type { PortPublisher } from '../ports/publisher.js';
import { wantedPorts } from '../ports/port-spec.js';
import type { SandboxFiles } from '../sandbox-files.js';
import { randomId } from '../state.js';
import type { EndpointRecord, EndpointRequest, NetworkContext, NetworkRecord, SandboxRecord, SandboxRequest } from '../types.js';

/**
 * Bridge networks (the default bridge and user networks): a namespace per sandbox with one veth per
 * network (eth0, eth1… in attachment order), addresses from the network's IPAM, the default route through
 * the first network with a way out (internal ones give none), ports published there; live connect and
 * disconnect of running containers.
 */
export class BridgeMode {
  constructor(
    private readonly ctx: NetworkContext,
    private readonly ports: PortPublisher,
    private readonly files: SandboxFiles,
  ) {}

  /** Path of the namespace of a bridge-mode sandbox. */
  netnsPath(containerId: string): string {
    return join(this.ctx.opts.execRoot, 'netns', containerId);
  }

  /**
   * A new sandbox on its network (`mode`: 'bridge' or a network name/ID) and the other requested endpoints, in
   * three steps: allocate() (addresses and records, under the service's lock), plumb() (the namespace with
   * every veth in it: slow, run outside the lock), publish() (ports, under the lock again).
   */
  allocateAll(sb: SandboxRecord, mode: string, req: SandboxRequest): { plumbing: EndpointPlumbing[]; addresses: string[] } {
    const { state } = this.ctx;
    const requested = { ...(req.endpoints ?? {}) };
    const primaryRef = mode === 'bridge' ? 'bridge' : mode;
    const primary = state.findNetwork(primaryRef);
    const list: [NetworkRecord, EndpointRequest][] = [];
    let primaryCfg: EndpointRequest = {};
    for (const [ref, cfg] of Object.entries(requested)) {
      const n = state.findNetwork(ref);
      if (n.Id === primary.Id) primaryCfg = cfg;
      else list.push([n, cfg]);
    }
    list.unshift([primary, primaryCfg]);
    const plumbing: EndpointPlumbing[] = [];
    const addresses: string[] = [];
    for (const [n, cfg] of list) {
      if (n.Driver !== 'bridge') throw new InvalidParameterError(`container cannot be connected to network ${n.Name} together with others`);
      const a = this.allocate(sb, n, cfg, true);
      plumbing.push(a.plumbing);
      addresses.push(`${n.Id} ${a.ep.ip}`);
    }
    return { plumbing, addresses };
  }

  /** The namespace and every endpoint at once (over rtnetlink, see Plumbing.createNetns); touches no state. */
  async plumb(sb: SandboxRecord, plumbing: readonly EndpointPlumbing[], addresses: readonly string[]): Promise<void> {
    await this.ctx.settledFor(sb.containerId, addresses);
    await this.ctx.plumbing.createNetns(sb.netnsPath!, plumbing);
  }

  /** The sandbox's published ports, once its namespace is plumbed. */
  async publish(sb: SandboxRecord, req: SandboxRequest): Promise<void> {
    sb.wanted = wantedPorts(req.portBindings, req.publishAll ?? false, sb.exposed);
    await this.ports.publish(sb);
  }

  /** Connects a running sandbox to network `n` (docker network connect). */
  async connect(sb: SandboxRecord, n: NetworkRecord, cfg: EndpointRequest): Promise<void> {
    if (n.Driver !== 'bridge') throw new ForbiddenError('container cannot be disconnected from host network or connected to host network');
    if (sb.mode !== 'bridge') {
      throw new ForbiddenError('container sharing network namespace with another container or host cannot be connected to any other network');
    }
    const ep = await this.attach(sb, n, cfg);
    if (sb.published.length === 0 && sb.wanted.length > 0 && this.ctx.state.gatewayEndpoint(sb) === ep) await this.ports.publish(sb);
    this.files.write(sb, true);
    this.ctx.state.putSandbox(sb);
  }

  /** Disconnects a running sandbox from network `n`; the default route and ports move to the next gateway. */
  async disconnect(sb: SandboxRecord, n: NetworkRecord): Promise<void> {
    const { state, plumbing } = this.ctx;
    const ep = state.endpoint(n.Id, sb.containerId);
    if (!ep) throw new ForbiddenError(`container ${sb.containerId} is not connected to network ${n.Name}`);
    if (sb.mode !== 'bridge') throw new ForbiddenError('container cannot be disconnected from host network or connected to host network');
    const wasGateway = state.gatewayEndpoint(sb) === ep;
    if (sb.netnsPath && ep.ifName) await plumbing.deleteInNetns(sb.netnsPath, ep.ifName);
    if (ep.hostIfName) await plumbing.deleteLink(ep.hostIfName);
    state.dropEndpoint(ep);
    sb.order = sb.order.filter((x) => x !== n.Id);
    if (wasGateway) {
      const next = state.gatewayEndpoint(sb);
      if (next && sb.netnsPath) {
        await plumbing.setDefaultRoute(sb.netnsPath, next.gateway, next.ifName);
        this.ports.retarget(sb.containerId, next.ip);
      } else {
        // Only internal networks left: no way out, nothing published (the route left with the device).
        await this.ports.close(sb.containerId);
        sb.published = [];
      }
    }
    this.files.write(sb, true);
    state.putSandbox(sb);
  }

  /** Allocates an address on `n` and plugs a veth into the existing namespace of the sandbox (eth<n>). */
  async attach(sb: SandboxRecord, n: NetworkRecord, cfg: EndpointRequest): Promise<EndpointRecord> {
    const { state } = this.ctx;
    const { ep, plumbing } = this.allocate(sb, n, cfg);
    try {
      await this.ctx.plumbing.addEndpoint(plumbing);
    } catch (e) {
      state.dropEndpoint(ep);
      sb.order = sb.order.filter((x) => x !== n.Id);
      state.putSandbox(sb);
      throw e;
    }
    return ep;
  }

  /**
   * The endpoint record of `sb` on `n` (address allocated, saved) and what plugging it in takes. With
   * `avoidCooling`, an address whose released veth is still being deleted is passed over while another is free
   * (the caller then need not wait for that deletion).
   */
  allocate(sb: SandboxRecord, n: NetworkRecord, cfg: EndpointRequest, avoidCooling = false): { ep: EndpointRecord; plumbing: EndpointPlumbing } {
    const { state } = this.ctx;
    if (state.endpoint(n.Id, sb.containerId)) {
      throw new ForbiddenError(`endpoint with name ${sb.name} already exists in network ${n.Name}`);
    }
    const userNet = !state.isDefaultBridge(n);
    const aliases = (cfg.aliases ?? []).filter((a) => a !== '');
    if (!userNet && aliases.length > 0) {
      throw new InvalidParameterError('network-scoped alias is supported only for containers in user defined networks');
    }
    if (!userNet && (cfg.ipv4Address || cfg.ipv6Address)) {
      throw new InvalidParameterError('user specified IP address is supported on user defined networks only');
    }
    const linkLocal = (cfg.linkLocalIps ?? []).filter((a) => a !== '');
    for (const a of linkLocal) {
      if (parseIp(a) === undefined && parseIp6(a) === undefined) throw new InvalidParameterError(`invalid link-local IP address: ${a}`);
    }
    const c = n.IPAM.Config[0];
    if (!c || !n.bridge) throw new BerthError(`network ${n.Name} has no IPv4 configuration`);
    const subnet = parseCidr(c.Subnet)!;
    const plan: SubnetPlan = { subnet, gateway: parseIp(c.Gateway)!, ipRange: c.IPRange ? parseCidr(c.IPRange) : undefined };
    const used = new Set<number>();
    for (const e of state.endpointsOf(n.Id)) if (e.ip) used.add(parseIp(e.ip)!);
    for (const aux of Object.values(c.AuxiliaryAddresses ?? {})) {
      const ip = parseIp(aux);
      if (ip !== undefined) used.add(ip);
    }
    const cooling = avoidCooling && !cfg.ipv4Address ? this.ctx.cooling(n.Id, sb.containerId) : undefined;
    let ipNum: number | undefined;
    if (cooling && cooling.size > 0) {
      try {
        ipNum = allocateAddress(plan, new Set([...used, ...[...cooling].map((a) => parseIp(a)!)]));
      } catch {
        // every free address is cooling: take one and wait for its veth
      }
    }
    ipNum ??= allocateAddress(plan, used, cfg.ipv4Address);
    const ip = ipToString(ipNum);
    const c6 = n.enableIPv6 ? n.IPAM.Config.find((x) => x.Subnet.includes(':')) : undefined;
    if (cfg.ipv6Address && !c6) {
      throw new InvalidParameterError(`invalid endpoint settings:\nno configured subnet or ip-range contain the IP address ${cfg.ipv6Address}`);
    }
    let v6: { ip: string; prefixLen: number; gateway: string } | undefined;
    if (c6) {
      const plan6 = planSubnet6(c6.Subnet, c6.Gateway, c6.IPRange);
      const used6 = new Set<bigint>();
      for (const e of state.endpointsOf(n.Id)) if (e.ip6) used6.add(parseIp6(e.ip6)!);
      v6 = { ip: ip6ToString(allocateAddress6(plan6, used6, cfg.ipv6Address)), prefixLen: plan6.subnet.prefix, gateway: ip6ToString(plan6.gateway) };
    }
    if (cfg.macAddress && !isValidMac(cfg.macAddress)) throw new InvalidParameterError(`invalid MAC address: ${cfg.macAddress}`);
    const endpointId = randomId();
    // The default route goes through the first endpoint on a network with a way out.
    const routes = !n.Internal && state.gatewayEndpoint(sb) === undefined;
    const ep: EndpointRecord = {
      networkId: n.Id,
      containerId: sb.containerId,
      endpointId,
      ifName: `eth${sb.nextIf}`,
      hostIfName: `bv${endpointId.slice(0, 11)}`,
      ip,
      prefixLen: subnet.prefix,
      gateway: c.Gateway,
      mac: (cfg.macAddress ?? macForIp(ipNum)).toLowerCase(),
      aliases,
      links: cfg.links ?? [],
    };
    if (cfg.ipv4Address) ep.ipv4Requested = cfg.ipv4Address;
    if (cfg.ipv6Address) ep.ipv6Requested = cfg.ipv6Address;
    if (linkLocal.length > 0) ep.linkLocalIps = linkLocal;
    if (v6) {
      ep.ip6 = v6.ip;
      ep.ip6PrefixLen = v6.prefixLen;
      ep.gateway6 = v6.gateway;
    }
    if (cfg.driverOpts) ep.driverOpts = cfg.driverOpts;
    // The record first: the unique index on (network, ip) is the final word on conflicts.
    try {
      state.addEndpoint(ep);
    } catch (e) {
      if (/UNIQUE/.test(errorMessage(e))) throw new ConflictError('Address already in use');
      throw e;
    }
    sb.nextIf += 1;
    sb.order.push(n.Id);
    state.putSandbox(sb);
    const plumbing: EndpointPlumbing = {
      netnsPath: sb.netnsPath!,
      bridge: n.bridge,
      hostIfName: ep.hostIfName,
      ifName: ep.ifName,
      address: ip,
      prefixLen: subnet.prefix,
      mac: ep.mac,
      mtu: n.mtu,
      defaultGateway: routes ? c.Gateway : undefined,
      // Link-local IPv4 addresses as dockerd adds them (/16), IPv6 ones /64.
      extraAddrs: [...(v6 ? [`${v6.ip}/${v6.prefixLen}`] : []), ...linkLocal.map((a) => (a.includes(':') ? `${a}/64` : `${a}/16`))],
      defaultGateway6: routes && v6 ? v6.gateway : undefined,
      owner: this.ctx.owner,
      isolated: n.icc === false,
    };
    return { ep, plumbing };
  }
}
