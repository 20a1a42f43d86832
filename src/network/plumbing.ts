import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../util/logger.js';
import { runTool } from '../util/run-tool.js';
import { BerthError, errorMessage } from '../errors.js';
import { MNT_DETACH, nativeAddon } from '../native.js';
import { chain, shQuote as q, ToolShell } from './tool-shell.js';

/** The bridge device exists and belongs to someone else. */
export class BridgeTakenError extends BerthError {
  constructor(readonly device: string) {
    super(`bridge device ${device} exists and belongs to another owner`);
  }
}

/**
 * Linux plumbing for the bridge driver: bridges and veth pairs through iproute2, and network namespaces kept
 * as bind-mounted files under the exec root. A sandbox's namespace with its endpoints is made over rtnetlink by
 * the native addon (createNetns: a thread of berthd enters the new namespace and ends there; veths created from
 * inside with the host side born in the daemon's namespace, addresses, routes, then alias, bridge and up on the
 * host side) and removed by umount2 + unlink: no child process on a container's start or removal (each one cost
 * a few ms of CPU, more on a loaded host). Rarer steps (live connect, disconnect) run `ip`, inside a namespace as
 * `nsenter --net=<file> ip ...`, through a long-lived shell (ToolShell): Node forking the daemon for every child
 * costs more than the tools themselves. No device is ever moved between namespaces: `ip link set ... netns`
 * waits for an RCU grace period (10-25 ms each here), creating the peer in its namespace does not.
 */

export interface LinkInfo {
  ifname: string;
  ifalias?: string;
  link_type?: string;
  linkinfo?: { info_kind?: string };
  master?: string;
  operstate?: string;
  address?: string;
  mtu?: number;
}

export interface EndpointPlumbing {
  netnsPath: string;
  bridge: string;
  hostIfName: string;
  /** Name inside the namespace: eth0, eth1, ... */
  ifName: string;
  address: string;
  prefixLen: number;
  mac: string;
  mtu: number;
  /** Installs the default route via this gateway when set. */
  defaultGateway: string | undefined;
  /** More addresses on the interface, as CIDRs: the IPv6 one, link-local ones. */
  extraAddrs?: string[];
  /** Installs the IPv6 default route via this gateway when set. */
  defaultGateway6?: string | undefined;
  /** ifalias put on the host side, marking it as this daemon's */
  owner: string;
  /** Bridge port isolation (enable_icc=false): isolated ports reach the bridge and the host, not each other. */
  isolated: boolean;
}

/** The host-side `ip` commands that make the veth's bridge port isolated, when it must be. */
function isolation(ep: EndpointPlumbing): string[] {
  return ep.isolated ? [`link set dev ${ep.hostIfName} type bridge_slave isolated on`] : [];
}

/** The native createNetns description of the endpoints (netns.h): one directive per line. */
export function netnsSpec(endpoints: readonly EndpointPlumbing[]): string {
  const word = (v: string | number): string => {
    const s = String(v);
    if (s === '' || /\s/.test(s)) throw new BerthError(`invalid network plumbing value ${JSON.stringify(s)}`);
    return s;
  };
  const lines: string[] = [];
  for (const ep of endpoints) {
    lines.push(['ep', ep.ifName, ep.hostIfName, ep.mac, ep.mtu, ep.bridge, ep.owner, ep.isolated ? 1 : 0].map(word).join(' '));
    for (const a of [`${ep.address}/${ep.prefixLen}`, ...(ep.extraAddrs ?? [])]) lines.push(`addr ${word(a)}`);
    if (ep.defaultGateway) lines.push(`gw ${word(ep.defaultGateway)}`);
    if (ep.defaultGateway6) lines.push(`gw6 ${word(ep.defaultGateway6)}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** Address, link up and (for the primary endpoint) the default route, run inside the namespace. */
function insideConfig(ep: EndpointPlumbing): string[] {
  const cmds = [`addr add ${ep.address}/${ep.prefixLen} dev ${ep.ifName}`];
  // IPv6 addresses skip duplicate address detection: usable at once, as dockerd sets them.
  for (const a of ep.extraAddrs ?? []) cmds.push(`addr add ${a} dev ${ep.ifName}${a.includes(':') ? ' nodad' : ''}`);
  cmds.push(`link set dev ${ep.ifName} up`);
  if (ep.defaultGateway) cmds.push(`route replace default via ${ep.defaultGateway} dev ${ep.ifName}`);
  if (ep.defaultGateway6) cmds.push(`route replace default via ${ep.defaultGateway6} dev ${ep.ifName}`);
  return cmds;
}

export class Plumbing {
  constructor(
    private readonly log: Logger,
    private readonly sh: ToolShell = new ToolShell(log),
  ) {}

  /** Ends the helper shells (a later call starts them again). */
  close(): void {
    this.sh.close();
  }

  private ip(args: string[], allowFailure = false): Promise<{ stdout: string; code: number; stderr: string }> {
    return runTool(this.log, 'ip', args, { allowFailure });
  }

  private async inNetns(netnsPath: string, batch: string[]): Promise<void> {
    await runTool(this.log, 'nsenter', [`--net=${netnsPath}`, 'ip', '-batch', '-'], { input: `${batch.join('\n')}\n` });
  }

  /** Runs an arbitrary command inside the namespace (sysctl writes, tests). */
  runInNetns(netnsPath: string, cmd: string, args: string[], allowFailure = false): Promise<{ stdout: string; code: number; stderr: string }> {
    return runTool(this.log, 'nsenter', [`--net=${netnsPath}`, cmd, ...args], { allowFailure });
  }

  async links(): Promise<LinkInfo[]> {
    const { stdout } = await this.ip(['-d', '-j', 'link', 'show']);
    try {
      const parsed: unknown = JSON.parse(stdout);
      return Array.isArray(parsed) ? (parsed as LinkInfo[]) : [];
    } catch {
      return [];
    }
  }

  async linkExists(name: string): Promise<boolean> {
    const r = await this.ip(['link', 'show', 'dev', name], true);
    return r.code === 0;
  }

  async routesJson(): Promise<string> {
    return (await this.ip(['-j', 'route', 'show'])).stdout;
  }

  /**
   * Creates a bridge with the gateway address, MTU and an ifalias naming its owner, and sets it up.
   * An existing device is reused when it is already ours or when `adoptForeign` (a bridge name the user
   * chose); otherwise BridgeTakenError (another daemon got there first).
   */
  async ensureBridge(name: string, gatewayCidr: string, mtu: number, owner: string, adoptForeign: boolean): Promise<void> {
    const existing = (await this.links()).find((l) => l.ifname === name);
    if (existing && existing.ifalias !== owner && !adoptForeign) throw new BridgeTakenError(name);
    if (!existing) {
      const r = await this.ip(['link', 'add', 'name', name, 'mtu', String(mtu), 'type', 'bridge'], true);
      if (r.code !== 0) {
        if (/File exists/.test(r.stderr) && !adoptForeign) throw new BridgeTakenError(name);
        throw new BerthError(`ip link add name ${name} type bridge: ${r.stderr.trim()}`);
      }
    }
    await this.ip(['link', 'set', 'dev', name, 'alias', owner]);
    const addrs = await this.ip(['-j', 'addr', 'show', 'dev', name]);
    if (!addrs.stdout.includes(`"${gatewayCidr.split('/')[0]}"`)) {
      await this.ip(['addr', 'add', gatewayCidr, 'dev', name]);
    }
    await this.ip(['link', 'set', 'dev', name, 'up']);
  }

  /** Adds an IPv6 address to a device unless it has it (no duplicate address detection: usable at once). */
  async ensureAddr6(dev: string, cidr: string): Promise<void> {
    const addrs = await this.ip(['-j', '-6', 'addr', 'show', 'dev', dev]);
    if (!addrs.stdout.includes(`"${cidr.split('/')[0]}"`)) await this.ip(['-6', 'addr', 'add', cidr, 'dev', dev, 'nodad']);
  }

  async deleteAddr(dev: string, cidr: string): Promise<void> {
    await this.ip(['addr', 'del', cidr, 'dev', dev], true);
  }

  /**
   * Waits up to `ms` for a link to go on its own (the veth of a namespace that was just unmounted: the kernel
   * deletes a dying namespace's devices, many namespaces in one batch, where each `ip link del` waits for an RCU
   * grace period of its own), then deletes it if it is still there (a namespace someone else still holds).
   */
  async awaitLinkGone(name: string, ms: number): Promise<void> {
    const sysfs = `/sys/class/net/${name}`;
    const deadline = Date.now() + ms;
    for (let step = 1; existsSync(sysfs); step = Math.min(step * 2, 20)) {
      if (Date.now() >= deadline) return this.deleteLink(name);
      await new Promise((r) => setTimeout(r, step));
    }
  }

  /** Deletes a link; a missing one is fine (`quiet`: any failure is, as in a rollback). */
  async deleteLink(name: string, quiet = false): Promise<void> {
    const r = await this.sh.exec(`ip link del dev ${q(name)}`);
    if (r.code !== 0 && !quiet && !/Cannot find device|does not exist/.test(r.output)) {
      this.log.warn({ link: name, stderr: r.output.trim() }, 'could not delete link');
    }
  }

  /**
   * A new network namespace held by a bind mount at `path`, lo up, with `endpoints` plugged in (none: an empty
   * namespace). Made over rtnetlink by the native addon from a thread of its own (no child process); on failure
   * nothing is left behind.
   */
  async createNetns(path: string, endpoints: readonly EndpointPlumbing[] = []): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o711 });
    if (existsSync(path)) await this.deleteNetns(path);
    closeSync(openSync(path, 'w', 0o444));
    try {
      await nativeAddon().createNetns(path, netnsSpec(endpoints));
    } catch (e) {
      await Promise.all(endpoints.map((ep) => this.deleteLink(ep.hostIfName, true)));
      await this.deleteNetns(path);
      throw new BerthError(errorMessage(e), { cause: e });
    }
  }

  async deleteNetns(path: string): Promise<void> {
    // Lazy unmount (umount2 MNT_DETACH): a still-running process may hold the namespace; it lives on until that
    // process ends. The unlink answers EBUSY while a mount is still on the file (one stacked on it, or a first
    // detach not yet visible): detach again and retry, as containerd does, a bounded number of times.
    for (let attempt = 1; existsSync(path); attempt++) {
      let umount = 'unmounted';
      try {
        await nativeAddon().umount2Async(path, MNT_DETACH);
      } catch (e) {
        umount = errorMessage(e); // EINVAL: not (or no longer) a mount point
      }
      try {
        rmSync(path, { force: true });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || attempt >= 5) {
          throw new BerthError(`removing network namespace ${path}: ${(e as Error).message} (umount: ${umount})`, { cause: e });
        }
      }
    }
  }

  /**
   * Plugs a veth pair into an existing namespace (live connect): the host side is created enslaved, up
   * and tagged, its peer born inside the namespace; then the peer is configured from inside.
   */
  async addEndpoint(ep: EndpointPlumbing): Promise<void> {
    const host = [
      `link add name ${ep.hostIfName} mtu ${ep.mtu} master ${ep.bridge} up type veth peer name ${ep.ifName} address ${ep.mac} mtu ${ep.mtu} netns ${ep.netnsPath}`,
      `link set dev ${ep.hostIfName} alias ${ep.owner}`,
      ...isolation(ep),
    ];
    try {
      await this.sh.run(chain([
        { command: 'ip -batch -', input: host },
        { command: `nsenter --net=${q(ep.netnsPath)} ip -batch -`, input: insideConfig(ep) },
      ]));
    } catch (e) {
      await this.deleteLink(ep.hostIfName, true);
      throw e;
    }
  }

  async setDefaultRoute(netnsPath: string, gateway: string, ifName: string): Promise<void> {
    await this.inNetns(netnsPath, [`route replace default via ${gateway} dev ${ifName}`]);
  }

  /** Removes an interface from inside a namespace (its host-side veth peer disappears with it). */
  async deleteInNetns(netnsPath: string, ifName: string): Promise<void> {
    await runTool(this.log, 'nsenter', [`--net=${netnsPath}`, 'ip', 'link', 'del', 'dev', ifName], { allowFailure: true });
  }

  async sysctl(key: string, value: string): Promise<void> {
    await writeFile(`/proc/sys/${key.replaceAll('.', '/')}`, value);
  }
}
