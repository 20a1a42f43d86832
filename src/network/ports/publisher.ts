import { BerthError, errorMessage } from '../../errors.js';
import type { FirewallPort } from '../firewall.js';
import type { NetworkContext, SandboxRecord } from '../types.js';
import { startProxy, type PortProxy } from './port-proxy.js';
import { collides, EPHEMERAL_FIRST, EPHEMERAL_LAST, portAllocatedMessage, type PublishedPort, type WantedPort } from './port-spec.js';

/**
 * Published ports: host ports chosen for a sandbox's wanted bindings, one userland proxy per port (so
 * `-p` works on loopback and without a firewall), and the DNAT/accept rules the firewall renders from
 * `firewallPorts()`. Ports are published on the sandbox's gateway endpoint only (none when all its
 * networks are internal).
 */
export class PortPublisher {
  private readonly proxies = new Map<string, PortProxy[]>();
  /**
   * The last ephemeral host port handed out, per protocol: the next search starts after it and wraps around, as
   * dockerd's port allocator does, so a port just given back is not handed to the next container at once (a
   * client still using the old port would reach the new container; several daemons on one host, each taking
   * the lowest free port, kept passing one port around).
   */
  private readonly lastEphemeral = new Map<string, number>();

  constructor(private readonly ctx: NetworkContext) {}

  /** Allocates host ports for sb.wanted, starts proxies, records sb.published. */
  async publish(sb: SandboxRecord): Promise<void> {
    const { state } = this.ctx;
    const target = state.gatewayEndpoint(sb);
    if (!target || sb.wanted.length === 0) return;
    const held: PublishedPort[] = [];
    for (const s of state.sandboxes.values()) if (s.containerId !== sb.containerId) held.push(...s.published);
    // com.docker.network.bridge.host_binding_ipv4: the host address of bindings that name none.
    const bindIp = state.networks.get(target.networkId)?.hostBinding;
    const proxies: PortProxy[] = [];
    try {
      for (const wanted of sb.wanted) {
        const w = bindIp && wanted.hostIp === '' ? { ...wanted, hostIp: bindIp } : wanted;
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
    const span = last - first + 1;
    const start = ephemeral ? ((this.lastEphemeral.get(w.proto) ?? last) + 1 - first) % span : 0;
    let lastError: Error | undefined;
    for (let i = 0; i < span; i++) {
      const port = first + ((start + i) % span);
      const cand: PublishedPort = { proto: w.proto, containerPort: w.containerPort, hostIp: w.hostIp, hostPort: port };
      if (held.some((h) => collides(h, cand))) {
        lastError = new BerthError(portAllocatedMessage(w.hostIp, port));
        continue;
      }
      try {
        proxies.push(await startProxy(this.ctx.log, { proto: w.proto, hostIp: w.hostIp, hostPort: port, containerIp, containerPort: w.containerPort }));
        if (ephemeral) this.lastEphemeral.set(w.proto, port);
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

  /** Re-opens the proxies of a sandbox that survived a daemon restart (its ports stay as recorded). */
  async reopen(sb: SandboxRecord): Promise<void> {
    for (const p of sb.published) {
      const target = this.ctx.state.gatewayEndpoint(sb);
      if (!target) continue;
      try {
        const proxy = await startProxy(this.ctx.log, { proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: target.ip, containerPort: p.containerPort });
        this.proxies.set(sb.containerId, [...(this.proxies.get(sb.containerId) ?? []), proxy]);
      } catch (e) {
        this.ctx.log.warn({ container: sb.containerId, port: p, err: errorMessage(e) }, 'could not re-open a published port');
      }
    }
  }

  /** Points the sandbox's proxies at a new address (its gateway endpoint changed). */
  retarget(containerId: string, ip: string): void {
    for (const p of this.proxies.get(containerId) ?? []) p.retarget(ip);
  }

  /** Closes the sandbox's proxies; its records keep what was published unless the caller clears them. */
  async close(containerId: string): Promise<void> {
    const proxies = this.proxies.get(containerId) ?? [];
    this.proxies.delete(containerId);
    await Promise.all(proxies.map((p) => p.close()));
  }

  async closeAll(): Promise<void> {
    for (const list of this.proxies.values()) await Promise.all(list.map((p) => p.close()));
    this.proxies.clear();
  }

  /** The published ports as the firewall renders them (DNAT to the gateway endpoint's address). */
  firewallPorts(): FirewallPort[] {
    const { state } = this.ctx;
    const ports: FirewallPort[] = [];
    for (const sb of state.sandboxes.values()) {
      const ep = state.gatewayEndpoint(sb);
      if (!ep) continue;
      const n = state.networks.get(ep.networkId);
      if (!n?.bridge) continue;
      for (const p of sb.published) {
        ports.push({ bridge: n.bridge, proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: ep.ip, containerPort: p.containerPort });
      }
    }
    return ports;
  }
}
