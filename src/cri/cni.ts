import { closeSync, existsSync, mkdirSync, openSync, rmSync, statfsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, errorMessage } from '../errors.js';
import { MNT_DETACH, MS_BIND, nativeAddon } from '../native.js';
import type { Logger } from '../util/logger.js';
import { runTool } from '../util/run-tool.js';

/** Where Debian's containernetworking-plugins and the usual upstream layout keep the plugins. */
export const DEFAULT_CNI_BIN_DIRS = ['/opt/cni/bin', '/usr/lib/cni'];
export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CONFLIST_NAME = '10-berth.conflist';

/** The conflist Berth writes when the directory holds none: a bridge with host-local IPAM, then portmap. */
export function defaultConflist(): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'berth-pods',
    plugins: [
      {
        type: 'bridge',
        bridge: 'berth-cni0',
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

export interface CniNetworkList {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
  file: string;
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

export interface CniAttachment {
  /** CNI_CONTAINERID: the pod sandbox ID. */
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID). */
  args: Record<string, string>;
  portMappings: PortMapping[];
}

export interface CniResult {
  ips: string[];
  raw: Record<string, unknown>;
}

/** statfs(2) f_type of a namespace file (nsfs): what a bind mount of /proc/<pid>/ns/net reports. */
const NSFS_MAGIC = 0x6e736673;

function isNamespaceMount(path: string): boolean {
  try {
    return statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/** A plugin's error result ({code, msg, details}) or its stderr. */
function pluginError(type: string, command: string, stdout: string, stderr: string): BerthError {
  try {
    const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
    if (e.msg) return new BerthError(`CNI plugin ${type} ${command} failed: ${e.msg}${e.details ? `: ${e.details}` : ''}`);
  } catch {
    // not JSON
  }
  return new BerthError(`CNI plugin ${type} ${command} failed: ${(stderr || stdout).trim()}`);
}

/**
 * Pod networking through CNI, as the kubelet's runtimes do it: the first network list in the conf directory
 * (lexical order; *.conflist, or a single-plugin *.conf), each plugin executed per the CNI spec (config on
 * stdin, CNI_* in the environment, result on stdout, prevResult chained), DEL in reverse order with the
 * cached ADD result. Loopback is brought up by the pod's network namespace itself.
 */
export class CniManager {
  constructor(
    private readonly opts: { confDir: string; binDirs: string[]; cacheDir: string; writeDefault: boolean },
    private readonly log: Logger,
  ) {}

  get confDir(): string {
    return this.opts.confDir;
  }

  /** NetworkReady: a network configuration and its plugins are present (or a default can be written). */
  async status(): Promise<{ ready: boolean; reason: string; message: string }> {
    try {
      const list = await this.load(false);
      if (!list) {
        if (this.opts.writeDefault) return { ready: true, reason: '', message: '' };
        return { ready: false, reason: 'NetworkPluginNotReady', message: `no network config found in ${this.opts.confDir}` };
      }
      for (const p of list.plugins) this.pluginPath(String(p.type));
      return { ready: true, reason: '', message: '' };
    } catch (e) {
      return { ready: false, reason: 'NetworkPluginNotReady', message: errorMessage(e) };
    }
  }

  /** The network list in use; writes Berth's default first when the directory has none and writing is on. */
  async load(writeDefault = this.opts.writeDefault): Promise<CniNetworkList | undefined> {
    let files: string[] = [];
    try {
      files = (await readdir(this.opts.confDir)).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    for (const f of files) {
      const file = join(this.opts.confDir, f);
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        this.log.warn({ file, err: errorMessage(e) }, 'skipping an unreadable CNI config');
        continue;
      }
      if (Array.isArray(json.plugins)) {
        if (json.plugins.length === 0) continue;
        return { cniVersion: String(json.cniVersion ?? '0.4.0'), name: String(json.name ?? ''), plugins: json.plugins as Record<string, unknown>[], file };
      }
      if (typeof json.type === 'string') {
        return { cniVersion: String(json.cniVersion ?? '0.4.0'), name: String(json.name ?? ''), plugins: [json], file };
      }
    }
    if (!writeDefault) return undefined;
    await mkdir(this.opts.confDir, { recursive: true, mode: 0o755 });
    const file = join(this.opts.confDir, DEFAULT_CONFLIST_NAME);
    await writeFile(`${file}.tmp`, `${JSON.stringify(defaultConflist(), null, 2)}\n`, { mode: 0o644 });
    await rename(`${file}.tmp`, file);
    this.log.info({ file }, 'wrote the default CNI network configuration');
    return this.load(false);
  }

  private pluginPath(type: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(type)) throw new BerthError(`invalid CNI plugin type "${type}"`);
    for (const d of this.opts.binDirs) {
      const p = join(d, type);
      if (existsSync(p)) return p;
    }
    throw new BerthError(`failed to find plugin "${type}" in path [${this.opts.binDirs.join(' ')}]`);
  }

  private async exec(command: 'ADD' | 'DEL' | 'CHECK', list: CniNetworkList, plugin: Record<string, unknown>, a: CniAttachment, prevResult: unknown): Promise<Record<string, unknown> | undefined> {
    const type = String(plugin.type);
    const conf: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
    delete conf.capabilities;
    const caps = (plugin.capabilities ?? {}) as Record<string, unknown>;
    const runtimeConfig: Record<string, unknown> = {};
    if (caps.portMappings === true && a.portMappings.length > 0) runtimeConfig.portMappings = a.portMappings;
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    if (prevResult !== undefined) conf.prevResult = prevResult;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: a.containerId,
      CNI_NETNS: a.netns,
      CNI_IFNAME: a.ifName,
      CNI_ARGS: ['IgnoreUnknown=1', ...Object.entries(a.args).map(([k, v]) => `${k}=${v}`)].join(';'),
      CNI_PATH: this.opts.binDirs.join(':'),
    };
    const r = await runTool(this.log, this.pluginPath(type), [], { input: JSON.stringify(conf), env, allowFailure: true });
    if (r.code !== 0) throw pluginError(type, command, r.stdout, r.stderr);
    if (command !== 'ADD' || r.stdout.trim() === '') return undefined;
    try {
      return JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      throw new BerthError(`CNI plugin ${type} ADD returned invalid JSON: ${r.stdout.slice(0, 200)}`);
    }
  }

  private cacheFile(containerId: string): string {
    return join(this.opts.cacheDir, `${containerId}.json`);
  }

  private heldNetnsPath(containerId: string): string {
    return join(this.opts.cacheDir, 'netns', containerId);
  }

  /**
   * Keeps the pod's network namespace alive until its DEL, as containerd does, with a bind mount of our own: the
   * namespace of the holder process goes when the holder ends, and a DEL without it leaves things behind (the
   * bridge plugin finds the pod's addresses on the interface in the namespace, and without them its masquerade
   * chain and POSTROUTING jump stay in the nat table for good). Returns the path plugins are given.
   */
  private holdNetns(containerId: string, netns: string): string {
    const held = this.heldNetnsPath(containerId);
    mkdirSync(join(this.opts.cacheDir, 'netns'), { recursive: true, mode: 0o700 });
    this.releaseNetns(containerId);
    closeSync(openSync(held, 'w', 0o444));
    try {
      nativeAddon().mount(netns, held, '', MS_BIND, '');
    } catch (e) {
      rmSync(held, { force: true });
      throw new BerthError(`holding the pod's network namespace ${netns}: ${errorMessage(e)}`, { cause: e });
    }
    return held;
  }

  private releaseNetns(containerId: string): void {
    const held = this.heldNetnsPath(containerId);
    for (let attempt = 0; attempt < 5 && isNamespaceMount(held); attempt++) {
      try {
        nativeAddon().umount2(held, MNT_DETACH);
      } catch {
        // not mounted (any more)
      }
    }
    try {
      rmSync(held, { force: true });
    } catch (e) {
      this.log.warn({ id: containerId, err: errorMessage(e) }, 'removing the held network namespace file');
    }
  }

  /** ADD through every plugin of the list; the result is cached for DEL. */
  async setUp(attachment: CniAttachment): Promise<CniResult> {
    const list = await this.load();
    if (!list) throw new BerthError(`no network config found in ${this.opts.confDir}`);
    const a = attachment.netns !== '' ? { ...attachment, netns: this.holdNetns(attachment.containerId, attachment.netns) } : attachment;
    let result: Record<string, unknown> | undefined;
    const done: Record<string, unknown>[] = [];
    try {
      for (const p of list.plugins) {
        result = (await this.exec('ADD', list, p, a, result)) ?? result;
        done.push(p);
      }
    } catch (e) {
      // undo what was added (DEL of every plugin is safe to call on a partial setup)
      await this.delWith(list, a, result).catch((err: unknown) => this.log.warn({ err: errorMessage(err), id: a.containerId }, 'CNI cleanup after a failed ADD'));
      this.releaseNetns(a.containerId);
      throw e;
    }
    await mkdir(this.opts.cacheDir, { recursive: true, mode: 0o700 });
    await writeFile(this.cacheFile(a.containerId), JSON.stringify({ list, attachment: a, result }), { mode: 0o600 });
    const ips = ((result?.ips ?? []) as { address?: string }[]).map((i) => String(i.address ?? '').replace(/\/\d+$/, '')).filter((s) => s !== '');
    return { ips, raw: result ?? {} };
  }

  private async delWith(list: CniNetworkList, a: CniAttachment, prev: unknown): Promise<void> {
    let first: unknown;
    for (const p of [...list.plugins].reverse()) {
      try {
        await this.exec('DEL', list, p, a, prev);
      } catch (e) {
        first ??= e;
      }
    }
    if (first) throw first;
  }

  /**
   * DEL with the configuration and result ADD used, in the namespace held since ADD (else `netns` if it still
   * exists); nothing to do when the pod was never set up. The namespace is let go once DEL succeeded.
   */
  async tearDown(containerId: string, netns?: string): Promise<void> {
    let cached: { list: CniNetworkList; attachment: CniAttachment; result: unknown };
    try {
      cached = JSON.parse(await readFile(this.cacheFile(containerId), 'utf8')) as typeof cached;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const held = this.heldNetnsPath(containerId);
    const ns = isNamespaceMount(held) ? held : netns !== undefined && existsSync(netns) ? netns : '';
    await this.delWith(cached.list, { ...cached.attachment, netns: ns }, cached.result);
    this.releaseNetns(containerId);
    await rm(this.cacheFile(containerId), { force: true });
  }
}
