import { ConflictError, ForbiddenError, InvalidParameterError, NotFoundError, errorMessage } from '../errors.js';
import { Filters, labelTermHolds } from '../util/filters.js';
import { parseTimestampParam } from '../util/time.js';
import { cidrOverlaps, cidrToString, ipToString, parseCidr, parseIp, parseSubnet, planSubnet } from './ipam.js';
import { BRIDGE_NAME_OPT, HOST_BINDING_OPT, ICC_OPT, MASQ_OPT, MTU_OPT, type NetworkBootstrap } from './bootstrap.js';
import type { EmbeddedDns } from './dns-server.js';
import { HOST_NETWORK_LOCK, withHostLock } from './host-lock.js';
import { cidr6Overlaps, cidr6ToString, ip6ToString, parseCidr6, planSubnet6 } from './ipam6.js';
import { networkApi, type NetworkApi } from './presenters.js';
import { nowRfc3339, randomId } from './state.js';
import type { NetworkContext, NetworkRecord } from './types.js';

/** The body of POST /networks/create as it arrives (validated here). */
export interface NetworkCreateBody {
  Name?: unknown;
  Driver?: unknown;
  Internal?: unknown;
  Attachable?: unknown;
  Ingress?: unknown;
  ConfigOnly?: unknown;
  EnableIPv6?: unknown;
  IPAM?: { Driver?: unknown; Config?: unknown; Options?: unknown } | null;
  Options?: unknown;
  Labels?: unknown;
}

const PREDEFINED = new Set(['bridge', 'host', 'none']);
const LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'];
const PRUNE_FILTERS = ['until', 'label', 'label!'];

/** dockerd's message for a driver option it cannot parse (libnetwork's bridge driver, parseErr). */
function parseErr(label: string, value: string, why: string): InvalidParameterError {
  return new InvalidParameterError(`failed to parse ${label} value: ${value} (${why})`);
}

/** Go's strconv.ParseBool, with its error text. */
function parseBoolOpt(label: string, value: string | undefined, dflt: boolean): boolean {
  if (value === undefined) return dflt;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw parseErr(label, value, `strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`);
}

function strMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new InvalidParameterError(`invalid ${what}: expected an object`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) out[k] = String(x);
  return out;
}

/**
 * The networks API (docker network ls/create/rm/prune): validation with dockerd's messages, the bridge
 * and its DNS brought up or taken down, events. Callers hold the service's lock for create/remove/prune.
 */
export class UserNetworks {
  constructor(
    private readonly ctx: NetworkContext,
    private readonly bootstrap: NetworkBootstrap,
    private readonly dns: EmbeddedDns,
    private readonly applyFirewall: () => Promise<void>,
  ) {}

  list(filtersRaw: string | undefined): NetworkApi[] {
    const { state } = this.ctx;
    const f = Filters.parse(filtersRaw, LIST_FILTERS);
    const dangling = f.bool('dangling');
    for (const t of f.get('type')) {
      if (t !== 'custom' && t !== 'builtin') throw new InvalidParameterError(`invalid filter: 'type'='${t}'`);
    }
    const used = new Set(state.allEndpoints().map((e) => e.networkId));
    return [...state.networks.values()]
      .filter((n) => {
        if (f.has('name') && !f.get('name').some((v) => n.Name.includes(v))) return false;
        if (f.has('id') && !f.get('id').some((v) => n.Id.includes(v))) return false;
        if (!f.matches('driver', n.Driver)) return false;
        if (!f.matches('scope', 'local')) return false;
        if (!f.matchesLabels(n.Labels)) return false;
        if (f.has('type') && !f.get('type').includes(n.predefined ? 'builtin' : 'custom')) return false;
        if (dangling !== undefined) {
          if (n.predefined) return false;
          if (dangling === used.has(n.Id)) return false;
        }
        return true;
      })
      .sort((a, b) => a.Name.localeCompare(b.Name))
      .map((n) => networkApi(state, n, false));
  }

  async create(body: NetworkCreateBody): Promise<{ Id: string; Warning: string }> {
    const { state } = this.ctx;
    const name = typeof body.Name === 'string' ? body.Name : '';
    if (name === '') throw new InvalidParameterError('network name is required');
    const driver = body.Driver === undefined || body.Driver === '' ? 'bridge' : String(body.Driver);
    if (PREDEFINED.has(name)) throw new ForbiddenError(`operation is not permitted on predefined ${name} network`);
    if ([...state.networks.values()].some((n) => n.Name === name)) throw new ConflictError(`network with name ${name} already exists`);
    if (driver === 'host' || driver === 'null') throw new ForbiddenError(`only one instance of "${driver}" network is allowed`);
    if (driver !== 'bridge') throw new NotFoundError(`plugin "${driver}" not found`);
    if (body.ConfigOnly === true) throw new InvalidParameterError('config-only networks are not supported by Berth');
    const options = strMap(body.Options, 'Options');
    const labels = strMap(body.Labels, 'Labels');
    // Kept as given: dockerd shows null when the client sent none (docker-py), {} when it sent {} (the CLI).
    const ipamOptions = body.IPAM?.Options === undefined || body.IPAM.Options === null ? null : strMap(body.IPAM.Options, 'IPAM.Options');
    const ipamDriver = body.IPAM?.Driver === undefined || body.IPAM.Driver === '' ? 'default' : String(body.IPAM.Driver);
    if (ipamDriver !== 'default') throw new NotFoundError(`plugin "${ipamDriver}" not found`);
    const configs = Array.isArray(body.IPAM?.Config) ? (body.IPAM.Config as Record<string, unknown>[]) : [];
    const v4 = configs.filter((c) => typeof c.Subnet !== 'string' || !c.Subnet.includes(':'));
    const v6 = configs.filter((c) => typeof c.Subnet === 'string' && c.Subnet.includes(':'));
    if (v4.length > 1) throw new InvalidParameterError('Berth supports one IPv4 subnet per network');
    if (v6.length > 1) throw new InvalidParameterError('Berth supports one IPv6 subnet per network');
    const enableIPv6 = body.EnableIPv6 === true;
    if (v6.length > 0 && !enableIPv6) throw new InvalidParameterError('an IPv6 subnet needs EnableIPv6 (--ipv6)');
    if (enableIPv6 && v6.length === 0) throw new InvalidParameterError('Berth needs an IPv6 subnet for EnableIPv6 (--subnet)');
    let entry6: { Subnet: string; Gateway: string; IPRange?: string } | undefined;
    const given6 = v6[0];
    if (given6) {
      const plan6 = planSubnet6(String(given6.Subnet), typeof given6.Gateway === 'string' ? given6.Gateway : undefined, typeof given6.IPRange === 'string' ? given6.IPRange : undefined);
      for (const n of state.networks.values()) {
        for (const c of n.IPAM.Config) {
          const other = parseCidr6(c.Subnet);
          if (other && cidr6Overlaps(other, plan6.subnet)) throw new ForbiddenError('Pool overlaps with other one on this address space');
        }
      }
      entry6 = { Subnet: cidr6ToString(plan6.subnet), Gateway: ip6ToString(plan6.gateway) };
      if (plan6.ipRange) entry6.IPRange = cidr6ToString(plan6.ipRange);
    }

    const id = randomId();
    const bridge = options[BRIDGE_NAME_OPT] ?? `br-${id.slice(0, 12)}`;
    if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge)) throw new InvalidParameterError(`invalid bridge name ${bridge}`);
    if ([...state.networks.values()].some((n) => n.bridge === bridge)) {
      throw new ConflictError(`bridge name ${bridge} is already used by another network`);
    }
    let mtu = 1500;
    const mtuOpt = options[MTU_OPT];
    if (mtuOpt !== undefined) {
      if (!/^[+-]?\d+$/.test(mtuOpt)) throw parseErr(MTU_OPT, mtuOpt, `strconv.Atoi: parsing ${JSON.stringify(mtuOpt)}: invalid syntax`);
      mtu = Number(mtuOpt);
      if (mtu === 0) mtu = 1500;
      else if (mtu < 68 || mtu > 65535) throw new InvalidParameterError(`invalid MTU number: ${mtu}`);
    }
    const icc = parseBoolOpt(ICC_OPT, options[ICC_OPT], true);
    const masquerade = parseBoolOpt(MASQ_OPT, options[MASQ_OPT], true);
    const hostBinding = options[HOST_BINDING_OPT];
    if (hostBinding !== undefined && parseIp(hostBinding) === undefined) {
      if (hostBinding.includes(':')) throw new InvalidParameterError('IPv6 host binding addresses are not supported by Berth');
      throw parseErr(HOST_BINDING_OPT, hostBinding, 'nil ip');
    }

    const rec = await withHostLock(HOST_NETWORK_LOCK, async () => {
      let entry: { Subnet: string; Gateway: string; IPRange?: string; AuxiliaryAddresses?: Record<string, string> };
      let auto = false;
      const given = v4[0];
      if (given && typeof given.Subnet === 'string' && given.Subnet !== '') {
        const subnet = parseSubnet(given.Subnet);
        for (const n of state.networks.values()) {
          for (const c of n.IPAM.Config) {
            const other = parseCidr(c.Subnet);
            if (other && cidrOverlaps(other, subnet)) throw new ForbiddenError('Pool overlaps with other one on this address space');
          }
        }
        const plan = planSubnet(subnet, typeof given.Gateway === 'string' ? given.Gateway : undefined, typeof given.IPRange === 'string' ? given.IPRange : undefined);
        entry = { Subnet: cidrToString(subnet), Gateway: ipToString(plan.gateway) };
        if (plan.ipRange) entry.IPRange = cidrToString(plan.ipRange);
        const aux = strMap(given.AuxiliaryAddresses, 'AuxiliaryAddresses');
        if (Object.keys(aux).length > 0) entry.AuxiliaryAddresses = aux;
      } else {
        if (given && (given.Gateway || given.IPRange)) throw new InvalidParameterError('gateway and ip-range need a subnet');
        const subnet = await this.bootstrap.pickSubnet([]);
        entry = { Subnet: cidrToString(subnet), Gateway: ipToString(subnet.base + 1) };
        auto = true;
      }

      const rec: NetworkRecord = {
        Id: id, Name: name, Created: nowRfc3339(), Driver: 'bridge',
        Internal: body.Internal === true, Attachable: body.Attachable === true,
        Options: options, Labels: labels,
        IPAM: { Driver: 'default', Options: ipamOptions, Config: entry6 ? [entry, entry6] : [entry] },
        bridge, mtu, predefined: false, autoSubnet: auto, masquerade, icc,
        ...(enableIPv6 ? { enableIPv6 } : {}),
        ...(hostBinding !== undefined && hostBinding !== '0.0.0.0' ? { hostBinding } : {}),
      };
      state.saveNetwork(rec, true);
      try {
        await this.bootstrap.bringUpBridge(rec);
        await this.applyFirewall();
      } catch (e) {
        await this.dns.close(rec.Id);
        await this.ctx.plumbing.deleteLink(bridge);
        state.deleteNetwork(rec.Id);
        throw e;
      }
      return rec;
    });
    this.ctx.events.publish('network', 'create', id, { name, type: 'bridge' });
    this.ctx.log.info({ network: name, id, subnet: rec.IPAM.Config[0]?.Subnet, bridge }, 'network created');
    return { Id: id, Warning: '' };
  }

  async remove(n: NetworkRecord): Promise<void> {
    const { state } = this.ctx;
    if (n.predefined) throw new ForbiddenError(`${n.Name} is a pre-defined network and cannot be removed`);
    if (state.endpointsOf(n.Id).length > 0) {
      throw new ForbiddenError(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
    }
    await this.dns.close(n.Id);
    if (n.bridge) await this.ctx.plumbing.deleteLink(n.bridge);
    state.deleteNetwork(n.Id);
    await this.applyFirewall();
    this.ctx.events.publish('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
    this.ctx.log.info({ network: n.Name, id: n.Id }, 'network removed');
  }

  /** Parses the prune filters (before taking the lock: bad filters fail with nothing touched). */
  pruneFilters(filtersRaw: string | undefined): { f: Filters; until: bigint | undefined } {
    const f = Filters.parse(filtersRaw, PRUNE_FILTERS);
    let until: bigint | undefined;
    if (f.has('until')) until = parseTimestampParam('until', f.get('until')[0]!);
    return { f, until };
  }

  async prune({ f, until }: { f: Filters; until: bigint | undefined }): Promise<{ NetworksDeleted: string[] | null }> {
    const { state } = this.ctx;
    {
      const deleted: string[] = [];
      for (const n of [...state.networks.values()]) {
        if (n.predefined || state.endpointsOf(n.Id).length > 0) continue;
        if (!f.matchesLabels(n.Labels)) continue;
        if (f.get('label!').some((t) => labelTermHolds(n.Labels, t))) continue;
        if (until !== undefined && BigInt(Date.parse(n.Created)) * 1_000_000n >= until) continue;
        try {
          await this.remove(n);
          deleted.push(n.Name);
        } catch (e) {
          this.ctx.log.warn({ network: n.Name, err: errorMessage(e) }, 'prune could not remove a network');
        }
      }
      return { NetworksDeleted: deleted.length > 0 ? deleted : null };
    }
  }
}
