import { readFileSync } from 'node:fs';
import { parseHost } from './util/host-address.js';
import { parseGoDuration } from './util/time.js';
import { DEFAULT_API_TIMEOUTS, type ApiTimeouts } from './api/timeouts.js';

/** The daemon's settings: command-line flags over daemon.json over defaults (dockerd's key names). */
export interface DaemonConfig {
  hosts: string[];
  dataRoot: string;
  execRoot: string;
  configFile: string;
  logLevel: LogLevel;
  /** `auto`: readable text on a terminal, JSON lines otherwise. */
  logFormat: 'text' | 'json' | 'auto';
  pidfile: string;
  labels: string[];
  storageDriver: string | undefined;
  bip: string | undefined;
  defaultAddressPools: { base: string; size: number }[];
  dns: string[];
  iptables: boolean;
  /** daemon.json icc: containers on the default bridge may talk to each other (default true). */
  icc: boolean;
  /** daemon.json ip: host address of ports published on the default bridge without one (default 0.0.0.0). */
  ip: string;
  registryMirrors: string[];
  insecureRegistries: string[];
  maxConcurrentDownloads: number;
  maxConcurrentUploads: number;
  /** daemon.json log-driver (json-file when unset). */
  logDriver: string;
  /** daemon.json log-opts only; Berth's own bounds for logs are applied internally (containers/log-options). */
  logOpts: Record<string, string>;
  /** undefined: not set (TLS is then on only if tlsverify is set). */
  tls: boolean | undefined;
  tlsVerify: boolean | undefined;
  tlsCaCert: string;
  tlsCert: string;
  tlsKey: string;
  /** Also expose the first unix socket at this path as a symlink (e.g. /var/run/docker.sock); '' for none. */
  socketLink: string;
  /** CRI gRPC endpoint (unix://…); '' = off (--no-cri); default <exec-root>/cri.sock. */
  criSocket: string;
  /** NRI socket path plugins connect to; '' = off (--no-nri); default /var/run/nri/nri.sock (containerd's). */
  nriSocket: string;
  /** How long a connected NRI plugin has to register, and to answer one request (ms; containerd's 5 s and 2 s). */
  nriRegistrationTimeoutMs: number;
  nriRequestTimeoutMs: number;
  /** Pre-installed NRI plugins launched at start, and their configuration drop-ins ('' = none). */
  nriPluginPath: string;
  nriPluginConfigPath: string;
  cniConfDir: string;
  cniBinDirs: string[];
  /** Berth's own: how long a client may take to send a request (slowloris); answers are never timed. */
  apiTimeouts: ApiTimeouts;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export const DEFAULT_CONFIG_FILE = '/etc/berth/daemon.json';
const DEFAULT_CERT_DIR = '/etc/berth';

/** A configuration problem: bad flag, bad daemon.json key or value, inconsistent settings. Lists every problem. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

function defaults(): DaemonConfig {
  return {
    hosts: ['unix:///run/berth/docker.sock'],
    dataRoot: '/var/lib/berth',
    execRoot: '/run/berth',
    configFile: DEFAULT_CONFIG_FILE,
    logLevel: 'info',
    logFormat: 'auto',
    pidfile: '',
    labels: [],
    storageDriver: undefined,
    bip: undefined,
    defaultAddressPools: [],
    dns: [],
    iptables: true,
    icc: true,
    ip: '0.0.0.0',
    registryMirrors: [],
    insecureRegistries: [],
    maxConcurrentDownloads: 3,
    maxConcurrentUploads: 5,
    logDriver: 'json-file',
    logOpts: {},
    tls: undefined,
    tlsVerify: undefined,
    tlsCaCert: `${DEFAULT_CERT_DIR}/ca.pem`,
    tlsCert: `${DEFAULT_CERT_DIR}/cert.pem`,
    tlsKey: `${DEFAULT_CERT_DIR}/key.pem`,
    socketLink: '',
    criSocket: '',
    nriSocket: '/var/run/nri/nri.sock',
    nriRegistrationTimeoutMs: 5_000,
    nriRequestTimeoutMs: 2_000,
    nriPluginPath: '/opt/nri/plugins',
    nriPluginConfigPath: '/etc/nri/conf.d',
    cniConfDir: '/etc/cni/net.d',
    cniBinDirs: ['/opt/cni/bin', '/usr/lib/cni'],
    apiTimeouts: { ...DEFAULT_API_TIMEOUTS },
  };
}

type Kind = 'string' | 'strings' | 'bool' | 'int' | 'json';

/**
 * One setting: its daemon.json key, its flag (same name unless `flag` says otherwise; `false` for daemon.json
 * only), how to check and apply a value. Adding a setting is one entry here.
 */
interface Option {
  key: string;
  flag?: string | false;
  /** A command-line flag only: daemon.json refuses the key. */
  noFile?: boolean;
  short?: string;
  kind: Kind;
  /** Placeholder shown in --help. */
  arg?: string;
  help: string;
  /** Re-read from daemon.json on SIGHUP. */
  reload?: boolean;
  /** A flag given several times: values are collected (kind 'strings', or 'json' with fromFlag). */
  fromFlag?: (values: string[]) => unknown;
  apply(c: DaemonConfig, v: never): void;
}

function opt<K extends Kind>(o: Omit<Option, 'apply' | 'kind'> & { kind: K; apply(c: DaemonConfig, v: ValueOf<K>): void }): Option {
  return o as unknown as Option;
}
type ValueOf<K extends Kind> = K extends 'string' ? string : K extends 'strings' ? string[] : K extends 'bool' ? boolean : K extends 'int' ? number : unknown;

function logLevel(v: string): LogLevel {
  const level = v.toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new Error(`unknown log level "${v}" (one of ${LOG_LEVELS.join(', ')})`);
  return level;
}

/** `"api-timeouts": {"headers": 60, "request": 60, "body-idle": 300}`, in seconds (each > 0). */
function apiTimeouts(v: unknown, base: ApiTimeouts): ApiTimeouts {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('must be an object');
  const out = { ...base };
  const fields = { headers: 'headersMs', request: 'requestMs', 'body-idle': 'bodyIdleMs' } as const;
  for (const [k, seconds] of Object.entries(v)) {
    const field = (fields as Record<string, keyof ApiTimeouts | undefined>)[k];
    if (!field) throw new Error(`has no option "${k}" (headers, request, body-idle)`);
    if (typeof seconds !== 'number' || !(seconds > 0) || seconds > 86_400) throw new Error(`field api-timeouts.${k} must be a number of seconds above 0`);
    out[field] = Math.round(seconds * 1000);
  }
  return out;
}

function keyValues(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new Error(`"${v}" is not key=value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

const OPTIONS: Option[] = [
  opt({ key: 'hosts', flag: 'host', short: 'H', kind: 'strings', arg: 'ADDR', help: 'Address to serve the API on (repeatable): unix:///path, tcp://host:port (needs --tlsverify), fd:// (systemd sockets)', apply: (c, v) => { c.hosts = v; } }),
  opt({ key: 'data-root', kind: 'string', arg: 'DIR', help: 'Images, containers, volumes and the metadata database', apply: (c, v) => { c.dataRoot = v; } }),
  opt({ key: 'exec-root', kind: 'string', arg: 'DIR', help: 'Sockets, pid file and runtime state', apply: (c, v) => { c.execRoot = v; } }),
  opt({ key: 'pidfile', short: 'p', kind: 'string', arg: 'FILE', help: 'Pid file (default <exec-root>/berthd.pid)', apply: (c, v) => { c.pidfile = v; } }),
  opt({ key: 'log-level', short: 'l', kind: 'string', arg: 'LEVEL', reload: true, help: 'trace, debug, info, warn, error or fatal', apply: (c, v) => { c.logLevel = logLevel(v); } }),
  opt({ key: 'debug', short: 'D', kind: 'bool', reload: true, help: 'Same as --log-level debug', apply: (c, v) => { if (v) c.logLevel = 'debug'; } }),
  opt({ key: 'log-format', kind: 'string', arg: 'FORMAT', help: 'Daemon log format: text or json (default: text on a terminal, json otherwise)', apply: (c, v) => {
    if (v !== 'text' && v !== 'json') throw new Error(`unknown log format "${v}" (text or json)`);
    c.logFormat = v;
  } }),
  opt({ key: 'tls', kind: 'bool', help: 'Serve TCP hosts over TLS (implied by --tlsverify); --tls=false allows plain TCP', apply: (c, v) => { c.tls = v; } }),
  opt({ key: 'tlsverify', kind: 'bool', help: 'Serve TCP hosts over TLS and accept only clients with a certificate signed by --tlscacert', apply: (c, v) => { c.tlsVerify = v; } }),
  opt({ key: 'tlscacert', kind: 'string', arg: 'FILE', help: `CA that client certificates must be signed by (default ${DEFAULT_CERT_DIR}/ca.pem)`, apply: (c, v) => { c.tlsCaCert = v; } }),
  opt({ key: 'tlscert', kind: 'string', arg: 'FILE', help: `Server certificate (default ${DEFAULT_CERT_DIR}/cert.pem)`, apply: (c, v) => { c.tlsCert = v; } }),
  opt({ key: 'tlskey', kind: 'string', arg: 'FILE', help: `Server key (default ${DEFAULT_CERT_DIR}/key.pem)`, apply: (c, v) => { c.tlsKey = v; } }),
  opt({ key: 'socket-link', kind: 'string', arg: 'PATH', help: 'Also make PATH (e.g. /var/run/docker.sock) a symlink to the API socket, for tools that hard-code it', apply: (c, v) => { c.socketLink = v; } }),
  opt({ key: 'labels', flag: 'label', kind: 'strings', arg: 'KEY=VALUE', reload: true, help: 'Daemon label shown by docker info (repeatable)', apply: (c, v) => { c.labels = v; } }),
  opt({ key: 'storage-driver', short: 's', kind: 'string', arg: 'NAME', help: 'overlay2 or vfs (default: overlay2 where it works)', apply: (c, v) => { c.storageDriver = v; } }),
  opt({ key: 'bip', kind: 'string', arg: 'CIDR', help: 'Address and subnet of the default bridge', apply: (c, v) => { c.bip = v; } }),
  opt({ key: 'dns', kind: 'strings', arg: 'IP', help: 'DNS server for containers (repeatable)', apply: (c, v) => { c.dns = v; } }),
  opt({ key: 'iptables', kind: 'bool', help: 'Manage firewall rules for NAT and published ports (default true)', apply: (c, v) => { c.iptables = v; } }),
  opt({ key: 'icc', kind: 'bool', help: 'Let containers on the default bridge talk to each other (default true)', apply: (c, v) => { c.icc = v; } }),
  opt({ key: 'ip', kind: 'string', arg: 'IP', help: 'Host address of ports published on the default bridge without one (default 0.0.0.0)', apply: (c, v) => { c.ip = v; } }),
  opt({ key: 'registry-mirrors', flag: 'registry-mirror', kind: 'strings', arg: 'URL', reload: true, help: 'Docker Hub mirror (repeatable)', apply: (c, v) => { c.registryMirrors = v; } }),
  opt({ key: 'insecure-registries', flag: 'insecure-registry', kind: 'strings', arg: 'HOST', reload: true, help: 'Registry reachable over plain HTTP or unverified TLS (repeatable)', apply: (c, v) => { c.insecureRegistries = v; } }),
  opt({ key: 'max-concurrent-downloads', kind: 'int', arg: 'N', reload: true, help: 'Layers pulled at once (default 3)', apply: (c, v) => { c.maxConcurrentDownloads = v; } }),
  opt({ key: 'max-concurrent-uploads', kind: 'int', arg: 'N', reload: true, help: 'Layers pushed at once (default 5)', apply: (c, v) => { c.maxConcurrentUploads = v; } }),
  opt({ key: 'log-driver', kind: 'string', arg: 'NAME', help: 'Default container log driver (json-file)', apply: (c, v) => { c.logDriver = v; } }),
  opt({ key: 'log-opts', flag: 'log-opt', kind: 'json', arg: 'KEY=VALUE', fromFlag: keyValues, help: 'Container log option, e.g. max-size=10m (repeatable)', apply: (c, v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) {
      throw new Error('must be an object of strings');
    }
    c.logOpts = { ...c.logOpts, ...(v as Record<string, string>) };
  } }),
  opt({ key: 'cri-socket', kind: 'string', arg: 'ADDR', help: 'CRI (kubelet, crictl) gRPC endpoint (default unix://<exec-root>/cri.sock)', apply: (c, v) => { c.criSocket = v; } }),
  opt({ key: 'no-cri', noFile: true, kind: 'bool', help: 'Do not serve the CRI', apply: (c, v) => { if (v) c.criSocket = 'off'; } }),
  opt({ key: 'nri-socket', kind: 'string', arg: 'PATH', help: 'NRI (Node Resource Interface) socket for plugins (default /var/run/nri/nri.sock)', apply: (c, v) => { c.nriSocket = v; } }),
  opt({ key: 'no-nri', noFile: true, kind: 'bool', help: 'Do not serve NRI', apply: (c, v) => { if (v) c.nriSocket = ''; } }),
  opt({ key: 'nri-plugin-registration-timeout', kind: 'string', arg: 'DURATION', help: 'Time an NRI plugin has to register (default 5s)', apply: (c, v) => { c.nriRegistrationTimeoutMs = positiveDurationMs(v); } }),
  opt({ key: 'nri-plugin-request-timeout', kind: 'string', arg: 'DURATION', help: 'Time an NRI plugin has to answer a request (default 2s)', apply: (c, v) => { c.nriRequestTimeoutMs = positiveDurationMs(v); } }),
  opt({ key: 'nri-plugin-path', kind: 'string', arg: 'DIR', help: 'Pre-installed NRI plugins (NN-name executables) launched at start (default /opt/nri/plugins)', apply: (c, v) => { c.nriPluginPath = v; } }),
  opt({ key: 'nri-plugin-config-path', kind: 'string', arg: 'DIR', help: 'Configuration of pre-installed NRI plugins (default /etc/nri/conf.d)', apply: (c, v) => { c.nriPluginConfigPath = v; } }),
  opt({ key: 'cni-conf-dir', kind: 'string', arg: 'DIR', help: 'CNI network configurations for pod sandboxes (default /etc/cni/net.d)', apply: (c, v) => { c.cniConfDir = v; } }),
  opt({ key: 'cni-bin-dir', kind: 'strings', arg: 'DIR', help: 'Where CNI plugins are looked for (repeatable; default /opt/cni/bin, /usr/lib/cni)', apply: (c, v) => { c.cniBinDirs = v; } }),
  opt({ key: 'api-timeouts', flag: false, kind: 'json', help: '', apply: (c, v) => { c.apiTimeouts = apiTimeouts(v, c.apiTimeouts); } }),
  opt({ key: 'default-address-pools', flag: false, kind: 'json', help: '', apply: (c, v) => {
    if (!Array.isArray(v)) throw new Error('must be an array');
    c.defaultAddressPools = v.map((p: unknown) => {
      const pool = p as { base?: unknown; size?: unknown };
      if (typeof pool?.base !== 'string' || !Number.isInteger(pool.size)) throw new Error('each pool needs "base" (a CIDR) and "size" (a prefix length)');
      return { base: pool.base, size: pool.size as number };
    });
  } }),
];

/** Flags that steer berthd itself rather than configure the daemon. */
const META_FLAGS = [
  { flag: 'config-file', kind: 'string' as const, arg: 'FILE', help: `daemon.json to read (default ${DEFAULT_CONFIG_FILE}; a missing default file is fine)` },
  { flag: 'validate', kind: 'bool' as const, help: 'Check the flags and daemon.json, print what is wrong, and exit' },
  { flag: 'version', short: 'v', kind: 'bool' as const, help: 'Print the version and exit' },
  { flag: 'help', short: 'h', kind: 'bool' as const, help: 'Print this help and exit' },
];

interface FlagDef {
  name: string;
  short?: string;
  kind: Kind;
  option?: Option;
}

const FLAGS: FlagDef[] = [
  ...OPTIONS.filter((o) => o.flag !== false).map((o) => ({ name: (o.flag as string | undefined) ?? o.key, ...(o.short ? { short: o.short } : {}), kind: o.kind, option: o })),
  ...META_FLAGS.map((m) => ({ name: m.flag, ...('short' in m ? { short: m.short } : {}), kind: m.kind })),
];

/** What the command line asked for: option values by daemon.json key, plus the meta flags. */
export interface ParsedArgs {
  values: Map<string, unknown>;
  configFile: string | undefined;
  validate: boolean;
  version: boolean;
  help: boolean;
}

function parseBool(name: string, v: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new Error(`invalid argument "${v}" for "--${name}" flag: expected true or false`);
}

/** Parses berthd's argv (without node and script): `--flag value`, `--flag=value`, `-H value`, `-Hvalue`, `--bool[=false]`. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const raw = new Map<FlagDef, string[]>();
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    let def: FlagDef | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      def = FLAGS.find((f) => f.name === name);
      if (!def) {
        problems.push(`unknown flag: --${name}`);
        continue;
      }
    } else if (arg.startsWith('-') && arg.length > 1) {
      def = FLAGS.find((f) => f.short === arg[1]);
      if (!def) {
        problems.push(`unknown shorthand flag: '${arg[1]}' in ${arg}`);
        continue;
      }
      if (arg.length > 2) inline = arg[2] === '=' ? arg.slice(3) : arg.slice(2);
    } else {
      problems.push(`berthd accepts no arguments, got "${arg}"`);
      continue;
    }
    let value: string;
    if (def.kind === 'bool') {
      value = inline ?? 'true';
    } else if (inline !== undefined) {
      value = inline;
    } else {
      const next = argv[i + 1];
      if (next === undefined) {
        problems.push(`flag needs an argument: --${def.name}`);
        continue;
      }
      value = next;
      i++;
    }
    raw.set(def, [...(raw.get(def) ?? []), value]);
  }

  const values = new Map<string, unknown>();
  const meta: Record<string, string | boolean | undefined> = {};
  for (const [def, list] of raw) {
    const last = list[list.length - 1] as string;
    try {
      let v: unknown;
      switch (def.kind) {
        case 'bool': v = parseBool(def.name, last); break;
        case 'strings': v = list; break;
        case 'int': {
          const n = Number(last);
          if (!Number.isInteger(n)) throw new Error(`invalid argument "${last}" for "--${def.name}" flag: expected an integer`);
          v = n;
          break;
        }
        case 'json': v = def.option?.fromFlag ? def.option.fromFlag(list) : last; break;
        default: v = last;
      }
      if (def.option) values.set(def.option.key, v);
      else meta[def.name] = v as string | boolean;
    } catch (e) {
      problems.push(def.option && !(e as Error).message.includes(`--${def.name}`) ? `--${def.name}: ${(e as Error).message}` : (e as Error).message);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    values,
    configFile: meta['config-file'] as string | undefined,
    validate: meta.validate === true,
    version: meta.version === true,
    help: meta.help === true,
  };
}

function checkKind(o: Option, v: unknown): void {
  const ok =
    o.kind === 'string' ? typeof v === 'string'
    : o.kind === 'strings' ? Array.isArray(v) && v.every((x) => typeof x === 'string')
    : o.kind === 'bool' ? typeof v === 'boolean'
    : o.kind === 'int' ? Number.isInteger(v)
    : true;
  if (!ok) {
    const want = { string: 'a string', strings: 'an array of strings', bool: 'true or false', int: 'an integer', json: '' }[o.kind];
    throw new Error(`must be ${want}`);
  }
}

/** Reads daemon.json: undefined for a missing default file; problems for anything else that is wrong. */
function readConfigFile(path: string, named: boolean): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    // A missing default file is normal; a missing file that was named explicitly is an error.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !named) return undefined;
    throw new ConfigError([`unable to read ${path}: ${(e as Error).message}`]);
  }
  if (text.trim() === '') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([`${path}: invalid JSON: ${(e as Error).message}`]);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError([`${path}: must hold a JSON object`]);
  return json as Record<string, unknown>;
}

/** Applies daemon.json, then flags (flags win), collecting every problem. */
function build(args: ParsedArgs): DaemonConfig {
  const cfg = defaults();
  const problems: string[] = [];
  cfg.configFile = args.configFile ?? DEFAULT_CONFIG_FILE;
  const file = readConfigFile(cfg.configFile, args.configFile !== undefined);
  if (file) {
    const unknown = Object.keys(file).filter((k) => !OPTIONS.some((o) => o.key === k && !o.noFile));
    if (unknown.length > 0) problems.push(`daemon.json: the following directives don't match any configuration option: ${unknown.join(', ')}`);
    for (const o of OPTIONS) {
      if (o.noFile || !(o.key in file)) continue;
      try {
        checkKind(o, file[o.key]);
        o.apply(cfg, file[o.key] as never);
      } catch (e) {
        problems.push(`daemon.json: "${o.key}" ${(e as Error).message}`);
      }
    }
  }
  for (const o of OPTIONS) {
    if (!args.values.has(o.key)) continue;
    try {
      o.apply(cfg, args.values.get(o.key) as never);
    } catch (e) {
      problems.push(`--${(o.flag as string | undefined) ?? o.key}: ${(e as Error).message}`);
    }
  }
  if (cfg.pidfile === '') cfg.pidfile = `${cfg.execRoot}/berthd.pid`;
  if (cfg.criSocket === '') cfg.criSocket = `unix://${cfg.execRoot}/cri.sock`;
  if (cfg.criSocket === 'off') cfg.criSocket = '';
  problems.push(...checkConsistency(cfg));
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

/** A Go duration ("2s", "500ms") as milliseconds; at least 1 ms. */
function positiveDurationMs(v: string): number {
  const ns = parseGoDuration(v);
  if (ns === undefined || ns < 1_000_000n) throw new Error(`"${v}" is not a positive duration (e.g. 2s, 500ms)`);
  return Number(ns / 1_000_000n);
}

/** TLS is on when asked for with --tls or implied by --tlsverify (set either way), as in dockerd. */
export function tlsEnabled(c: DaemonConfig): boolean {
  return c.tlsVerify !== undefined ? true : c.tls === true;
}

/** Client certificates are required unless --tlsverify=false says otherwise. */
export function tlsVerifyClients(c: DaemonConfig): boolean {
  return tlsEnabled(c) && c.tlsVerify !== false;
}

/** Plain or unauthenticated TCP was asked for explicitly (--tls=false or --tlsverify=false). */
export function insecureTcpForced(c: DaemonConfig): boolean {
  return c.tls === false || c.tlsVerify === false;
}

function checkConsistency(c: DaemonConfig): string[] {
  const problems: string[] = [];
  let tcp = false;
  for (const h of c.hosts) {
    try {
      const addr = parseHost(h, tlsEnabled(c));
      if (addr.kind === 'tcp') tcp = true;
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (tcp && !tlsVerifyClients(c) && !insecureTcpForced(c)) {
    problems.push(
      'refusing to serve the API on TCP without TLS client authentication: anyone who can reach the port would be root on this machine. ' +
        'Use --tlsverify with --tlscacert, --tlscert and --tlskey, or pass --tls=false to accept the risk',
    );
  }
  if (tlsEnabled(c)) {
    const files: [string, string][] = [['tlscert', c.tlsCert], ['tlskey', c.tlsKey]];
    if (tlsVerifyClients(c)) files.unshift(['tlscacert', c.tlsCaCert]);
    for (const [name, path] of files) {
      try {
        readFileSync(path);
      } catch (e) {
        problems.push(`--${name}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
  }
  if (!(c.maxConcurrentDownloads >= 1)) problems.push('max-concurrent-downloads must be at least 1');
  if (!(c.maxConcurrentUploads >= 1)) problems.push('max-concurrent-uploads must be at least 1');
  return problems;
}

/** Reads flags (argv without node and script) and the config file they name. Throws ConfigError listing problems. */
export function loadConfig(argv: readonly string[]): DaemonConfig {
  return build(parseArgs(argv));
}

/** The same, from already parsed arguments (main uses this after handling --help/--version). */
export function configFrom(args: ParsedArgs): DaemonConfig {
  return build(args);
}

/** The daemon.json keys SIGHUP re-reads, as dockerd does. */
export const RELOADABLE_KEYS: readonly string[] = OPTIONS.filter((o) => o.reload).map((o) => o.key);

/** The part of a configuration SIGHUP may change. */
export type ReloadableConfig = Pick<DaemonConfig, 'labels' | 'logLevel' | 'registryMirrors' | 'insecureRegistries' | 'maxConcurrentDownloads' | 'maxConcurrentUploads'>;

export function reloadablePart(c: DaemonConfig): ReloadableConfig {
  return {
    labels: c.labels,
    logLevel: c.logLevel,
    registryMirrors: c.registryMirrors,
    insecureRegistries: c.insecureRegistries,
    maxConcurrentDownloads: c.maxConcurrentDownloads,
    maxConcurrentUploads: c.maxConcurrentUploads,
  };
}

/** `berthd --help`, generated from the option table. */
export function usage(): string {
  const rows: [string, string][] = [];
  for (const f of FLAGS) {
    const meta = META_FLAGS.find((m) => m.flag === f.name);
    const o = f.option;
    const arg = o?.arg ?? meta?.arg;
    const left = `${f.short ? `-${f.short}, ` : '    '}--${f.name}${arg ? ` ${arg}` : ''}`;
    rows.push([left, o?.help ?? meta?.help ?? '']);
  }
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return [
    'Usage:\tberthd [OPTIONS]',
    '',
    'A container engine daemon that speaks the Docker Engine API.',
    '',
    'Options:',
    ...rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`),
    '',
    `Every option except ${[...META_FLAGS.map((m) => `--${m.flag}`), ...OPTIONS.filter((o) => o.noFile).map((o) => `--${o.key}`)].join(', ')} can also be set`,
    `in daemon.json under the same name (plural for the repeatable ones: hosts, labels, registry-mirrors,`,
    `insecure-registries, log-opts).`,
    `SIGHUP re-reads daemon.json and applies: ${RELOADABLE_KEYS.join(', ')}.`,
    '',
  ].join('\n');
}
