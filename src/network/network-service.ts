/**
 * NetworkService: the network layer's facade. It owns the lock every state change runs under and wires
 * the parts, each in its own module:
 *
 *   state.ts            the records (networks, endpoints, sandboxes) and their rows in the store
 *   bootstrap.ts        start-up: forwarding, leftovers, predefined networks, subnets, bridges + DNS
 *   networks.ts         docker network ls/create/rm/prune
 *   modes/              one module per network mode: bridge (default + user networks), host, none, container:
 *   ports/              published ports: bindings, host port choice, userland proxies, firewall input
 *   sandbox-files.ts    hosts / resolv.conf / hostname of sandboxes
 *   presenters.ts       Network, NetworkSettings and EndpointSettings as the API shows them
 *   dns-names.ts        what the embedded DNS (dns-server.ts) answers, and to whom
 *   firewall.ts         NAT, isolation and published-port rules (iptables or nftables)
 *   plumbing.ts         bridges, veths, namespaces (iproute2)
 *
 * ContainerService sees it through the ContainerNetwork interface (container-network.ts).
 */
import { mkdirSync } from 'node:fs';
import type { Logger } from '../util/logger.js';
import type { EventBus } from '../events/event-bus.js';
import type { NetworkRepo } from '../metadata/network-repo.js';
import { BerthError, ConflictError, ForbiddenError, NotFoundError, errorMessage } from '../errors.js';
import { NetworkBootstrap } from './bootstrap.js';
import type { ContainerNetwork } from './container-network.js';
import { EmbeddedDns } from './dns-server.js';
import { networkNames } from './dns-names.js';
import { DaemonRegistry } from './daemon-registry.js';
import { Firewall, firewallTag, type FirewallState } from './firewall.js';
import { HOST_NETWORK_LOCK, withHostLock } from './host-lock.js';
import { BridgeMode } from './modes/bridge.js';
import { containerSandbox } from './modes/container.js';
import { hostSandbox } from './modes/host.js';
import { legacyLinkEnv } from './links.js';
import { NoneMode, nextTurn } from './modes/none.js';
import { UserNetworks, type NetworkCreateBody } from './networks.js';
import { Plumbing } from './plumbing.js';
import { portList, type PortListEntry } from './ports/port-spec.js';
import { PortPublisher } from './ports/publisher.js';
import { networkApi, sandboxInfo, sandboxSettings, stoppedSettings, type NetworkApi } from './presenters.js';
import { SandboxFiles } from './sandbox-files.js';
import { NetworkState, newSandboxRecord } from './state.js';
import { ToolShell } from './tool-shell.js';
import type {
  ContainerDirectory,
  EndpointRequest,
  NetworkContext,
  NetworkRecord,
  NetworkServiceOptions,
  NetworkSettings,
  SandboxInfo,
  SandboxRecord,
  SandboxRequest,
} from './types.js';

export type * from './types.js';
export type { ContainerNetwork } from './container-network.js';
export type { NetworkCreateBody } from './networks.js';
export type { NetworkApi } from './presenters.js';

/** A bridge sandbox between its locked first step and its last (see createSandbox). */
interface PendingSandbox {
  sb: SandboxRecord;
  /** The networks it joined, for the connect events. */
  order: string[];
  /** Its namespace with the veths in it. */
  plumbed: Promise<void>;
}

/** A released sandbox whose devices are still being deleted. */
interface Teardown {
  containerId: string;
  /** "<network id> <ip>" of each endpoint it had. */
  addresses: string[];
  /** Resolves once its namespace is unmounted. */
  unmounted: Promise<void>;
  /** Resolves once everything is gone (never rejects). */
  done: Promise<void>;
}

export class NetworkService implements ContainerNetwork {
  private readonly ctx: NetworkContext;
  private readonly state: NetworkState;
  private readonly plumbing: Plumbing;
  private readonly firewall: Firewall;
  private readonly dnsServer: EmbeddedDns;
  private readonly files: SandboxFiles;
  private readonly ports: PortPublisher;
  private readonly bootstrap: NetworkBootstrap;
  private readonly registry: DaemonRegistry;
  private readonly userNetworks: UserNetworks;
  private readonly bridge: BridgeMode;
  private readonly none: NoneMode;
  private readonly warningList: string[] = [];
  private directory: ContainerDirectory | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  /** Device teardowns of released sandboxes still running (see releaseSandbox). */
  private readonly teardowns = new Set<Teardown>();
  /**
   * Bridge sandboxes whose namespace is being plumbed outside the lock (createSandbox), by container: settles
   * (never rejects) once it is made or failed. A locked step that touches a sandbox's devices waits for it first;
   * that never deadlocks, the plumbing takes no lock.
   */
  private readonly creating = new Map<string, Promise<void>>();
  private started = false;

  constructor(repo: NetworkRepo, events: EventBus, private readonly log: Logger, opts: NetworkServiceOptions) {
    const shell = new ToolShell(log);
    this.plumbing = new Plumbing(log, shell);
    this.state = new NetworkState(repo);
    const tag = firewallTag(opts.daemonId);
    this.ctx = {
      state: this.state,
      plumbing: this.plumbing,
      events,
      log,
      opts,
      owner: `berth:${opts.daemonId}`,
      settled: () => this.settled(),
      settledFor: (containerId, addresses) => this.settledFor(containerId, addresses),
      cooling: (networkId, containerId) => this.cooling(networkId, containerId),
    };
    this.firewall = new Firewall(log, tag, opts.iptables, shell);
    this.files = new SandboxFiles(this.ctx);
    this.dnsServer = new EmbeddedDns(
      log.child({ part: 'dns' }),
      networkNames(this.state),
      opts.dnsUpstreams ?? (() => this.files.hostUpstreams()),
      opts.dnsPort ?? 53,
    );
    this.ports = new PortPublisher(this.ctx);
    this.bootstrap = new NetworkBootstrap(this.ctx, this.dnsServer);
    this.registry = new DaemonRegistry(opts.daemonsDir);
    this.userNetworks = new UserNetworks(this.ctx, this.bootstrap, this.dnsServer, () => this.applyFirewall());
    this.bridge = new BridgeMode(this.ctx, this.ports, this.files);
    this.none = new NoneMode(this.ctx);
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
      this.state.load();
      this.warningList.push(...(await this.bootstrap.enableForwarding()));
      // Other daemons pick subnets and bridge names from the same host, and remove what dead daemons left: one at a
      // time (see withHostLock). This daemon registers and makes its chains under the lock too: a daemon restarted
      // after a kill is otherwise judged dead by another one starting meanwhile, which then deletes the chains and
      // the bridge it is making.
      await withHostLock(HOST_NETWORK_LOCK, async () => {
        this.registry.register(this.ctx.opts.daemonId);
        this.warningList.push(...(await this.firewall.start()));
        await this.bootstrap.removeLeftoverLinks();
        await this.bootstrap.removeLeftoverNetns();
        await this.bootstrap.removeDeadDaemons(this.registry);
        await this.bootstrap.ensurePredefined();
        for (const n of this.state.networks.values()) {
          if (n.Driver !== 'bridge') continue;
          await this.bootstrap.bringUpBridge(n);
        }
      });
      await this.applyFirewall();
      this.started = true;
      this.none.setRunning(true);
    });
  }

  /**
   * Called once after start() with the IDs of containers still running: their sandboxes get proxies and
   * rules back; every other sandbox is released.
   */
  async restore(liveContainerIds: Iterable<string>): Promise<void> {
    const live = new Set(liveContainerIds);
    await this.exclusive(async () => {
      for (const sb of [...this.state.sandboxes.values()]) {
        if (!live.has(sb.containerId)) {
          this.log.info({ container: sb.containerId }, 'releasing the network sandbox of a container that is gone');
          await this.releaseLocked(sb.containerId, false);
          continue;
        }
        await this.ports.reopen(sb);
      }
      // Endpoints without a sandbox (a crash between writes) are stale allocations.
      for (const ep of this.state.allEndpoints()) {
        if (!this.state.sandboxes.has(ep.containerId)) this.state.dropEndpoint(ep);
      }
      await this.applyFirewall();
    });
  }

  /** Closes listeners and removes the firewall chains; bridges without endpoints are removed too. */
  async stop(): Promise<void> {
    await this.exclusive(async () => {
      this.started = false;
      await this.none.drain();
      await this.ports.closeAll();
      await this.dnsServer.closeAll();
      await this.firewall.stop();
      const used = new Set(this.state.allEndpoints().map((e) => e.networkId));
      // Only devices that are still this daemon's: after a kill, another daemon may have removed ours and taken the name.
      const ours = new Set((await this.plumbing.links()).filter((l) => l.ifalias === this.ctx.owner).map((l) => l.ifname));
      for (const n of this.state.networks.values()) {
        if (n.Driver === 'bridge' && n.bridge && !used.has(n.Id) && ours.has(n.bridge)) await this.plumbing.deleteLink(n.bridge);
      }
      this.plumbing.close();
      this.registry.forget(this.ctx.opts.daemonId);
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

  private firewallState(): FirewallState {
    const state: FirewallState = { bridges: [], ports: this.ports.firewallPorts() };
    for (const n of this.state.networks.values()) {
      if (n.Driver !== 'bridge' || !n.bridge || !n.IPAM.Config[0]) continue;
      state.bridges.push({ name: n.bridge, subnet: n.IPAM.Config[0].Subnet, internal: n.Internal, masquerade: n.masquerade, ...(n.enableIPv6 ? { ipv6: true } : {}) });
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
    return this.state.findNetwork(ref);
  }

  list(filtersRaw: string | undefined): NetworkApi[] {
    return this.userNetworks.list(filtersRaw);
  }

  inspect(ref: string): NetworkApi {
    return networkApi(this.state, this.state.findNetwork(ref), true);
  }

  create(body: NetworkCreateBody): Promise<{ Id: string; Warning: string }> {
    return this.exclusive(() => this.userNetworks.create(body));
  }

  async remove(ref: string): Promise<void> {
    await this.exclusive(() => this.userNetworks.remove(this.state.findNetwork(ref)));
  }

  prune(filtersRaw: string | undefined): Promise<{ NetworksDeleted: string[] | null }> {
    const filters = this.userNetworks.pruneFilters(filtersRaw);
    return this.exclusive(() => this.userNetworks.prune(filters));
  }

  // ───────────────────────────── sandboxes ─────────────────────────────

  /**
   * A container's sandbox. A bridge sandbox is made in three steps, the slow middle one outside the lock so that
   * concurrent starts plumb side by side: its addresses and records (locked), its namespace with the veths (not
   * locked: touches no state; whatever needs those devices waits for it, see `creating`), its ports, files and
   * rules (locked).
   */
  async createSandbox(containerId: string, req: SandboxRequest): Promise<SandboxInfo> {
    const t0 = performance.now();
    const begun = await this.exclusive(() => this.createSandboxLocked(containerId, req), false);
    const info = 'info' in begun ? begun.info : await this.finishSandbox(containerId, req, begun);
    this.log.debug({ container: containerId, mode: req.mode, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'sandbox created');
    return info;
  }

  private async createSandboxLocked(containerId: string, req: SandboxRequest): Promise<{ info: SandboxInfo } | PendingSandbox> {
    if (!this.started) throw new BerthError('the network service is not started');
    if (this.state.sandboxes.has(containerId)) throw new ConflictError(`container ${containerId} already has a network sandbox`);
    mkdirSync(req.filesDir, { recursive: true });
    const mode = req.mode === '' || req.mode === 'default' ? 'bridge' : req.mode;
    const base = newSandboxRecord(containerId, req);
    if (mode.startsWith('container:')) {
      return { info: sandboxInfo(this.state, containerSandbox(this.ctx, base, mode.slice('container:'.length), req, this.directory)) };
    }
    if (mode === 'host') return { info: sandboxInfo(this.state, hostSandbox(this.ctx, this.files, base, req)) };

    const pooled = mode === 'none' ? this.none.take() : undefined;
    const sb: SandboxRecord = { ...base, mode: mode === 'none' ? 'none' : 'bridge', netnsPath: pooled ?? this.bridge.netnsPath(containerId) };
    this.state.putSandbox(sb);
    try {
      if (mode !== 'none') {
        const { plumbing, addresses } = this.bridge.allocateAll(sb, mode, req);
        const plumbed = this.bridge.plumb(sb, plumbing, addresses);
        const settled = plumbed.then(
          () => undefined,
          () => undefined,
        );
        this.creating.set(containerId, settled);
        void settled.then(() => {
          if (this.creating.get(containerId) === settled) this.creating.delete(containerId);
        });
        return { sb, order: [...sb.order], plumbed };
      }
      await this.none.create(sb, pooled !== undefined);
      this.files.write(sb, false);
      this.state.putSandbox(sb);
      await this.applyFirewall();
    } catch (e) {
      await this.releaseLocked(containerId, false).catch((err: unknown) =>
        this.log.error({ container: containerId, err: errorMessage(err) }, 'rollback of a failed sandbox failed'),
      );
      throw e;
    }
    this.publishConnects(containerId, sb.order);
    return { info: { ...sandboxInfo(this.state, sb), linkEnv: this.linkEnv(sb) } };
  }

  /** The locked last step of a bridge sandbox once its namespace is plumbed (or the rollback if that failed). */
  private async finishSandbox(containerId: string, req: SandboxRequest, p: PendingSandbox): Promise<SandboxInfo> {
    const rollback = (): Promise<void> =>
      this.releaseLocked(containerId, false).catch((err: unknown) =>
        this.log.error({ container: containerId, err: errorMessage(err) }, 'rollback of a failed sandbox failed'),
      );
    try {
      await p.plumbed;
    } catch (e) {
      await this.exclusive(rollback, false);
      throw e;
    }
    return this.exclusive(async () => {
      if (this.state.sandboxes.get(containerId) !== p.sb) throw new BerthError(`the network sandbox of container ${containerId} was released while it was made`);
      try {
        if (!this.started) throw new BerthError('the network service is not started');
        await this.bridge.publish(p.sb, req);
        this.files.write(p.sb, false);
        this.state.putSandbox(p.sb);
        await this.applyFirewall();
      } catch (e) {
        await rollback();
        throw e;
      }
      this.publishConnects(containerId, p.order);
      return { ...sandboxInfo(this.state, p.sb), linkEnv: this.linkEnv(p.sb) };
    }, false);
  }

  private publishConnects(containerId: string, order: readonly string[]): void {
    for (const nid of order) {
      const n = this.state.networks.get(nid);
      if (n) this.ctx.events.publish('network', 'connect', nid, { container: containerId, name: n.Name, type: n.Driver });
    }
  }

  /** The environment of the sandbox's legacy links (their targets are running: the hosts file needed them). */
  private linkEnv(sb: SandboxRecord): string[] {
    const env: string[] = [];
    for (const l of sb.links) {
      const target = this.state.findSandbox(l.name);
      const ip = target ? this.state.primaryEndpoint(target)?.ip : undefined;
      if (!target || !ip) continue;
      env.push(...legacyLinkEnv(`/${sb.name}/${l.alias}`, ip, this.directory?.find(target.containerId)?.env ?? [], target.exposed));
    }
    return env;
  }

  /** Removes a legacy link of a running container (docker rm --link): its hosts entry goes. */
  async removeLink(containerId: string, alias: string): Promise<void> {
    await this.exclusive(async () => {
      const sb = this.state.sandboxes.get(containerId);
      if (!sb || !sb.links.some((l) => l.alias === alias)) return;
      sb.links = sb.links.filter((l) => l.alias !== alias);
      if (sb.mode === 'bridge') this.files.write(sb, true);
      this.state.putSandbox(sb);
    }, false);
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
    while (this.teardowns.size > 0) await Promise.all([...this.teardowns].map((t) => t.done));
  }

  /** Waits until no released sandbox still has its namespace mounted (its veths may still be going). */
  async unmounted(): Promise<void> {
    await Promise.all([...this.teardowns].map((t) => t.unmounted));
  }

  /**
   * Waits for the teardowns that could collide with a new sandbox of `containerId` holding `addresses`
   * ("<network id> <ip>"): the same namespace path, or a veth still answering for one of the addresses (its MAC
   * is derived from the address too). Other teardowns go on while the new sandbox is plumbed.
   */
  async settledFor(containerId: string, addresses: readonly string[]): Promise<void> {
    const clash = (t: Teardown): boolean => t.containerId === containerId || t.addresses.some((a) => addresses.includes(a));
    for (let ts = [...this.teardowns].filter(clash); ts.length > 0; ts = [...this.teardowns].filter(clash)) await Promise.all(ts.map((t) => t.done));
  }

  /**
   * Addresses on `networkId` whose released veths (of containers other than `containerId`, which waits for its own
   * teardown anyway and so keeps its address over a restart) are still being deleted: the allocator passes them
   * over when it can.
   */
  private cooling(networkId: string, containerId: string): Set<string> {
    const out = new Set<string>();
    for (const t of this.teardowns) {
      if (t.containerId === containerId) continue;
      for (const a of t.addresses) if (a.startsWith(`${networkId} `)) out.add(a.slice(networkId.length + 1));
    }
    return out;
  }

  private async releaseLocked(containerId: string, publishEvents: boolean, background = false): Promise<void> {
    await this.creating.get(containerId);
    const sb = this.state.sandboxes.get(containerId);
    await this.ports.close(containerId);
    const eps = this.state.allEndpoints().filter((e) => e.containerId === containerId);
    const links: string[] = [];
    for (const ep of eps) {
      if (ep.hostIfName) links.push(ep.hostIfName);
      this.state.dropEndpoint(ep);
      const n = this.state.networks.get(ep.networkId);
      if (publishEvents && n) this.ctx.events.publish('network', 'disconnect', n.Id, { container: containerId, name: n.Name, type: n.Driver });
    }
    const netnsPath = sb && sb.mode !== 'container' ? sb.netnsPath : undefined;
    this.state.deleteSandbox(containerId);
    // Links before the namespace: once the namespace is gone the kernel would delete its veths on its own
    // schedule, and a veth that outlives its release could still answer for a reused address.
    // Unchanged rules (no published ports) cost nothing: Firewall.apply skips them.
    const rules = eps.length > 0 || (sb?.published.length ?? 0) > 0;
    // The namespace is unmounted first: that is quick and is what a removal waits for (no mount outlives docker
    // rm). The kernel then deletes the dying namespace's veths itself, many namespaces in one batch (an `ip link
    // del` each would wait for an RCU grace period of its own, ~30 ms, in the two plumbing shells, and a removal
    // of 30 containers queued its unmounts behind them); a veth still there after a while (its namespace held by
    // someone else) is deleted. Only a new sandbox reusing one of these addresses (or this namespace path) waits
    // for the veths to be gone (settledFor).
    let unmountedResolve!: () => void;
    const unmounted = new Promise<void>((r) => (unmountedResolve = r));
    const teardown = async (): Promise<void> => {
      await Promise.all([
        (async () => {
          if (netnsPath) await this.plumbing.deleteNetns(netnsPath).finally(unmountedResolve);
          await Promise.all(links.map((l) => (netnsPath ? this.plumbing.awaitLinkGone(l, 500) : this.plumbing.deleteLink(l))));
        })(),
        rules ? this.applyFirewall() : undefined,
      ]);
    };
    if (background) {
      // Forking a child blocks the event loop for a few ms (the daemon's page tables are copied): start
      // after the caller's reply is on its way rather than before.
      const t: Teardown = {
        containerId,
        addresses: eps.flatMap((ep) => (ep.ip ? [`${ep.networkId} ${ep.ip}`] : [])),
        unmounted,
        done: Promise.resolve(),
      };
      t.done = nextTurn()
        .then(teardown)
        .catch((e: unknown) => this.log.error({ container: containerId, err: errorMessage(e) }, 'tearing down a released sandbox failed'))
        .finally(() => {
          unmountedResolve();
          this.teardowns.delete(t);
        });
      this.teardowns.add(t);
    } else {
      await teardown();
    }
  }

  // ───────────────────────────── connect / disconnect ─────────────────────────────

  private resolveContainer(ref: string): { id: string; name: string; sandbox: SandboxRecord | undefined } {
    const sb = this.state.findSandbox(ref);
    if (sb) return { id: sb.containerId, name: sb.name, sandbox: sb };
    const found = this.directory?.find(ref);
    if (found) return { id: found.id, name: found.name, sandbox: found.running ? this.state.sandboxes.get(found.id) : undefined };
    throw new NotFoundError(`No such container: ${ref}`);
  }

  async connect(containerRef: string, networkRef: string, cfg: EndpointRequest = {}): Promise<void> {
    await this.exclusive(async () => {
      const n = this.state.findNetwork(networkRef);
      const c = this.resolveContainer(containerRef);
      const sb = c.sandbox;
      if (!sb) {
        if (!this.directory?.attachStopped) throw new ConflictError(`container ${c.id} is not running`);
        this.directory.attachStopped(c.id, n.Name, cfg);
        return;
      }
      await this.creating.get(sb.containerId);
      await this.bridge.connect(sb, n, cfg);
      await this.applyFirewall();
      this.ctx.events.publish('network', 'connect', n.Id, { container: sb.containerId, name: n.Name, type: n.Driver });
    });
  }

  async disconnect(containerRef: string, networkRef: string, force = false): Promise<void> {
    await this.exclusive(async () => {
      const n = this.state.findNetwork(networkRef);
      let c: { id: string; name: string; sandbox: SandboxRecord | undefined };
      try {
        c = this.resolveContainer(containerRef);
      } catch (e) {
        // force: drop a stale endpoint of a container that no longer exists
        const stale = force ? this.state.endpointsOf(n.Id).find((ep) => ep.containerId.startsWith(containerRef)) : undefined;
        if (!stale) throw e;
        this.state.dropEndpoint(stale);
        return;
      }
      const sb = c.sandbox;
      if (!sb) {
        if (this.directory?.detachStopped?.(c.id, n.Name)) return;
        throw new ForbiddenError(`container ${c.id} is not connected to network ${n.Name}`);
      }
      await this.creating.get(sb.containerId);
      await this.bridge.disconnect(sb, n);
      await this.applyFirewall();
      this.ctx.events.publish('network', 'disconnect', n.Id, { container: sb.containerId, name: n.Name, type: n.Driver });
    });
  }

  // ───────────────────────────── container views ─────────────────────────────

  setContainerName(containerId: string, name: string): void {
    const sb = this.state.sandboxes.get(containerId);
    if (!sb) return;
    sb.name = name.replace(/^\//, '');
    this.state.putSandbox(sb);
  }

  settings(containerId: string): NetworkSettings | undefined {
    const sb = this.state.sandboxes.get(containerId);
    return sb ? sandboxSettings(this.state, sb) : undefined;
  }

  stoppedSettings(endpoints: Record<string, EndpointRequest>, mode: string): NetworkSettings {
    return stoppedSettings(this.state, endpoints, mode);
  }

  portList(containerId: string): PortListEntry[] {
    const sb = this.state.sandboxes.get(containerId);
    return sb ? portList(sb.published, sb.exposed) : [];
  }
}
