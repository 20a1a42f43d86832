import type { Logger } from '../util/logger.js';
import { runTool } from '../util/run-tool.js';
import { errorMessage } from '../errors.js';
import { chain, type ToolShell } from './tool-shell.js';

/**
 * IPv4 NAT, isolation and accept rules in Berth's own iptables chains (one set per daemon instance,
 * suffixed with a short tag so several daemons on one host never touch each other's rules).
 * The chains are rebuilt as a whole with one `iptables-restore --noflush` per change; the jumps from the
 * built-in chains are added at start and removed at stop. Debian 12's iptables is the nf_tables backend.
 * Without iptables, the same rules go into an nftables table of Berth's own (`ip berth_<tag>`), replaced
 * atomically by one `nft -f` per change and deleted at stop. Changes are applied one at a time in the
 * order they were asked for (the last one asked wins), through the plumbing's shell helpers when given.
 */

export interface FirewallBridge {
  name: string;
  subnet: string;
  internal: boolean;
  /** MASQUERADE outgoing traffic (com.docker.network.bridge.enable_ip_masquerade) */
  masquerade: boolean;
  /** The network has IPv6 (EnableIPv6): its bridge also gets the IPv6 forwarding rules. */
  ipv6?: boolean;
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
  /** Accepts for published ports (appended to without touching the drops after them in `forward`). */
  ports: string;
  postrouting: string;
  dnat: string;
}

export function chainNames(tag: string): ChainNames {
  return {
    forward: `BERTH-FORWARD-${tag}`,
    isolation: `BERTH-ISOLATION-${tag}`,
    ports: `BERTH-PORTS-${tag}`,
    postrouting: `BERTH-POSTROUTING-${tag}`,
    dnat: `BERTH-DNAT-${tag}`,
  };
}

const ANY_IP = new Set(['', '0.0.0.0']);

/** The lines one published port adds to the filter and nat tables (iptables-restore syntax). */
export function portRules(c: ChainNames, p: FirewallPort): { filter: string[]; nat: string[] } {
  // Only connections Berth DNATed: a neighbour routing to the container address directly is not let in.
  const filter = [`-A ${c.ports} -d ${p.containerIp}/32 ! -i ${p.bridge} -o ${p.bridge} -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -m conntrack --ctstate DNAT -j ACCEPT`];
  const nat = [`-A ${c.postrouting} -s ${p.containerIp}/32 -d ${p.containerIp}/32 -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -j MASQUERADE`];
  // Loopback destinations are left to the userland proxy (DNAT to them would need route_localnet).
  if (!p.hostIp.startsWith('127.')) {
    const dst = ANY_IP.has(p.hostIp) ? '' : ` -d ${p.hostIp}/32`;
    nat.push(`-A ${c.dnat}${dst} ! -i ${p.bridge} -p ${p.proto} -m ${p.proto} --dport ${p.hostPort} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`);
  }
  return { filter, nat };
}

/**
 * The iptables-restore input that only appends the rules of `ports` to Berth's chains (flushing nothing).
 * Every port rule is an ACCEPT, MASQUERADE or DNAT on its own match, so its place in the chain does not
 * change what it does. Pure, unit-tested.
 */
export function renderPortAppend(c: ChainNames, ports: readonly FirewallPort[]): string {
  const rules = ports.map((p) => portRules(c, p));
  return `*filter\n${rules.flatMap((r) => r.filter).join('\n')}\nCOMMIT\n*nat\n${rules.flatMap((r) => r.nat).join('\n')}\nCOMMIT\n`;
}

/**
 * The iptables-restore input that (re)fills Berth's chains for `state`. Pure, unit-tested.
 *
 * FORWARD → BERTH-FORWARD: isolation first (internal bridges talk to nothing else, not even through a
 * DNAT, then bridges are cut from each other except for DNATed connections to published ports), then
 * return traffic, intra-bridge traffic, published ports (BERTH-PORTS, DNATed connections only) and egress
 * of non-internal bridges are accepted; anything else entering a bridge is dropped, so a host that
 * forwards is no router into the containers (dockerd's DOCKER chain: only published ports get in).
 */
export function renderRules(c: ChainNames, state: FirewallState): string {
  const f: string[] = ['*filter', `:${c.forward} - [0:0]`, `:${c.isolation} - [0:0]`, `:${c.ports} - [0:0]`];
  f.push(`-A ${c.forward} -j ${c.isolation}`);
  for (const b of state.bridges) {
    if (b.internal) {
      f.push(`-A ${c.isolation} -i ${b.name} ! -o ${b.name} -j DROP`);
      f.push(`-A ${c.isolation} -o ${b.name} ! -i ${b.name} -j DROP`);
    }
  }
  // Published ports are public: DNAT'd connections (both directions) may cross bridges.
  f.push(`-A ${c.isolation} -m conntrack --ctstate DNAT -j RETURN`);
  for (const b of state.bridges) {
    for (const other of state.bridges) {
      if (other.name !== b.name) f.push(`-A ${c.isolation} -i ${b.name} -o ${other.name} -j DROP`);
    }
  }
  f.push(`-A ${c.isolation} -j RETURN`);
  for (const b of state.bridges) {
    f.push(`-A ${c.forward} -o ${b.name} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    f.push(`-A ${c.forward} -i ${b.name} -o ${b.name} -j ACCEPT`);
  }
  f.push(`-A ${c.forward} -j ${c.ports}`);
  for (const b of state.bridges) {
    if (!b.internal) f.push(`-A ${c.forward} -i ${b.name} ! -o ${b.name} -j ACCEPT`);
  }
  for (const b of state.bridges) f.push(`-A ${c.forward} ! -i ${b.name} -o ${b.name} -j DROP`);
  for (const p of state.ports) f.push(...portRules(c, p).filter);
  f.push('COMMIT');

  const n: string[] = ['*nat', `:${c.postrouting} - [0:0]`, `:${c.dnat} - [0:0]`];
  for (const b of state.bridges) {
    if (!b.internal && b.masquerade) n.push(`-A ${c.postrouting} -s ${b.subnet} ! -o ${b.name} -j MASQUERADE`);
  }
  const masq: string[] = [];
  const dnat: string[] = [];
  for (const p of state.ports) {
    for (const l of portRules(c, p).nat) (l.startsWith(`-A ${c.dnat}`) ? dnat : masq).push(l);
  }
  n.push(...masq, ...dnat, 'COMMIT');
  return `${f.join('\n')}\n${n.join('\n')}\n`;
}

/**
 * The ip6tables-restore input for bridges of networks with IPv6 (no NAT for IPv6: only forwarding). Same policy as
 * IPv4: internal bridges and bridges among themselves are cut off, return traffic passes, traffic inside a bridge
 * and egress of non-internal bridges are accepted, nothing else enters a bridge (a host that forwards IPv6 is no
 * router into the containers). Pure, unit-tested.
 */
export function renderRules6(c: ChainNames, bridges: readonly FirewallBridge[]): string {
  const v6 = bridges.filter((b) => b.ipv6 === true);
  const f: string[] = ['*filter', `:${c.forward} - [0:0]`];
  for (const b of v6) {
    if (b.internal) {
      f.push(`-A ${c.forward} -i ${b.name} ! -o ${b.name} -j DROP`);
      f.push(`-A ${c.forward} -o ${b.name} ! -i ${b.name} -j DROP`);
    }
    for (const other of v6) if (other.name !== b.name) f.push(`-A ${c.forward} -i ${b.name} -o ${other.name} -j DROP`);
  }
  for (const b of v6) {
    f.push(`-A ${c.forward} -o ${b.name} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    f.push(`-A ${c.forward} -i ${b.name} -o ${b.name} -j ACCEPT`);
  }
  for (const b of v6) if (!b.internal) f.push(`-A ${c.forward} -i ${b.name} ! -o ${b.name} -j ACCEPT`);
  for (const b of v6) f.push(`-A ${c.forward} ! -i ${b.name} -o ${b.name} -j DROP`);
  f.push('COMMIT');
  return `${f.join('\n')}\n`;
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

/** nftables table name of a daemon (used when iptables is absent). */
export function nftTable(tag: string): string {
  return `berth_${tag}`;
}

/** One published port's rules in the nft table: [postrouting rules, ports (DNAT) rules]. */
function nftPortRules(p: FirewallPort): { post: string[]; dnat: string[] } {
  const post = [`ip saddr ${p.containerIp} ip daddr ${p.containerIp} ${p.proto} dport ${p.containerPort} masquerade`];
  const dnat: string[] = [];
  if (!p.hostIp.startsWith('127.')) {
    const dst = ANY_IP.has(p.hostIp) ? '' : `ip daddr ${p.hostIp} `;
    dnat.push(`${dst}iifname != "${p.bridge}" ${p.proto} dport ${p.hostPort} counter dnat to ${p.containerIp}:${p.containerPort}`);
  }
  return { post, dnat };
}

/** The `nft -f` script that only adds the rules of `ports` to Berth's table. Pure, unit-tested. */
export function renderNftPortAdd(table: string, ports: readonly FirewallPort[]): string {
  const out: string[] = [];
  for (const p of ports) {
    const r = nftPortRules(p);
    for (const l of r.post) out.push(`add rule ip ${table} postrouting ${l}`);
    for (const l of r.dnat) out.push(`add rule ip ${table} ports ${l}`);
  }
  return `${out.join('\n')}\n`;
}

/**
 * The `nft -f` script that replaces Berth's own table with the rules for `state` (nft-only hosts).
 * Only drops and NAT live here: with no iptables on the host there is no other table whose drop
 * policy would need Berth's accept rules.
 */
export function renderNft(table: string, state: FirewallState): string {
  const q = (n: string): string => `"${n}"`;
  // Same order as the iptables chains: internal bridges first, then DNATed connections (published ports),
  // then bridge isolation; return traffic passes; nothing else enters a bridge from outside it.
  const fwd: string[] = [];
  for (const b of state.bridges) {
    if (b.internal) {
      fwd.push(`iifname ${q(b.name)} oifname != ${q(b.name)} drop`);
      fwd.push(`oifname ${q(b.name)} iifname != ${q(b.name)} drop`);
    }
  }
  fwd.push('ct status dnat accept');
  for (const b of state.bridges) {
    for (const other of state.bridges) {
      if (other.name !== b.name) fwd.push(`iifname ${q(b.name)} oifname ${q(other.name)} drop`);
    }
  }
  for (const b of state.bridges) {
    fwd.push(`oifname ${q(b.name)} ct state established,related accept`);
    fwd.push(`oifname ${q(b.name)} iifname != ${q(b.name)} drop`);
  }
  const post: string[] = [];
  for (const b of state.bridges) {
    if (!b.internal && b.masquerade) post.push(`ip saddr ${b.subnet} oifname != ${q(b.name)} masquerade`);
  }
  const dnat: string[] = [];
  for (const p of state.ports) {
    const r = nftPortRules(p);
    post.push(...r.post);
    dnat.push(...r.dnat);
  }
  const chain = (name: string, head: string | undefined, rules: string[]): string =>
    `  chain ${name} {\n${head ? `    ${head}\n` : ''}${rules.map((r) => `    ${r}\n`).join('')}  }\n`;
  return (
    `table ip ${table} {}\ndelete table ip ${table}\ntable ip ${table} {\n` +
    chain('forward', 'type filter hook forward priority filter - 1; policy accept;', fwd) +
    chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', post) +
    chain('ports', undefined, dnat) +
    chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', ['fib daddr type local jump ports']) +
    chain('output', 'type nat hook output priority -100; policy accept;', ['ip daddr != 127.0.0.0/8 fib daddr type local jump ports']) +
    '}\n'
  );
}

export type FirewallBackend = 'iptables' | 'nft' | 'none';

export class Firewall {
  readonly chains: ChainNames;
  readonly nftTable: string;
  private backend: FirewallBackend = 'none';
  /** What the chains hold now: the rules without ports, and the ports (by their rules) on top. */
  private live: { base: string; ports: Set<string> } | undefined;
  /** ip6tables is there (iptables backend only): IPv6 bridges get forwarding rules too; what they hold now. */
  private ip6 = false;
  private live6: string | undefined;
  private applying: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly log: Logger,
    tag: string,
    private readonly enabled: boolean,
    private readonly shell?: ToolShell,
  ) {
    this.chains = chainNames(tag);
    this.nftTable = nftTable(tag);
  }

  get active(): FirewallBackend {
    return this.backend;
  }

  /**
   * Detects iptables (preferred: its FORWARD chain may carry a DROP policy Berth must answer with accept
   * rules), else nft; creates the chains or table (replacing leftovers of a crash) and the jumps into them.
   */
  async start(): Promise<string[]> {
    if (!this.enabled) return [];
    const probe = await runTool(this.log, 'iptables', ['-w', '-t', 'nat', '-S', 'POSTROUTING'], { allowFailure: true }).catch(
      (e: unknown) => ({ code: -1, stderr: errorMessage(e), stdout: '' }),
    );
    if (probe.code !== 0) {
      const nft = await runTool(this.log, 'nft', ['list', 'tables'], { allowFailure: true }).catch(
        (e: unknown) => ({ code: -1, stderr: errorMessage(e), stdout: '' }),
      );
      if (nft.code === 0) {
        this.backend = 'nft';
        await this.apply({ bridges: [], ports: [] }, true);
        this.log.info({ table: this.nftTable }, 'iptables not found; using nftables');
        return [];
      }
      this.log.warn({ iptables: probe.stderr.trim(), nft: nft.stderr.trim() }, 'neither iptables nor nft usable: no NAT, isolation or DNAT rules; published ports use the userland proxy only');
      return ['No iptables or nftables found: containers have no outgoing NAT and no network isolation; published ports are served by the userland proxy only'];
    }
    this.backend = 'iptables';
    const probe6 = await runTool(this.log, 'ip6tables', ['-w', '-S', 'FORWARD'], { allowFailure: true }).catch(() => ({ code: -1 }));
    this.ip6 = probe6.code === 0;
    await this.apply({ bridges: [], ports: [] }, true);
    for (const [table, chain, rule] of jumps(this.chains)) {
      const check = await runTool(this.log, 'iptables', ['-w', '-t', table, '-C', chain, ...rule], { allowFailure: true });
      if (check.code !== 0) await runTool(this.log, 'iptables', ['-w', '-t', table, '-I', chain, '1', ...rule]);
    }
    if (this.ip6) {
      const jump6 = ['FORWARD', '-j', this.chains.forward];
      const check = await runTool(this.log, 'ip6tables', ['-w', '-C', ...jump6], { allowFailure: true });
      if (check.code !== 0) await runTool(this.log, 'ip6tables', ['-w', '-I', 'FORWARD', '1', '-j', this.chains.forward]);
    }
    return [];
  }

  /**
   * Brings Berth's chains to the rules for `state`: nothing when unchanged; only the new ports' rules
   * appended when ports were only added (deleting rules makes the kernel wait for an RCU grace period,
   * 10-30 ms here, adding them does not); else the chains are rebuilt as a whole. Calls are applied in
   * call order, never two at once.
   */
  apply(state: FirewallState, force = false): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.backend === 'none') return;
      if (this.ip6) {
        const rules6 = renderRules6(this.chains, state.bridges);
        if (force || rules6 !== this.live6) {
          this.live6 = undefined;
          await this.restore(rules6, 'ip6tables-restore');
          this.live6 = rules6;
        }
      }
      const nft = this.backend === 'nft';
      const base = nft ? renderNft(this.nftTable, { bridges: state.bridges, ports: [] }) : renderRules(this.chains, { bridges: state.bridges, ports: [] });
      const keyed = new Map(state.ports.map((p) => [JSON.stringify(nft ? nftPortRules(p) : portRules(this.chains, p)), p]));
      const live = this.live;
      if (!force && live && live.base === base && [...live.ports].every((k) => keyed.has(k))) {
        const added = [...keyed].filter(([k]) => !live.ports.has(k));
        if (added.length === 0) return;
        const ports = added.map(([, p]) => p);
        this.live = undefined; // a failure below leaves the chains unknown: rebuild next time
        await this.restore(nft ? renderNftPortAdd(this.nftTable, ports) : renderPortAppend(this.chains, ports));
        for (const [k] of added) live.ports.add(k);
        this.live = live;
        return;
      }
      this.live = undefined;
      await this.restore(nft ? renderNft(this.nftTable, state) : renderRules(this.chains, state));
      this.live = { base, ports: new Set(keyed.keys()) };
    };
    const p = this.applying.then(run, run);
    this.applying = p.catch(() => undefined);
    return p;
  }

  /** Feeds a script to iptables-restore --noflush (ip6tables-restore when asked) or nft -f. */
  private async restore(script: string, tool = 'iptables-restore'): Promise<void> {
    const [cmd, args] = this.backend === 'nft' ? ['nft', ['-f', '-']] : [tool, ['-w', '--noflush']];
    if (this.shell) {
      await this.shell.run(chain([{ command: `${cmd} ${args.join(' ')}`, input: script.replace(/\n$/, '').split('\n') }]));
    } else {
      await runTool(this.log, cmd, args, { input: script });
    }
  }

  /** Removes the jumps and the chains. */
  async stop(): Promise<void> {
    if (this.backend === 'none') return;
    if (this.backend === 'nft') {
      await runTool(this.log, 'nft', ['delete', 'table', 'ip', this.nftTable], { allowFailure: true });
    } else {
      await removeIptablesChains(this.log, this.chains);
      if (this.ip6) await removeIp6tablesChain(this.log, this.chains);
    }
    this.backend = 'none';
    this.live = undefined;
    this.live6 = undefined;
  }
}

/** The tag of a daemon's chains and nft table: the first 8 hex digits of its daemon ID. */
export function firewallTag(daemonId: string): string {
  return daemonId.replaceAll('-', '').slice(0, 8);
}

/** Deletes the jumps into a daemon's chains, then the chains; ones already gone are fine. */
async function removeIptablesChains(log: Logger, c: ChainNames): Promise<void> {
  for (const [table, chain, rule] of jumps(c)) {
    for (let i = 0; i < 8; i++) {
      const r = await runTool(log, 'iptables', ['-w', '-t', table, '-D', chain, ...rule], { allowFailure: true });
      if (r.code !== 0) break;
    }
  }
  const chains = [['filter', c.forward], ['filter', c.isolation], ['filter', c.ports], ['nat', c.postrouting], ['nat', c.dnat]] as const;
  for (const [table, chain] of chains) {
    await runTool(log, 'iptables', ['-w', '-t', table, '-F', chain], { allowFailure: true });
  }
  for (const [table, chain] of chains) {
    await runTool(log, 'iptables', ['-w', '-t', table, '-X', chain], { allowFailure: true });
  }
}

/** Deletes the jumps into a daemon's IPv6 forward chain, then the chain. */
async function removeIp6tablesChain(log: Logger, c: ChainNames): Promise<void> {
  for (let i = 0; i < 8; i++) {
    const r = await runTool(log, 'ip6tables', ['-w', '-D', 'FORWARD', '-j', c.forward], { allowFailure: true });
    if (r.code !== 0) break;
  }
  await runTool(log, 'ip6tables', ['-w', '-F', c.forward], { allowFailure: true });
  await runTool(log, 'ip6tables', ['-w', '-X', c.forward], { allowFailure: true });
}

/**
 * Removes what a daemon that is gone left in the firewall under `tag` (its iptables chains and their jumps, or its
 * nft table), with whichever tools the host has. Only for a daemon proven dead (see DaemonRegistry).
 */
export async function removeFirewallOf(log: Logger, tag: string): Promise<boolean> {
  const c = chainNames(tag);
  let removed = false;
  const listed = await Promise.all(
    ['filter', 'nat'].map((t) => runTool(log, 'iptables', ['-w', '-t', t, '-S'], { allowFailure: true }).catch(() => ({ code: 1, stdout: '' }))),
  );
  const names = new Set(Object.values(c));
  if (listed.some((r) => r.code === 0 && r.stdout.split('\n').some((l) => names.has(l.split(' ')[1] ?? '')))) {
    await removeIptablesChains(log, c);
    removed = true;
  }
  const listed6 = await runTool(log, 'ip6tables', ['-w', '-S'], { allowFailure: true }).catch(() => ({ code: 1, stdout: '' }));
  if (listed6.code === 0 && listed6.stdout.split('\n').some((l) => l === `-N ${c.forward}`)) {
    await removeIp6tablesChain(log, c);
    removed = true;
  }
  const table = nftTable(tag);
  const nft = await runTool(log, 'nft', ['list', 'tables', 'ip'], { allowFailure: true }).catch(() => ({ code: 1, stdout: '' }));
  if (nft.code === 0 && nft.stdout.split('\n').some((l) => l.trim() === `table ip ${table}`)) {
    await runTool(log, 'nft', ['delete', 'table', 'ip', table], { allowFailure: true });
    removed = true;
  }
  return removed;
}
