/**
 * NetworkService: networks (bridge driver, predefined bridge/host/none), IPAM, container sandboxes
 * (netns + veths + /etc files), published ports (userland proxy + DNAT), embedded DNS, firewall.
 *
 * Interface for the containers service (all async unless noted; errors are Berth's typed errors):
 *
 *   createSandbox(containerId: string, req: SandboxRequest): Promise<SandboxInfo>
 *       Before the container starts. Prepares its network namespace (netnsPath, a bind-mounted nsfs file
 *       the shim setns()es into; undefined for host mode; the target's path for container:<x>), writes
 *       hosts / resolv.conf / hostname into req.filesDir (for container:<x> the target's files are returned),
 *       attaches endpoints, publishes ports. Port conflicts throw dockerd's "Bind for 0.0.0.0:P failed:
 *       port is already allocated".
 *   releaseSandbox(containerId: string): Promise<void>
 *       After the container stopped: addresses, proxies, DNAT rules freed before it returns; veths and netns
 *       are removed in the background, and every later call that changes state waits for that. Idempotent.
 *   settled(): Promise<void>
 *       Resolves once no released sandbox has devices left (tests, diagnostics).
 *   connect(containerRef: string, networkRef: string, cfg?: EndpointRequest): Promise<void>
 *   disconnect(containerRef: string, networkRef: string, force?: boolean): Promise<void>
 *       Live on running containers (their sandbox exists); stopped ones go to ContainerDirectory.attachStopped.
 *   restore(liveContainerIds: Iterable<string>): Promise<void>
 *       Once at daemon start, after start(): sandboxes of live containers get their proxies, DNS entries and
 *       rules back; the others are released.
 *   settings(containerId: string): NetworkSettings | undefined        (sync; for inspect while running)
 *   stoppedSettings(endpoints: Record<string, EndpointRequest>, mode: string): NetworkSettings  (sync)
 *   portList(containerId: string): Port[]                               (sync; the Ports column of docker ps)
 *   setContainerName(containerId: string, name: string): void          (sync; rename: DNS and inspect follow)
 *   setContainerDirectory(dir: ContainerDirectory): void                (sync; lets the API resolve containers)
 *   warnings(): string[]                                                (sync; for docker info)
 */
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import type { EventBus } from '../events/event-bus.js';
import type { NetworkRepo } from '../store/network-repo.js';
import { Filters, labelTermHolds } from '../util/filters.js';
import { parseTimestampParam } from '../util/time.js';
import {
  BerthError,
  ConflictError,
  ForbiddenError,
  InvalidParameterError,
  NotFoundError,
  errorMessage,
} from '../errors.js';
import {
  allocateAddress,
  allocateSubnet,
  cidrOverlaps,
  cidrToString,
  DOCKER_DEFAULT_POOLS,
  ipToString,
  isValidMac,
  macForIp,
  parseCidr,
  parseIp,
  parseSubnet,
  planSubnet,
  routesToCidrs,
  type AddressPool,
  type Cidr,
  type SubnetPlan,
} from './ipam.js';
import { buildHostsFile, buildResolvConf, ownHostNames, parseExtraHost, upstreamsFrom, type HostsEntry } from './etc-files.js';
import { BridgeTakenError, Plumbing, type EndpointPlumbing } from './plumbing.js';
import { Firewall, type FirewallState } from './firewall.js';
import { ToolShell } from './tool-shell.js';
import { startProxy, type PortProxy } from './port-proxy.js';
import {
  collides,
  EPHEMERAL_FIRST,
  EPHEMERAL_LAST,
  portAllocatedMessage,
  portList,
  portMap,
  wantedPorts,
  type PublishedPort,
  type WantedPort,
} from './port-spec.js';
import { EmbeddedDns, type Upstream } from './dns-server.js';
import type {
  ContainerDirectory,
  EndpointRecord,
  EndpointRequest,
  EndpointSettings,
  NetworkRecord,
  NetworkSettings,
  SandboxInfo,
  SandboxRecord,
  SandboxRequest,
} from './types.js';

export type * from './types.js';

export interface NetworkServiceOptions {
  execRoot: string;
  /** daemon.json bip, e.g. "172.20.0.1/16" */
  bip?: string;
  defaultAddressPools?: AddressPool[];
  /** daemon.json iptables (default true) */
  iptables: boolean;
  /** daemon.json dns: upstreams of the embedded DNS and default-bridge resolv.conf */
  dns?: string[];
  /** Tags Berth's links (ifalias) and firewall chains; one per daemon data root. */
  daemonId: string;
  /** The host's resolv.conf path (tests point it elsewhere). */
  hostResolvConf?: string;
  /** Embedded DNS upstreams; default: the host's resolvers on port 53. Tests inject a fake server. */
  dnsUpstreams?: () => Upstream[];
  /** Embedded DNS port (53). */
  dnsPort?: number;
  /** Preferred name of the default bridge device. */
  defaultBridgeName?: string;
}

interface NetworkApi {
  Name: string;
  Id: string;
  Created: string;
  Scope: string;
  Driver: string;
  EnableIPv4: boolean;
  EnableIPv6: boolean;
  IPAM: NetworkRecord['IPAM'];
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

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
/** Empty network namespaces kept ready for --network none containers. */
const NETNS_POOL = 2;
const BRIDGE_NAME_OPT = 'com.docker.network.bridge.name';
const MTU_OPT = 'com.docker.network.driver.mtu';
const MASQ_OPT = 'com.docker.network.bridge.enable_ip_masquerade';
const LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'];
const PRUNE_FILTERS = ['until', 'label', 'label!'];

function nowRfc3339(): string {
  return new Date().toISOString().replace('Z', '000000Z');
}

function randomId(): string {
  return randomBytes(32).toString('hex');
}

function strMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new InvalidParameterError(`invalid ${what}: expected an object`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) out[k] = String(x);
  return out;
}

/** Resolves on a later turn of the event loop (after pending I/O callbacks). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Writes a file in place when it exists (bind mounts keep pointing at the same inode), atomically otherwise. */
function writeEtcFile(path: string, text: string, inPlace: boolean): void {
  if (inPlace && existsSync(path)) {
    writeFileSync(path, text, { mode: 0o644 });
    return;
  }
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

export class NetworkService {
  private readonly plumbing: Plumbing;
  private readonly firewall: Firewall;
  private readonly dnsServer: EmbeddedDns;
  private readonly owner: string;
  private readonly networks = new Map<string, NetworkRecord>();
  private readonly endpoints = new Map<string, EndpointRecord>();
  private readonly sandboxes = new Map<string, SandboxRecord>();
  private readonly proxies = new Map<string, PortProxy[]>();
  private readonly warningList: string[] = [];
  private directory: ContainerDirectory | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  /** Device teardowns of released sandboxes still running (see releaseSandbox). */
  private readonly teardowns = new Set<Promise<void>>();
  /** Empty namespaces (lo up) made ahead of time for --network none; see takePooledNetns. */
  private readonly netnsPool: string[] = [];
  private poolFill: Promise<void> | undefined;
  private started = false;

  constructor(
    private readonly repo: NetworkRepo,
    private readonly events: EventBus,
    private readonly log: Logger,
    private readonly opts: NetworkServiceOptions,
  ) {
    const shell = new ToolShell(log);
    this.plumbing = new Plumbing(log, shell);
    const tag = opts.daemonId.replaceAll('-', '').slice(0, 8);
    this.owner = `berth:${opts.daemonId}`;
    this.firewall = new Firewall(log, tag, opts.iptables, shell);
    this.dnsServer = new EmbeddedDns(
      log.child({ part: 'dns' }),
      {
        lookup: (nid, ip, name) => this.dnsLookup(nid, ip, name),
        serves: (nid, ip) => this.endpointsOf(nid).some((e) => e.ip === ip),
        mayForward: (nid, ip) => {
          const asker = this.endpointsOf(nid).find((e) => e.ip === ip);
          const sb = asker ? this.sandboxes.get(asker.containerId) : undefined;
          return sb !== undefined && this.gatewayEndpoint(sb) !== undefined;
        },
      },
      opts.dnsUpstreams ?? (() => this.hostUpstreams()),
      opts.dnsPort ?? 53,
    );
  }

  /**
   * Serialises every state change (IPAM, links, rules) of this service. Unless `settle` is false, each
   * one first waits for the device teardowns of released sandboxes: nothing new is plumbed while an old
   * device may still hold the same address, name or namespace path. (createSandbox waits itself, only
   * when it plumbs; releaseSandbox never needs to: its teardown and an earlier one touch different devices.)
   */
  private exclusive<T>(fn: () => Promise<T>, settle = true): Promise<T> {
    const go = async (): Promise<T> => {
      if (settle) await this.settled();
      return fn();
    };
    const run = this.lock.then(go, go);
    this.lock = run.catch(() => undefined);
    return run;
  }

  // ───────────────────────────── lifecycle ─────────────────────────────

  /** Loads state, creates the predefined networks, bridges, chains and DNS listeners; removes leftovers. */
  async start(): Promise<void> {
    await this.exclusive(async () => {
      for (const row of this.repo.listNetworks()) this.networks.set(row.id, JSON.parse(row.body) as NetworkRecord);
      for (const row of this.repo.listEndpoints()) {
        const ep = JSON.parse(row.body) as EndpointRecord;
        this.endpoints.set(`${ep.networkId}/${ep.containerId}`, ep);
      }
      for (const row of this.repo.listSandboxes()) this.sandboxes.set(row.container_id, JSON.parse(row.body) as SandboxRecord);

      try {
        await this.plumbing.sysctl('net.ipv4.ip_forward', '1');
        this.log.info('net.ipv4.ip_forward set to 1 (containers need routing to reach the outside)');
      } catch (e) {
        this.log.warn({ err: errorMessage(e) }, 'could not enable net.ipv4.ip_forward');
        this.warningList.push('WARNING: IPv4 forwarding is disabled');
      }
      this.warningList.push(...(await this.firewall.start()));
      await this.removeLeftoverLinks();
      await this.removeLeftoverNetns();
      await this.ensurePredefined();
      for (const n of this.networks.values()) {
        if (n.Driver !== 'bridge') continue;
        await this.bringUpBridge(n);
      }
      await this.applyFirewall();
      this.started = true;
      this.refillNetnsPool();
    });
  }

  /**
   * Called once after start() with the IDs of containers still running: their sandboxes get proxies and
   * rules back; every other sandbox is released.
   */
  async restore(liveContainerIds: Iterable<string>): Promise<void> {
    const live = new Set(liveContainerIds);
    await this.exclusive(async () => {
      for (const sb of [...this.sandboxes.values()]) {
        if (!live.has(sb.containerId)) {
          this.log.info({ container: sb.containerId }, 'releasing the network sandbox of a container that is gone');
          await this.releaseLocked(sb.containerId, false);
          continue;
        }
        for (const p of sb.published) {
          const target = this.gatewayEndpoint(sb);
          if (!target) continue;
          try {
            const proxy = await startProxy(this.log, { proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: target.ip, containerPort: p.containerPort });
            this.proxies.set(sb.containerId, [...(this.proxies.get(sb.containerId) ?? []), proxy]);
          } catch (e) {
            this.log.warn({ container: sb.containerId, port: p, err: errorMessage(e) }, 'could not re-open a published port');
          }
        }
      }
      // Endpoints without a sandbox (a crash between writes) are stale allocations.
      for (const ep of [...this.endpoints.values()]) {
        if (!this.sandboxes.has(ep.containerId)) this.dropEndpointRecord(ep);
      }
      await this.applyFirewall();
    });
  }

  /** Closes listeners and removes the firewall chains; bridges without endpoints are removed too. */
  async stop(): Promise<void> {
    await this.exclusive(async () => {
      this.started = false;
      await this.poolFill;
      await Promise.all(this.netnsPool.splice(0).map((p) => this.plumbing.deleteNetns(p)));
      for (const list of this.proxies.values()) await Promise.all(list.map((p) => p.close()));
      this.proxies.clear();
      await this.dnsServer.closeAll();
      await this.firewall.stop();
      const used = new Set([...this.endpoints.values()].map((e) => e.networkId));
      for (const n of this.networks.values()) {
        if (n.Driver === 'bridge' && n.bridge && !used.has(n.Id)) await this.plumbing.deleteLink(n.bridge);
      }
      this.plumbing.close();
    });
  }

  /**
   * Keeps NETNS_POOL empty namespaces ready, made in the background one at a time: creating one is a
   * child process plus the kernel's per-namespace setup, which --network none then skips. Only fresh
   * namespaces are pooled, never released ones (a process may still hold them, with its own state).
   */
  private refillNetnsPool(): void {
    if (this.poolFill || !this.started) return;
    this.poolFill = (async () => {
      await nextTurn();
      while (this.started && this.netnsPool.length < NETNS_POOL) {
        const path = join(this.opts.execRoot, 'netns', `pool-${randomBytes(12).toString('hex')}`);
        await this.plumbing.createNetns(path);
        this.netnsPool.push(path);
      }
    })()
      .catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'could not pre-create a network namespace'))
      .finally(() => {
        this.poolFill = undefined;
      });
  }

  warnings(): string[] {
    return [...this.warningList];
  }

  get firewallBackend(): string {
    return this.firewall.active;
  }

  /** The nftables table of this daemon when nft is the backend (tests and diagnostics). */
  get nftTable(): string {
    return this.firewall.nftTable;
  }

  /** The iptables chain names of this daemon (tests and diagnostics). */
  get chains(): Firewall['chains'] {
    return this.firewall.chains;
  }

  setContainerDirectory(dir: ContainerDirectory): void {
    this.directory = dir;
  }

  private hostResolvText(): string {
    try {
      return readFileSync(this.opts.hostResolvConf ?? '/etc/resolv.conf', 'utf8');
    } catch {
      return '';
    }
  }

  private hostUpstreams(): Upstream[] {
    return upstreamsFrom(this.hostResolvText(), this.opts.dns ?? []).map((host) => ({ host, port: 53 }));
  }

  /** Links tagged with this daemon's owner alias that no network or endpoint accounts for. */
  private async removeLeftoverLinks(): Promise<void> {
    const wanted = new Set<string>();
    for (const n of this.networks.values()) if (n.bridge) wanted.add(n.bridge);
    for (const e of this.endpoints.values()) if (e.hostIfName) wanted.add(e.hostIfName);
    for (const link of await this.plumbing.links()) {
      if (link.ifalias === this.owner && !wanted.has(link.ifname)) {
        this.log.info({ link: link.ifname }, 'removing a leftover link');
        await this.plumbing.deleteLink(link.ifname);
      }
    }
  }

  private async removeLeftoverNetns(): Promise<void> {
    const dir = join(this.opts.execRoot, 'netns');
    if (!existsSync(dir)) return;
    const wanted = new Set([...this.sandboxes.values()].map((s) => s.netnsPath).filter((p): p is string => p !== undefined));
    for (const f of readdirSync(dir)) {
      const path = join(dir, f);
      if (!wanted.has(path)) {
        this.log.info({ path }, 'removing a leftover network namespace');
        await this.plumbing.deleteNetns(path);
      }
    }
  }

  private async ensurePredefined(): Promise<void> {
    const byName = new Map([...this.networks.values()].map((n) => [n.Name, n]));
    for (const [name, driver] of [['host', 'host'], ['none', 'null']] as const) {
      if (byName.has(name)) continue;
      this.saveNetwork({
        Id: randomId(), Name: name, Created: nowRfc3339(), Driver: driver, Internal: false, Attachable: false,
        Options: {}, Labels: {}, IPAM: { Driver: 'default', Options: {}, Config: [] }, mtu: 1500,
        predefined: true, autoSubnet: false, masquerade: false,
      }, true);
    }
    if (byName.has('bridge')) return;
    let subnet: Cidr;
    let gateway: string;
    if (this.opts.bip) {
      const c = parseCidr(this.opts.bip);
      const ip = parseIp(this.opts.bip.split('/')[0] ?? '');
      if (!c || ip === undefined) throw new InvalidParameterError(`invalid bip: ${this.opts.bip}`);
      subnet = c;
      gateway = ipToString(ip);
    } else {
      subnet = await this.pickSubnet([]);
      gateway = ipToString(subnet.base + 1);
    }
    const bridge = await this.pickDefaultBridgeName();
    this.saveNetwork({
      Id: randomId(), Name: 'bridge', Created: nowRfc3339(), Driver: 'bridge', Internal: false, Attachable: false,
      Options: {
        'com.docker.network.bridge.default_bridge': 'true',
        'com.docker.network.bridge.enable_icc': 'true',
        'com.docker.network.bridge.enable_ip_masquerade': 'true',
        'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
        [BRIDGE_NAME_OPT]: bridge,
        [MTU_OPT]: '1500',
      },
      Labels: {},
      IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: cidrToString(subnet), Gateway: gateway }] },
      bridge, mtu: 1500, predefined: true, autoSubnet: this.opts.bip === undefined, masquerade: true,
    }, true);
  }

  /** berth0, or the next berthN that is free or already ours (several daemons may share a host). */
  private async pickDefaultBridgeName(): Promise<string> {
    const links = await this.plumbing.links();
    const taken = new Map(links.map((l) => [l.ifname, l.ifalias]));
    const claimed = new Set([...this.networks.values()].map((n) => n.bridge));
    const preferred = this.opts.defaultBridgeName ?? 'berth0';
    const candidates = [preferred, ...Array.from({ length: 100 }, (_, i) => `berth${i}`)];
    for (const name of candidates) {
      if (claimed.has(name)) continue;
      if (!taken.has(name) || taken.get(name) === this.owner) return name;
    }
    throw new BerthError('no free name for the default bridge (berth0..berth99 all exist)');
  }

  /** The first pool subnet free of host routes (other than our own bridges') and of other networks. */
  private async pickSubnet(extraTaken: Cidr[], ownBridge?: string): Promise<Cidr> {
    const routes = JSON.parse((await this.plumbing.routesJson()) || '[]') as { dst?: string; dev?: string }[];
    const foreign = routes.filter((r) => r.dev === undefined || r.dev !== ownBridge);
    const taken = [...routesToCidrs(JSON.stringify(foreign)), ...extraTaken];
    for (const n of this.networks.values()) {
      for (const c of n.IPAM.Config) {
        const cidr = parseCidr(c.Subnet);
        if (cidr && n.bridge !== ownBridge) taken.push(cidr);
      }
    }
    const pools = this.opts.defaultAddressPools && this.opts.defaultAddressPools.length > 0 ? this.opts.defaultAddressPools : DOCKER_DEFAULT_POOLS;
    return allocateSubnet(pools, taken);
  }

  /** Creates the bridge device with its gateway address; an auto-picked subnet that now collides is re-picked. */
  private async bringUpBridge(n: NetworkRecord): Promise<void> {
    if (!n.bridge) return;
    const cfg = n.IPAM.Config[0];
    if (!cfg) return;
    const hasEndpoints = [...this.endpoints.values()].some((e) => e.networkId === n.Id);
    const taken: Cidr[] = [];
    for (let attempt = 0; ; attempt++) {
      const subnet = parseCidr(cfg.Subnet)!;
      try {
        await this.plumbing.ensureBridge(n.bridge, `${cfg.Gateway}/${subnet.prefix}`, n.mtu, this.owner, !this.isDefaultBridge(n) || hasEndpoints);
      } catch (e) {
        // The default bridge's device name was taken meanwhile (another daemon starting): take the next one.
        if (!(e instanceof BridgeTakenError) || attempt >= 5) throw e;
        n.bridge = await this.pickDefaultBridgeName();
        n.Options[BRIDGE_NAME_OPT] = n.bridge;
        this.saveNetwork(n, false);
        this.log.info({ bridge: n.bridge }, 'default bridge device name taken; using another');
        continue;
      }
      if (!n.autoSubnet || hasEndpoints || attempt >= 5) break;
      // Another device routing an overlapping subnet (a host route, or another daemon that picked the same
      // pool subnet at the same moment): a foreign device wins; between two Berth bridges the lower name keeps it.
      const clashes = await this.overlappingDevices(subnet, n.bridge);
      if (clashes.length === 0) break;
      if (clashes.every((c) => c.berth && c.dev > n.bridge!)) break;
      await this.plumbing.deleteAddr(n.bridge, `${cfg.Gateway}/${subnet.prefix}`);
      taken.push(subnet);
      const fresh = await this.pickSubnet(taken, n.bridge);
      cfg.Subnet = cidrToString(fresh);
      cfg.Gateway = ipToString(fresh.base + 1);
      this.saveNetwork(n, false);
      this.log.info({ network: n.Name, subnet: cfg.Subnet, clashes }, 'subnet also routed elsewhere; picked a new one');
    }
    if (!this.isDefaultBridge(n) && cfg.Gateway) {
      try {
        await this.dnsServer.listen(n.Id, cfg.Gateway);
      } catch (e) {
        this.log.warn({ network: n.Name, err: errorMessage(e) }, 'embedded DNS could not listen on the gateway');
      }
    }
  }

  private async overlappingDevices(subnet: Cidr, ownDev: string): Promise<{ dev: string; berth: boolean }[]> {
    const routes = JSON.parse((await this.plumbing.routesJson()) || '[]') as { dst?: string; dev?: string }[];
    const aliases = new Map((await this.plumbing.links()).map((l) => [l.ifname, l.ifalias ?? '']));
    const out: { dev: string; berth: boolean }[] = [];
    for (const r of routes) {
      if (!r.dev || r.dev === ownDev || !r.dst || r.dst === 'default') continue;
      const c = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      if (c && cidrOverlaps(c, subnet)) out.push({ dev: r.dev, berth: (aliases.get(r.dev) ?? '').startsWith('berth:') });
    }
    return out;
  }

  private isDefaultBridge(n: NetworkRecord): boolean {
    return n.Name === 'bridge' && n.predefined;
  }

  private saveNetwork(n: NetworkRecord, insert: boolean): void {
    if (insert) this.repo.insertNetwork(n.Id, n.Name, JSON.stringify(n));
    else this.repo.updateNetwork(n.Id, n.Name, JSON.stringify(n));
    this.networks.set(n.Id, n);
  }

  private firewallState(): FirewallState {
    const state: FirewallState = { bridges: [], ports: [] };
    for (const n of this.networks.values()) {
      if (n.Driver !== 'bridge' || !n.bridge || !n.IPAM.Config[0]) continue;
      state.bridges.push({ name: n.bridge, subnet: n.IPAM.Config[0].Subnet, internal: n.Internal, masquerade: n.masquerade });
    }
    for (const sb of this.sandboxes.values()) {
      const ep = this.gatewayEndpoint(sb);
      if (!ep) continue;
      const n = this.networks.get(ep.networkId);
      if (!n?.bridge) continue;
      for (const p of sb.published) {
        state.ports.push({ bridge: n.bridge, proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: ep.ip, containerPort: p.containerPort });
      }
    }
    return state;
  }

  private async applyFirewall(): Promise<void> {
    try {
      await this.firewall.apply(this.firewallState());
    } catch (e) {
      this.log.error({ err: errorMessage(e) }, 'could not apply firewall rules');
      throw e;
    }
  }

  // ───────────────────────────── networks API ─────────────────────────────

  /** Full ID, then name, then unique ID prefix (dockerd's order). */
  findNetwork(ref: string): NetworkRecord {
    const all = [...this.networks.values()];
    const byId = this.networks.get(ref);
    if (byId) return byId;
    const byName = all.find((n) => n.Name === ref);
    if (byName) return byName;
    const prefixed = ref.length > 0 ? all.filter((n) => n.Id.startsWith(ref)) : [];
    if (prefixed.length === 1) return prefixed[0]!;
    if (prefixed.length > 1) throw new InvalidParameterError(`network ${ref} is ambiguous (${prefixed.length} matches found based on ID prefix)`);
    throw new NotFoundError(`network ${ref} not found`);
  }

  private endpointsOf(networkId: string): EndpointRecord[] {
    return [...this.endpoints.values()].filter((e) => e.networkId === networkId);
  }

  private toApi(n: NetworkRecord, withContainers: boolean): NetworkApi {
    const containers: NetworkApi['Containers'] = {};
    if (withContainers) {
      for (const e of this.endpointsOf(n.Id)) {
        containers[e.containerId] = {
          Name: this.sandboxes.get(e.containerId)?.name ?? '',
          EndpointID: e.endpointId,
          MacAddress: e.mac,
          IPv4Address: e.ip ? `${e.ip}/${e.prefixLen}` : '',
          IPv6Address: '',
        };
      }
    }
    return {
      Name: n.Name,
      Id: n.Id,
      Created: n.Created,
      Scope: 'local',
      Driver: n.Driver,
      EnableIPv4: true,
      EnableIPv6: false,
      IPAM: n.IPAM,
      Internal: n.Internal,
      Attachable: n.Attachable,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: containers,
      Options: n.Options,
      Labels: n.Labels,
    };
  }

  list(filtersRaw: string | undefined): NetworkApi[] {
    const f = Filters.parse(filtersRaw, LIST_FILTERS);
    const dangling = f.bool('dangling');
    for (const t of f.get('type')) {
      if (t !== 'custom' && t !== 'builtin') throw new InvalidParameterError(`invalid filter: 'type'='${t}'`);
    }
    const used = new Set([...this.endpoints.values()].map((e) => e.networkId));
    return [...this.networks.values()]
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
      .map((n) => this.toApi(n, false));
  }

  inspect(ref: string): NetworkApi {
    return this.toApi(this.findNetwork(ref), true);
  }

  async create(body: NetworkCreateBody): Promise<{ Id: string; Warning: string }> {
    return this.exclusive(() => this.createLocked(body));
  }

  private async createLocked(body: NetworkCreateBody): Promise<{ Id: string; Warning: string }> {
    const name = typeof body.Name === 'string' ? body.Name : '';
    if (name === '') throw new InvalidParameterError('network name is required');
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new InvalidParameterError(`invalid network name "${name}"`);
    const driver = body.Driver === undefined || body.Driver === '' ? 'bridge' : String(body.Driver);
    if (PREDEFINED.has(name)) throw new ForbiddenError(`operation is not permitted on predefined ${name} network`);
    if ([...this.networks.values()].some((n) => n.Name === name)) throw new ConflictError(`network with name ${name} already exists`);
    if (driver === 'host' || driver === 'null') throw new ForbiddenError(`only one instance of "${driver}" network is allowed`);
    if (driver !== 'bridge') throw new NotFoundError(`plugin "${driver}" not found`);
    if (body.EnableIPv6 === true) throw new InvalidParameterError('IPv6 networks are not supported by Berth');
    if (body.ConfigOnly === true) throw new InvalidParameterError('config-only networks are not supported by Berth');
    const options = strMap(body.Options, 'Options');
    const labels = strMap(body.Labels, 'Labels');
    const ipamDriver = body.IPAM?.Driver === undefined || body.IPAM.Driver === '' ? 'default' : String(body.IPAM.Driver);
    if (ipamDriver !== 'default') throw new NotFoundError(`plugin "${ipamDriver}" not found`);
    const configs = Array.isArray(body.IPAM?.Config) ? (body.IPAM.Config as Record<string, unknown>[]) : [];
    const v4 = configs.filter((c) => typeof c.Subnet !== 'string' || !c.Subnet.includes(':'));
    if (v4.length > 1) throw new InvalidParameterError('Berth supports one IPv4 subnet per network');
    if (v4.length < configs.length) throw new InvalidParameterError('IPv6 subnets are not supported by Berth');

    const id = randomId();
    const bridge = options[BRIDGE_NAME_OPT] ?? `br-${id.slice(0, 12)}`;
    if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge)) throw new InvalidParameterError(`invalid bridge name ${bridge}`);
    if ([...this.networks.values()].some((n) => n.bridge === bridge)) {
      throw new ConflictError(`bridge name ${bridge} is already used by another network`);
    }
    let mtu = 1500;
    if (options[MTU_OPT] !== undefined) {
      mtu = Number(options[MTU_OPT]);
      if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new InvalidParameterError(`invalid MTU ${options[MTU_OPT]}`);
    }

    let entry: { Subnet: string; Gateway: string; IPRange?: string; AuxiliaryAddresses?: Record<string, string> };
    let auto = false;
    const given = v4[0];
    if (given && typeof given.Subnet === 'string' && given.Subnet !== '') {
      const subnet = parseSubnet(given.Subnet);
      for (const n of this.networks.values()) {
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
      const subnet = await this.pickSubnet([]);
      entry = { Subnet: cidrToString(subnet), Gateway: ipToString(subnet.base + 1) };
      auto = true;
    }

    const rec: NetworkRecord = {
      Id: id, Name: name, Created: nowRfc3339(), Driver: 'bridge',
      Internal: body.Internal === true, Attachable: body.Attachable === true,
      Options: options, Labels: labels,
      IPAM: { Driver: 'default', Options: strMap(body.IPAM?.Options, 'IPAM.Options'), Config: [entry] },
      bridge, mtu, predefined: false, autoSubnet: auto, masquerade: options[MASQ_OPT] !== 'false',
    };
    this.saveNetwork(rec, true);
    try {
      await this.bringUpBridge(rec);
      await this.applyFirewall();
    } catch (e) {
      await this.dnsServer.close(rec.Id);
      await this.plumbing.deleteLink(bridge);
      this.repo.deleteNetwork(rec.Id);
      this.networks.delete(rec.Id);
      throw e;
    }
    this.events.publish('network', 'create', id, { name, type: 'bridge' });
    this.log.info({ network: name, id, subnet: entry.Subnet, bridge }, 'network created');
    return { Id: id, Warning: '' };
  }

  async remove(ref: string): Promise<void> {
    await this.exclusive(async () => {
      const n = this.findNetwork(ref);
      await this.removeLocked(n);
    });
  }

  private async removeLocked(n: NetworkRecord): Promise<void> {
    if (n.predefined) throw new ForbiddenError(`${n.Name} is a pre-defined network and cannot be removed`);
    if (this.endpointsOf(n.Id).length > 0) {
      throw new ForbiddenError(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
    }
    await this.dnsServer.close(n.Id);
    if (n.bridge) await this.plumbing.deleteLink(n.bridge);
    this.repo.deleteNetwork(n.Id);
    this.networks.delete(n.Id);
    await this.applyFirewall();
    this.events.publish('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
    this.log.info({ network: n.Name, id: n.Id }, 'network removed');
  }

  async prune(filtersRaw: string | undefined): Promise<{ NetworksDeleted: string[] | null }> {
    const f = Filters.parse(filtersRaw, PRUNE_FILTERS);
    let until: bigint | undefined;
    if (f.has('until')) until = parseTimestampParam('until', f.get('until')[0]!);
    return this.exclusive(async () => {
      const deleted: string[] = [];
      for (const n of [...this.networks.values()]) {
        if (n.predefined || this.endpointsOf(n.Id).length > 0) continue;
        if (!f.matchesLabels(n.Labels)) continue;
        if (f.get('label!').some((t) => labelTermHolds(n.Labels, t))) continue;
        if (until !== undefined && BigInt(Date.parse(n.Created)) * 1_000_000n >= until) continue;
        try {
          await this.removeLocked(n);
          deleted.push(n.Name);
        } catch (e) {
          this.log.warn({ network: n.Name, err: errorMessage(e) }, 'prune could not remove a network');
        }
      }
      return { NetworksDeleted: deleted.length > 0 ? deleted : null };
    });
  }

  // ───────────────────────────── sandboxes ─────────────────────────────

  private findSandbox(ref: string): SandboxRecord | undefined {
    const direct = this.sandboxes.get(ref);
    if (direct) return direct;
    const all = [...this.sandboxes.values()];
    const byName = all.find((s) => s.name === ref || `/${s.name}` === ref);
    if (byName) return byName;
    const prefixed = all.filter((s) => s.containerId.startsWith(ref));
    return prefixed.length === 1 ? prefixed[0] : undefined;
  }

  private primaryEndpoint(sb: SandboxRecord): EndpointRecord | undefined {
    for (const nid of sb.order) {
      const ep = this.endpoints.get(`${nid}/${sb.containerId}`);
      if (ep && ep.ip) return ep;
    }
    return undefined;
  }

  /**
   * The endpoint that carries the default route and the published ports: the first one on a network
   * that is not internal (dockerd's gateway endpoint). None when every network is internal: such a
   * container has no route out and publishes nothing.
   */
  private gatewayEndpoint(sb: SandboxRecord): EndpointRecord | undefined {
    for (const nid of sb.order) {
      const ep = this.endpoints.get(`${nid}/${sb.containerId}`);
      if (ep && ep.ip && this.networks.get(nid)?.Internal === false) return ep;
    }
    return undefined;
  }

  async createSandbox(containerId: string, req: SandboxRequest): Promise<SandboxInfo> {
    const t0 = performance.now();
    const info = await this.exclusive(() => this.createSandboxLocked(containerId, req), false);
    this.log.debug({ container: containerId, mode: req.mode, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'sandbox created');
    return info;
  }

  private async createSandboxLocked(containerId: string, req: SandboxRequest): Promise<SandboxInfo> {
    if (!this.started) throw new BerthError('the network service is not started');
    if (this.sandboxes.has(containerId)) throw new ConflictError(`container ${containerId} already has a network sandbox`);
    mkdirSync(req.filesDir, { recursive: true });
    const mode = req.mode === '' || req.mode === 'default' ? 'bridge' : req.mode;
    const base: SandboxRecord = {
      containerId,
      name: req.name.replace(/^\//, ''),
      mode: 'bridge',
      hostsPath: join(req.filesDir, 'hosts'),
      resolvConfPath: join(req.filesDir, 'resolv.conf'),
      hostnamePath: join(req.filesDir, 'hostname'),
      hostname: req.hostname,
      domainname: req.domainname ?? '',
      dns: req.dns ?? [],
      dnsSearch: req.dnsSearch ?? [],
      dnsOptions: req.dnsOptions ?? [],
      extraHosts: req.extraHosts ?? [],
      links: (req.links ?? []).map((l) => {
        const [name = '', alias] = l.split(':');
        return { name: name.replace(/^\//, ''), alias: (alias ?? name).replace(/^.*\//, '') };
      }),
      exposed: req.exposedPorts ?? [],
      wanted: [],
      published: [],
      order: [],
      nextIf: 0,
    };

    if (mode.startsWith('container:')) {
      const targetRef = mode.slice('container:'.length);
      const target = this.findSandbox(targetRef);
      if (!target) {
        if (this.directory?.find(targetRef)) throw new ConflictError(`cannot join network namespace of a non running container: ${targetRef}`);
        throw new NotFoundError(`No such container: ${targetRef}`);
      }
      if (req.portBindings && Object.keys(req.portBindings).length > 0) {
        throw new InvalidParameterError('conflicting options: port publishing and the container type network mode');
      }
      const owner = target.mode === 'container' && target.sharedWith ? this.sandboxes.get(target.sharedWith) ?? target : target;
      const sb: SandboxRecord = {
        ...base, mode: 'container', sharedWith: owner.containerId, netnsPath: owner.netnsPath,
        hostsPath: owner.hostsPath, resolvConfPath: owner.resolvConfPath, hostnamePath: owner.hostnamePath, exposed: [],
      };
      this.persistSandbox(sb);
      return this.info(sb);
    }

    if (mode === 'host') {
      const sb: SandboxRecord = { ...base, mode: 'host', exposed: [] };
      const hostNet = this.findNetwork('host');
      this.addEndpointRecord(this.blankEndpoint(hostNet, containerId));
      sb.order = [hostNet.Id];
      let hosts = '';
      try {
        hosts = readFileSync('/etc/hosts', 'utf8');
      } catch {
        hosts = buildHostsFile([], []);
      }
      const extra = sb.extraHosts.map((h) => parseExtraHost(h, '127.0.0.1'));
      if (extra.length > 0) hosts += `${extra.map((e) => `${e.ip}\t${e.names.join(' ')}`).join('\n')}\n`;
      writeEtcFile(sb.hostsPath, hosts, false);
      writeEtcFile(sb.resolvConfPath, this.resolvFor(sb, undefined, true), false);
      writeEtcFile(sb.hostnamePath, `${req.hostname || osHostname()}\n`, false);
      this.persistSandbox(sb);
      this.events.publish('network', 'connect', hostNet.Id, { container: containerId, name: 'host', type: 'host' });
      return this.info(sb);
    }

    const pooled = mode === 'none' ? this.netnsPool.shift() : undefined;
    const netnsPath = pooled ?? join(this.opts.execRoot, 'netns', containerId);
    const sb: SandboxRecord = { ...base, mode: mode === 'none' ? 'none' : 'bridge', netnsPath };
    this.persistSandbox(sb);
    try {
      if (mode === 'none') {
        const none = this.findNetwork('none');
        this.addEndpointRecord(this.blankEndpoint(none, containerId));
        sb.order = [none.Id];
        if (pooled) {
          this.refillNetnsPool();
        } else {
          await this.settled();
          await this.plumbing.createNetns(netnsPath);
        }
      } else {
        const requested = { ...(req.endpoints ?? {}) };
        const primaryRef = mode === 'bridge' ? 'bridge' : mode;
        const primary = this.findNetwork(primaryRef);
        const list: [NetworkRecord, EndpointRequest][] = [];
        let primaryCfg: EndpointRequest = {};
        for (const [ref, cfg] of Object.entries(requested)) {
          const n = this.findNetwork(ref);
          if (n.Id === primary.Id) primaryCfg = cfg;
          else list.push([n, cfg]);
        }
        list.unshift([primary, primaryCfg]);
        const plumbing: EndpointPlumbing[] = [];
        for (const [n, cfg] of list) {
          if (n.Driver !== 'bridge') throw new InvalidParameterError(`container cannot be connected to network ${n.Name} together with others`);
          plumbing.push(this.allocate(sb, n, cfg).plumbing);
        }
        // Namespace and every endpoint at once (two processes, see Plumbing.createNetns).
        await this.settled();
        await this.plumbing.createNetns(netnsPath, plumbing);
        sb.wanted = wantedPorts(req.portBindings, req.publishAll ?? false, sb.exposed);
        await this.publish(sb);
      }
      this.writeFiles(sb, false);
      this.persistSandbox(sb);
      await this.applyFirewall();
    } catch (e) {
      await this.releaseLocked(containerId, false).catch((err: unknown) =>
        this.log.error({ container: containerId, err: errorMessage(err) }, 'rollback of a failed sandbox failed'),
      );
      throw e;
    }
    for (const nid of sb.order) {
      const n = this.networks.get(nid)!;
      this.events.publish('network', 'connect', nid, { container: containerId, name: n.Name, type: n.Driver });
    }
    return this.info(sb);
  }

  private blankEndpoint(n: NetworkRecord, containerId: string): EndpointRecord {
    return {
      networkId: n.Id, containerId, endpointId: randomId(), ifName: '', hostIfName: '', ip: '', prefixLen: 0,
      gateway: '', mac: '', aliases: [], links: [],
    };
  }

  private addEndpointRecord(ep: EndpointRecord): void {
    this.repo.insertEndpoint(ep.networkId, ep.containerId, ep.ip, JSON.stringify(ep));
    this.endpoints.set(`${ep.networkId}/${ep.containerId}`, ep);
  }

  private dropEndpointRecord(ep: EndpointRecord): void {
    this.repo.deleteEndpoint(ep.networkId, ep.containerId);
    this.endpoints.delete(`${ep.networkId}/${ep.containerId}`);
  }

  private persistSandbox(sb: SandboxRecord): void {
    this.repo.putSandbox(sb.containerId, JSON.stringify(sb));
    this.sandboxes.set(sb.containerId, sb);
  }

  /** Allocates an address on `n` and plugs a veth into the existing namespace of the sandbox (eth<n>). */
  private async attach(sb: SandboxRecord, n: NetworkRecord, cfg: EndpointRequest): Promise<EndpointRecord> {
    const { ep, plumbing } = this.allocate(sb, n, cfg);
    try {
      await this.plumbing.addEndpoint(plumbing);
    } catch (e) {
      this.dropEndpointRecord(ep);
      sb.order = sb.order.filter((x) => x !== n.Id);
      this.persistSandbox(sb);
      throw e;
    }
    return ep;
  }

  /** The endpoint record of `sb` on `n` (address allocated, saved) and what plugging it in takes. */
  private allocate(sb: SandboxRecord, n: NetworkRecord, cfg: EndpointRequest): { ep: EndpointRecord; plumbing: EndpointPlumbing } {
    if (this.endpoints.has(`${n.Id}/${sb.containerId}`)) {
      throw new ForbiddenError(`endpoint with name ${sb.name} already exists in network ${n.Name}`);
    }
    const userNet = !this.isDefaultBridge(n);
    const aliases = (cfg.aliases ?? []).filter((a) => a !== '');
    if (!userNet && aliases.length > 0) {
      throw new InvalidParameterError('network-scoped alias is supported only for containers in user defined networks');
    }
    if (!userNet && cfg.ipv4Address) {
      throw new InvalidParameterError('user specified IP address is supported on user defined networks only');
    }
    const c = n.IPAM.Config[0];
    if (!c || !n.bridge) throw new BerthError(`network ${n.Name} has no IPv4 configuration`);
    const subnet = parseCidr(c.Subnet)!;
    const plan: SubnetPlan = { subnet, gateway: parseIp(c.Gateway)!, ipRange: c.IPRange ? parseCidr(c.IPRange) : undefined };
    const used = new Set<number>();
    for (const e of this.endpointsOf(n.Id)) if (e.ip) used.add(parseIp(e.ip)!);
    for (const aux of Object.values(c.AuxiliaryAddresses ?? {})) {
      const ip = parseIp(aux);
      if (ip !== undefined) used.add(ip);
    }
    const ipNum = allocateAddress(plan, used, cfg.ipv4Address);
    const ip = ipToString(ipNum);
    if (cfg.macAddress && !isValidMac(cfg.macAddress)) throw new InvalidParameterError(`invalid MAC address: ${cfg.macAddress}`);
    const endpointId = randomId();
    // The default route goes through the first endpoint on a network with a way out.
    const routes = !n.Internal && this.gatewayEndpoint(sb) === undefined;
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
    // The record first: the unique index on (network, ip) is the final word on conflicts.
    try {
      this.addEndpointRecord(ep);
    } catch (e) {
      if (/UNIQUE/.test(errorMessage(e))) throw new ConflictError('Address already in use');
      throw e;
    }
    sb.nextIf += 1;
    sb.order.push(n.Id);
    this.persistSandbox(sb);
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
      owner: this.owner,
    };
    return { ep, plumbing };
  }

  /** Allocates host ports for sb.wanted, starts proxies, records sb.published. */
  private async publish(sb: SandboxRecord): Promise<void> {
    const target = this.gatewayEndpoint(sb);
    if (!target || sb.wanted.length === 0) return;
    const held: PublishedPort[] = [];
    for (const s of this.sandboxes.values()) if (s.containerId !== sb.containerId) held.push(...s.published);
    const proxies: PortProxy[] = [];
    try {
      for (const w of sb.wanted) {
        const port = await this.bindOne(w, held, target.ip, proxies);
        held.push(port);
        sb.published.push(port);
      }
    } catch (e) {
      await Promise.all(proxies.map((p) => p.close()));
      sb.published = [];
      throw e;
    }
    this.proxies.set(sb.containerId, proxies);
  }

  private async bindOne(w: WantedPort, held: PublishedPort[], containerIp: string, proxies: PortProxy[]): Promise<PublishedPort> {
    const ephemeral = w.hostFirst === 0;
    const first = ephemeral ? EPHEMERAL_FIRST : w.hostFirst;
    const last = ephemeral ? EPHEMERAL_LAST : w.hostLast;
    let lastError: Error | undefined;
    for (let port = first; port <= last; port++) {
      const cand: PublishedPort = { proto: w.proto, containerPort: w.containerPort, hostIp: w.hostIp, hostPort: port };
      if (held.some((h) => collides(h, cand))) {
        lastError = new BerthError(portAllocatedMessage(w.hostIp, port));
        continue;
      }
      try {
        proxies.push(await startProxy(this.log, { proto: w.proto, hostIp: w.hostIp, hostPort: port, containerIp, containerPort: w.containerPort }));
        return cand;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const addr = `${w.hostIp === '' ? '0.0.0.0' : w.hostIp}:${port}`;
        lastError = new BerthError(
          code === 'EADDRINUSE'
            ? `Error starting userland proxy: listen ${w.proto}4 ${addr}: bind: address already in use`
            : `Error starting userland proxy: listen ${w.proto}4 ${addr}: ${errorMessage(e)}`,
        );
      }
    }
    throw lastError ?? new BerthError('no host port available');
  }

  private resolvFor(sb: SandboxRecord, embedded: string | undefined, hostMode: boolean): string {
    return buildResolvConf({
      host: this.hostResolvText(),
      embedded,
      dns: sb.dns.length > 0 ? sb.dns : embedded === undefined && !hostMode ? this.opts.dns ?? [] : sb.dns,
      dnsSearch: sb.dnsSearch,
      dnsOptions: sb.dnsOptions,
      hostMode,
    });
  }

  /** hosts, resolv.conf and hostname of a bridge/none sandbox. */
  private writeFiles(sb: SandboxRecord, inPlace: boolean): void {
    const own: HostsEntry[] = [];
    let embedded: string | undefined;
    for (const nid of sb.order) {
      const ep = this.endpoints.get(`${nid}/${sb.containerId}`);
      const n = this.networks.get(nid);
      if (!ep?.ip || !n) continue;
      own.push({ ip: ep.ip, names: ownHostNames(sb.hostname, sb.domainname || undefined) });
      if (embedded === undefined && !this.isDefaultBridge(n)) embedded = ep.gateway;
    }
    const primary = this.primaryEndpoint(sb);
    const extra = sb.extraHosts.map((h) => parseExtraHost(h, primary?.gateway));
    for (const l of sb.links) {
      const target = this.findSandbox(l.name);
      const ip = target ? this.primaryEndpoint(target)?.ip : undefined;
      if (!target || !ip) throw new InvalidParameterError(`could not get container for ${l.name}`);
      const names = [l.alias, target.containerId.slice(0, 12), target.name].filter((x, i, a) => a.indexOf(x) === i);
      extra.push({ ip, names });
    }
    writeEtcFile(sb.hostsPath, buildHostsFile(own, extra), inPlace);
    if (!inPlace || !existsSync(sb.resolvConfPath)) writeEtcFile(sb.resolvConfPath, this.resolvFor(sb, embedded, false), inPlace);
    writeEtcFile(sb.hostnamePath, `${sb.hostname}\n`, inPlace);
  }

  private info(sb: SandboxRecord): SandboxInfo {
    return {
      netnsPath: sb.netnsPath,
      hostsPath: sb.hostsPath,
      resolvConfPath: sb.resolvConfPath,
      hostnamePath: sb.hostnamePath,
      settings: this.settingsOf(sb),
    };
  }

  /**
   * Frees what the sandbox held before returning: addresses, endpoint and sandbox records, published
   * ports (listeners closed). The devices (veths, namespace bind mount) and the DNAT/accept rules of
   * its ports follow in the background: every later state change of this service that plumbs waits
   * for that teardown first, and stop() does too.
   */
  async releaseSandbox(containerId: string): Promise<void> {
    const t0 = performance.now();
    await this.exclusive(() => this.releaseLocked(containerId, true, true), false);
    this.log.debug({ container: containerId, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'sandbox released');
  }

  /** Waits until no released sandbox has devices left (tests, diagnostics). */
  async settled(): Promise<void> {
    while (this.teardowns.size > 0) await Promise.all(this.teardowns);
  }

  private async releaseLocked(containerId: string, publishEvents: boolean, background = false): Promise<void> {
    const sb = this.sandboxes.get(containerId);
    const proxies = this.proxies.get(containerId) ?? [];
    this.proxies.delete(containerId);
    await Promise.all(proxies.map((p) => p.close()));
    const eps = [...this.endpoints.values()].filter((e) => e.containerId === containerId);
    const links: string[] = [];
    for (const ep of eps) {
      if (ep.hostIfName) links.push(ep.hostIfName);
      this.dropEndpointRecord(ep);
      const n = this.networks.get(ep.networkId);
      if (publishEvents && n) this.events.publish('network', 'disconnect', n.Id, { container: containerId, name: n.Name, type: n.Driver });
    }
    const netnsPath = sb && sb.mode !== 'container' ? sb.netnsPath : undefined;
    this.repo.deleteSandbox(containerId);
    this.sandboxes.delete(containerId);
    // Links before the namespace: once the namespace is gone the kernel would delete its veths on its own
    // schedule, and a veth that outlives its release could still answer for a reused address.
    // Unchanged rules (no published ports) cost nothing: Firewall.apply skips them.
    const rules = eps.length > 0 || (sb?.published.length ?? 0) > 0;
    const teardown = async (): Promise<void> => {
      await Promise.all([
        (async () => {
          await Promise.all(links.map((l) => this.plumbing.deleteLink(l)));
          if (netnsPath) await this.plumbing.deleteNetns(netnsPath);
        })(),
        rules ? this.applyFirewall() : undefined,
      ]);
    };
    if (background) {
      // Forking a child blocks the event loop for a few ms (the daemon's page tables are copied): start
      // after the caller's reply is on its way rather than before.
      const done: Promise<void> = nextTurn()
        .then(teardown)
        .catch((e: unknown) => this.log.error({ container: containerId, err: errorMessage(e) }, 'tearing down a released sandbox failed'))
        .finally(() => this.teardowns.delete(done));
      this.teardowns.add(done);
    } else {
      await teardown();
    }
  }

  // ───────────────────────────── connect / disconnect ─────────────────────────────

  private resolveContainer(ref: string): { id: string; name: string; sandbox: SandboxRecord | undefined } {
    const sb = this.findSandbox(ref);
    if (sb) return { id: sb.containerId, name: sb.name, sandbox: sb };
    const found = this.directory?.find(ref);
    if (found) return { id: found.id, name: found.name, sandbox: found.running ? this.sandboxes.get(found.id) : undefined };
    throw new NotFoundError(`No such container: ${ref}`);
  }

  async connect(containerRef: string, networkRef: string, cfg: EndpointRequest = {}): Promise<void> {
    await this.exclusive(async () => {
      const n = this.findNetwork(networkRef);
      const c = this.resolveContainer(containerRef);
      const sb = c.sandbox;
      if (!sb) {
        if (!this.directory?.attachStopped) throw new ConflictError(`container ${c.id} is not running`);
        this.directory.attachStopped(c.id, n.Name, cfg);
        return;
      }
      if (n.Driver !== 'bridge') throw new ForbiddenError('container cannot be disconnected from host network or connected to host network');
      if (sb.mode !== 'bridge') {
        throw new ForbiddenError('container sharing network namespace with another container or host cannot be connected to any other network');
      }
      const ep = await this.attach(sb, n, cfg);
      if (sb.published.length === 0 && sb.wanted.length > 0 && this.gatewayEndpoint(sb) === ep) await this.publish(sb);
      this.writeFiles(sb, true);
      this.persistSandbox(sb);
      await this.applyFirewall();
      this.events.publish('network', 'connect', n.Id, { container: sb.containerId, name: n.Name, type: n.Driver });
    });
  }

  async disconnect(containerRef: string, networkRef: string, force = false): Promise<void> {
    await this.exclusive(async () => {
      const n = this.findNetwork(networkRef);
      let c: { id: string; name: string; sandbox: SandboxRecord | undefined };
      try {
        c = this.resolveContainer(containerRef);
      } catch (e) {
        // force: drop a stale endpoint of a container that no longer exists
        const stale = force ? this.endpointsOf(n.Id).find((ep) => ep.containerId.startsWith(containerRef)) : undefined;
        if (!stale) throw e;
        this.dropEndpointRecord(stale);
        return;
      }
      const sb = c.sandbox;
      if (!sb) {
        if (this.directory?.detachStopped?.(c.id, n.Name)) return;
        throw new ForbiddenError(`container ${c.id} is not connected to network ${n.Name}`);
      }
      const ep = this.endpoints.get(`${n.Id}/${sb.containerId}`);
      if (!ep) throw new ForbiddenError(`container ${sb.containerId} is not connected to network ${n.Name}`);
      if (sb.mode !== 'bridge') throw new ForbiddenError('container cannot be disconnected from host network or connected to host network');
      const wasGateway = this.gatewayEndpoint(sb) === ep;
      if (sb.netnsPath && ep.ifName) await this.plumbing.deleteInNetns(sb.netnsPath, ep.ifName);
      if (ep.hostIfName) await this.plumbing.deleteLink(ep.hostIfName);
      this.dropEndpointRecord(ep);
      sb.order = sb.order.filter((x) => x !== n.Id);
      if (wasGateway) {
        const next = this.gatewayEndpoint(sb);
        if (next && sb.netnsPath) {
          await this.plumbing.setDefaultRoute(sb.netnsPath, next.gateway, next.ifName);
          for (const p of this.proxies.get(sb.containerId) ?? []) p.retarget(next.ip);
        } else {
          // Only internal networks left: no way out, nothing published (the route left with the device).
          const proxies = this.proxies.get(sb.containerId) ?? [];
          this.proxies.delete(sb.containerId);
          await Promise.all(proxies.map((p) => p.close()));
          sb.published = [];
        }
      }
      this.writeFiles(sb, true);
      this.persistSandbox(sb);
      await this.applyFirewall();
      this.events.publish('network', 'disconnect', n.Id, { container: sb.containerId, name: n.Name, type: n.Driver });
    });
  }

  // ───────────────────────────── container views ─────────────────────────────

  setContainerName(containerId: string, name: string): void {
    const sb = this.sandboxes.get(containerId);
    if (!sb) return;
    sb.name = name.replace(/^\//, '');
    this.persistSandbox(sb);
  }

  settings(containerId: string): NetworkSettings | undefined {
    const sb = this.sandboxes.get(containerId);
    return sb ? this.settingsOf(sb) : undefined;
  }

  portList(containerId: string): ReturnType<typeof portList> {
    const sb = this.sandboxes.get(containerId);
    return sb ? portList(sb.published, sb.exposed) : [];
  }

  private endpointSettings(n: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): EndpointSettings {
    const userNet = n.Driver === 'bridge' && !this.isDefaultBridge(n);
    return {
      IPAMConfig: ep.ipv4Requested ? { IPv4Address: ep.ipv4Requested } : null,
      Links: ep.links.length > 0 ? ep.links : null,
      Aliases: ep.aliases.length > 0 ? ep.aliases : null,
      MacAddress: ep.mac,
      DriverOpts: null,
      GwPriority: 0,
      NetworkID: n.Id,
      EndpointID: ep.endpointId,
      Gateway: ep.gateway,
      IPAddress: ep.ip,
      IPPrefixLen: ep.prefixLen,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      DNSNames: userNet ? [sb.name, ...ep.aliases, sb.containerId.slice(0, 12)].filter((x, i, a) => x !== '' && a.indexOf(x) === i) : null,
    };
  }

  private settingsOf(sb: SandboxRecord): NetworkSettings {
    const networks: Record<string, EndpointSettings> = {};
    let top: EndpointSettings | undefined;
    for (const nid of sb.order) {
      const n = this.networks.get(nid);
      const ep = this.endpoints.get(`${nid}/${sb.containerId}`);
      if (!n || !ep) continue;
      const es = this.endpointSettings(n, ep, sb);
      networks[n.Name] = es;
      if (this.isDefaultBridge(n)) top = es;
    }
    return {
      Bridge: '',
      SandboxID: sb.netnsPath ? createHash('sha256').update(sb.netnsPath).digest('hex') : '',
      SandboxKey: sb.netnsPath ?? '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: sb.mode === 'bridge' ? portMap(sb.published, sb.exposed) : {},
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: top?.EndpointID ?? '',
      Gateway: top?.Gateway ?? '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: top?.IPAddress ?? '',
      IPPrefixLen: top?.IPPrefixLen ?? 0,
      IPv6Gateway: '',
      MacAddress: top?.MacAddress ?? '',
      Networks: networks,
    };
  }

  /** NetworkSettings of a container that is not running: its networks with empty addresses. */
  stoppedSettings(endpoints: Record<string, EndpointRequest>, mode: string): NetworkSettings {
    const networks: Record<string, EndpointSettings> = {};
    const refs = Object.keys(endpoints);
    const m = mode === '' || mode === 'default' ? 'bridge' : mode;
    if (!m.startsWith('container:') && !refs.includes(m)) refs.unshift(m);
    for (const ref of refs) {
      let n: NetworkRecord | undefined;
      try {
        n = this.findNetwork(ref);
      } catch {
        continue;
      }
      const cfg = endpoints[ref] ?? {};
      networks[n.Name] = {
        IPAMConfig: cfg.ipv4Address ? { IPv4Address: cfg.ipv4Address } : null,
        Links: null, Aliases: cfg.aliases && cfg.aliases.length > 0 ? cfg.aliases : null, MacAddress: '', DriverOpts: null, GwPriority: 0,
        NetworkID: n.Id, EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '',
        GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
      };
    }
    return {
      Bridge: '', SandboxID: '', SandboxKey: '', HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0,
      Ports: {}, SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '',
      GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '',
      Networks: networks,
    };
  }

  // ───────────────────────────── embedded DNS ─────────────────────────────

  private dnsLookup(networkId: string, askerIp: string, rawName: string): string[] | undefined {
    const name = rawName.replace(/\.$/, '').toLowerCase();
    if (name === '') return undefined;
    const asker = this.endpointsOf(networkId).find((e) => e.ip === askerIp);
    const nets = [networkId];
    if (asker) {
      const sb = this.sandboxes.get(asker.containerId);
      for (const nid of sb?.order ?? []) {
        const n = this.networks.get(nid);
        if (nid !== networkId && n && n.Driver === 'bridge' && !this.isDefaultBridge(n)) nets.push(nid);
      }
    }
    for (const nid of nets) {
      const ips: string[] = [];
      for (const ep of this.endpointsOf(nid)) {
        if (!ep.ip) continue;
        const sb = this.sandboxes.get(ep.containerId);
        if (!sb) continue;
        const names = [sb.name, ...ep.aliases, sb.containerId.slice(0, 12)].map((x) => x.toLowerCase());
        if (names.includes(name) && !ips.includes(ep.ip)) ips.push(ep.ip);
      }
      if (ips.length > 0) return ips;
    }
    return undefined;
  }
}
