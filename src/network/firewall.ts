import type { Logger } from '../util/logger.js';
import { runTool } from '../util/run-tool.js';
import { errorMessage } from '../errors.js';

/**
 * IPv4 NAT, isolation and accept rules in Berth's own iptables chains (one set per daemon instance,
 * suffixed with a short tag so several daemons on one host never touch each other's rules).
 * The chains are rebuilt as a whole with one `iptables-restore --noflush` per change; the jumps from the
 * built-in chains are added at start and removed at stop. Debian 12's iptables is the nf_tables backend,
 * so this also works on nftables-only hosts that have the iptables-nft tool.
 */

export interface FirewallBridge {
  name: string;
  subnet: string;
  internal: boolean;
  /** MASQUERADE outgoing traffic (com.docker.network.bridge.enable_ip_masquerade) */
  masquerade: boolean;
}

export interface FirewallPort {
  bridge: string;
  proto: 'tcp' | 'udp';
  /** '' or '0.0.0.0' for any local address. */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export interface FirewallState {
  bridges: FirewallBridge[];
  ports: FirewallPort[];
}

export interface ChainNames {
  forward: string;
  isolation: string;
  postrouting: string;
  dnat: string;
}

export function chainNames(tag: string): ChainNames {
  return {
    forward: `BERTH-FORWARD-${tag}`,
    isolation: `BERTH-ISOLATION-${tag}`,
    postrouting: `BERTH-POSTROUTING-${tag}`,
    dnat: `BERTH-DNAT-${tag}`,
  };
}

const ANY_IP = new Set(['', '0.0.0.0']);

/** The iptables-restore input that (re)fills Berth's chains for `state`. Pure, unit-tested. */
export function renderRules(c: ChainNames, state: FirewallState): string {
  const f: string[] = ['*filter', `:${c.forward} - [0:0]`, `:${c.isolation} - [0:0]`];
  f.push(`-A ${c.forward} -j ${c.isolation}`);
  // Published ports are public: DNAT'd connections (both directions) may cross bridges.
  f.push(`-A ${c.isolation} -m conntrack --ctstate DNAT -j RETURN`);
  for (const b of state.bridges) {
    if (b.internal) {
      f.push(`-A ${c.isolation} -i ${b.name} ! -o ${b.name} -j DROP`);
      f.push(`-A ${c.isolation} -o ${b.name} ! -i ${b.name} -j DROP`);
    }
    for (const other of state.bridges) {
      if (other.name !== b.name) f.push(`-A ${c.isolation} -i ${b.name} -o ${other.name} -j DROP`);
    }
  }
  f.push(`-A ${c.isolation} -j RETURN`);
  for (const b of state.bridges) {
    f.push(`-A ${c.forward} -o ${b.name} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    f.push(`-A ${c.forward} -i ${b.name} -o ${b.name} -j ACCEPT`);
  }
  for (const p of state.ports) {
    f.push(`-A ${c.forward} -d ${p.containerIp}/32 ! -i ${p.bridge} -o ${p.bridge} -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -j ACCEPT`);
  }
  for (const b of state.bridges) {
    if (!b.internal) f.push(`-A ${c.forward} -i ${b.name} ! -o ${b.name} -j ACCEPT`);
  }
  f.push('COMMIT');

  const n: string[] = ['*nat', `:${c.postrouting} - [0:0]`, `:${c.dnat} - [0:0]`];
  for (const b of state.bridges) {
    if (!b.internal && b.masquerade) n.push(`-A ${c.postrouting} -s ${b.subnet} ! -o ${b.name} -j MASQUERADE`);
  }
  for (const p of state.ports) {
    n.push(`-A ${c.postrouting} -s ${p.containerIp}/32 -d ${p.containerIp}/32 -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -j MASQUERADE`);
    // Loopback destinations are left to the userland proxy (DNAT to them would need route_localnet).
    if (p.hostIp.startsWith('127.')) continue;
    const dst = ANY_IP.has(p.hostIp) ? '' : ` -d ${p.hostIp}/32`;
    n.push(`-A ${c.dnat}${dst} ! -i ${p.bridge} -p ${p.proto} -m ${p.proto} --dport ${p.hostPort} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`);
  }
  n.push('COMMIT');
  return `${f.join('\n')}\n${n.join('\n')}\n`;
}

/** Jumps from the built-in chains into Berth's: [table, chain, rule args]. */
function jumps(c: ChainNames): [string, string, string[]][] {
  return [
    ['filter', 'FORWARD', ['-j', c.forward]],
    ['nat', 'POSTROUTING', ['-j', c.postrouting]],
    ['nat', 'PREROUTING', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.dnat]],
    ['nat', 'OUTPUT', ['!', '-d', '127.0.0.0/8', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.dnat]],
  ];
}

export type FirewallBackend = 'iptables' | 'none';

export class Firewall {
  readonly chains: ChainNames;
  private backend: FirewallBackend = 'none';
  private lastRules = '';

  constructor(
    private readonly log: Logger,
    tag: string,
    private readonly enabled: boolean,
  ) {
    this.chains = chainNames(tag);
  }

  get active(): FirewallBackend {
    return this.backend;
  }

  /** Detects iptables, creates the chains (flushing leftovers of a crash) and the jumps into them. */
  async start(): Promise<string[]> {
    if (!this.enabled) return [];
    const probe = await runTool(this.log, 'iptables', ['-w', '-t', 'nat', '-S', 'POSTROUTING'], { allowFailure: true }).catch(
      (e: unknown) => ({ code: -1, stderr: errorMessage(e), stdout: '' }),
    );
    if (probe.code !== 0) {
      this.log.warn({ reason: probe.stderr.trim() }, 'iptables unavailable: no NAT, isolation or DNAT rules; published ports use the userland proxy only');
      return ['No iptables (nftables backend) found: containers have no outgoing NAT and no network isolation; published ports are served by the userland proxy only'];
    }
    this.backend = 'iptables';
    await this.apply({ bridges: [], ports: [] }, true);
    for (const [table, chain, rule] of jumps(this.chains)) {
      const check = await runTool(this.log, 'iptables', ['-w', '-t', table, '-C', chain, ...rule], { allowFailure: true });
      if (check.code !== 0) await runTool(this.log, 'iptables', ['-w', '-t', table, '-I', chain, '1', ...rule]);
    }
    return [];
  }

  /** Replaces the contents of Berth's chains with the rules for `state` (skipped when unchanged). */
  async apply(state: FirewallState, force = false): Promise<void> {
    if (this.backend === 'none') return;
    const rules = renderRules(this.chains, state);
    if (!force && rules === this.lastRules) return;
    await runTool(this.log, 'iptables-restore', ['-w', '--noflush'], { input: rules });
    this.lastRules = rules;
  }

  /** Removes the jumps and the chains. */
  async stop(): Promise<void> {
    if (this.backend === 'none') return;
    for (const [table, chain, rule] of jumps(this.chains)) {
      for (let i = 0; i < 8; i++) {
        const r = await runTool(this.log, 'iptables', ['-w', '-t', table, '-D', chain, ...rule], { allowFailure: true });
        if (r.code !== 0) break;
      }
    }
    const c = this.chains;
    for (const [table, chain] of [['filter', c.forward], ['filter', c.isolation], ['nat', c.postrouting], ['nat', c.dnat]] as const) {
      await runTool(this.log, 'iptables', ['-w', '-t', table, '-F', chain], { allowFailure: true });
    }
    for (const [table, chain] of [['filter', c.forward], ['filter', c.isolation], ['nat', c.postrouting], ['nat', c.dnat]] as const) {
      await runTool(this.log, 'iptables', ['-w', '-t', table, '-X', chain], { allowFailure: true });
    }
    this.backend = 'none';
    this.lastRules = '';
  }
}
