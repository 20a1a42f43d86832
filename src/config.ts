import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { InvalidParameterError } from './errors.js';
import { DEFAULT_API_TIMEOUTS, type ApiTimeouts } from './api/timeouts.js';

/** The daemon's settings: command-line flags over daemon.json over defaults (dockerd's key names). */
export interface DaemonConfig {
  hosts: string[];
  dataRoot: string;
  execRoot: string;
  configFile: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  pidfile: string;
  labels: string[];
  storageDriver: string | undefined;
  bip: string | undefined;
  defaultAddressPools: { base: string; size: number }[];
  dns: string[];
  iptables: boolean;
  registryMirrors: string[];
  insecureRegistries: string[];
  maxConcurrentDownloads: number;
  maxConcurrentUploads: number;
  /** daemon.json log-driver (json-file when unset). */
  logDriver: string;
  /** daemon.json log-opts only; Berth's own bounds for logs are applied internally (containers/log-options). */
  logOpts: Record<string, string>;
  /** CRI gRPC endpoint (unix://…); '' = off (--no-cri); default <exec-root>/cri.sock. */
  criSocket: string;
  cniConfDir: string;
  cniBinDirs: string[];
  /** Berth's own: how long a client may take to send a request (slowloris); answers are never timed. */
  apiTimeouts: ApiTimeouts;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

export const DEFAULT_CONFIG_FILE = '/etc/berth/daemon.json';

function defaults(): DaemonConfig {
  return {
    hosts: ['unix:///run/berth/docker.sock'],
    dataRoot: '/var/lib/berth',
    execRoot: '/run/berth',
    configFile: DEFAULT_CONFIG_FILE,
    logLevel: 'info',
    pidfile: '',
    labels: [],
    storageDriver: undefined,
    bip: undefined,
    defaultAddressPools: [],
    dns: [],
    iptables: true,
    registryMirrors: [],
    insecureRegistries: [],
    maxConcurrentDownloads: 3,
    maxConcurrentUploads: 5,
    logDriver: 'json-file',
    logOpts: {},
    criSocket: '',
    cniConfDir: '/etc/cni/net.d',
    cniBinDirs: ['/opt/cni/bin', '/usr/lib/cni'],
    apiTimeouts: { ...DEFAULT_API_TIMEOUTS },
  };
}

function asStringArray(key: string, v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new InvalidParameterError(`daemon.json: "${key}" must be an array of strings`);
  }
  return v as string[];
}

function asString(key: string, v: unknown): string {
  if (typeof v !== 'string') throw new InvalidParameterError(`daemon.json: "${key}" must be a string`);
  return v;
}

function asLogLevel(v: string): DaemonConfig['logLevel'] {
  const level = v.toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new InvalidParameterError(`unknown log level "${v}" (one of ${LOG_LEVELS.join(', ')})`);
  }
  return level as DaemonConfig['logLevel'];
}

/** `"api-timeouts": {"headers": 60, "request": 60, "body-idle": 300}`, in seconds (each > 0). */
function asApiTimeouts(v: unknown, base: ApiTimeouts): ApiTimeouts {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidParameterError('daemon.json: "api-timeouts" must be an object');
  const out = { ...base };
  const fields = { headers: 'headersMs', request: 'requestMs', 'body-idle': 'bodyIdleMs' } as const;
  for (const [k, seconds] of Object.entries(v)) {
    const field = (fields as Record<string, keyof ApiTimeouts | undefined>)[k];
    if (!field) throw new InvalidParameterError(`daemon.json: "api-timeouts" has no option "${k}" (headers, request, body-idle)`);
    if (typeof seconds !== 'number' || !(seconds > 0) || seconds > 86_400) {
      throw new InvalidParameterError(`daemon.json: "api-timeouts.${k}" must be a number of seconds above 0`);
    }
    out[field] = Math.round(seconds * 1000);
  }
  return out;
}

/** Applies the daemon.json keys Berth understands; unknown keys are refused as dockerd does. */
function applyFile(cfg: DaemonConfig, json: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(json)) {
    switch (key) {
      case 'hosts': cfg.hosts = asStringArray(key, value); break;
      case 'data-root': cfg.dataRoot = asString(key, value); break;
      case 'exec-root': cfg.execRoot = asString(key, value); break;
      case 'log-level': cfg.logLevel = asLogLevel(asString(key, value)); break;
      case 'debug': if (value === true) cfg.logLevel = 'debug'; break;
      case 'pidfile': cfg.pidfile = asString(key, value); break;
      case 'labels': cfg.labels = asStringArray(key, value); break;
      case 'storage-driver': cfg.storageDriver = asString(key, value); break;
      case 'bip': cfg.bip = asString(key, value); break;
      case 'dns': cfg.dns = asStringArray(key, value); break;
      case 'iptables': cfg.iptables = value !== false; break;
      case 'registry-mirrors': cfg.registryMirrors = asStringArray(key, value); break;
      case 'insecure-registries': cfg.insecureRegistries = asStringArray(key, value); break;
      case 'max-concurrent-downloads': cfg.maxConcurrentDownloads = Number(value); break;
      case 'max-concurrent-uploads': cfg.maxConcurrentUploads = Number(value); break;
      case 'cri-socket': cfg.criSocket = asString(key, value); break;
      case 'cni-conf-dir': cfg.cniConfDir = asString(key, value); break;
      case 'cni-bin-dir': cfg.cniBinDirs = asStringArray(key, value); break;
      case 'log-driver': cfg.logDriver = asString(key, value); break;
      case 'log-opts': {
        if (typeof value !== 'object' || value === null) throw new InvalidParameterError('daemon.json: "log-opts" must be an object');
        cfg.logOpts = { ...cfg.logOpts, ...(value as Record<string, string>) };
        break;
      }
      case 'api-timeouts': cfg.apiTimeouts = asApiTimeouts(value, cfg.apiTimeouts); break;
      case 'default-address-pools': {
        if (!Array.isArray(value)) throw new InvalidParameterError('daemon.json: "default-address-pools" must be an array');
        cfg.defaultAddressPools = value.map((p: { base?: unknown; size?: unknown }) => ({
          base: asString('default-address-pools.base', p.base),
          size: Number(p.size),
        }));
        break;
      }
      default:
        throw new InvalidParameterError(`daemon.json: the following directives don't match any configuration option: ${key}`);
    }
  }
}

/** Reads flags (argv without node and script) and the config file they name. */
export function loadConfig(argv: readonly string[]): DaemonConfig {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      host: { type: 'string', short: 'H', multiple: true },
      'data-root': { type: 'string' },
      'exec-root': { type: 'string' },
      'config-file': { type: 'string' },
      'log-level': { type: 'string', short: 'l' },
      debug: { type: 'boolean', short: 'D' },
      pidfile: { type: 'string', short: 'p' },
      'cri-socket': { type: 'string' },
      'no-cri': { type: 'boolean' },
    },
    strict: true,
  });
  const cfg = defaults();
  const configFile = values['config-file'] ?? DEFAULT_CONFIG_FILE;
  cfg.configFile = configFile;
  let text: string | undefined;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (e) {
    // A missing default file is normal; a missing file that was named explicitly is an error.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || values['config-file'] !== undefined) throw e;
  }
  if (text !== undefined && text.trim() !== '') {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new InvalidParameterError(`${configFile}: invalid JSON: ${(e as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new InvalidParameterError(`${configFile}: must hold a JSON object`);
    }
    applyFile(cfg, json as Record<string, unknown>);
  }
  if (values.host) cfg.hosts = values.host;
  if (values['data-root']) cfg.dataRoot = values['data-root'];
  if (values['exec-root']) cfg.execRoot = values['exec-root'];
  if (values['log-level']) cfg.logLevel = asLogLevel(values['log-level']);
  if (values.debug) cfg.logLevel = 'debug';
  if (values.pidfile !== undefined) cfg.pidfile = values.pidfile;
  if (cfg.pidfile === '') cfg.pidfile = `${cfg.execRoot}/berthd.pid`;
  if (values['cri-socket'] !== undefined) cfg.criSocket = values['cri-socket'];
  if (cfg.criSocket === '') cfg.criSocket = `unix://${cfg.execRoot}/cri.sock`;
  if (values['no-cri']) cfg.criSocket = '';
  return cfg;
}
