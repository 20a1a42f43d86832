import { InvalidParameterError } from '../errors.js';
import type { LogConfig } from './types.js';

/** go-units RAMInBytes-style sizes as json-file's max-size takes them: "10m", "1g", "512k", "100". */
export function parseLogSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)b?$/i.exec(s.trim());
  if (!m) throw new InvalidParameterError(`invalid value for max-size: ${s}`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Math.floor(Number(m[1]) * (mult[(m[2] ?? '').toLowerCase()] ?? 1));
}

/** The log drivers Berth runs. `local` is kept in json-file format internally, with local's defaults. */
export const LOG_DRIVERS = ['json-file', 'local', 'none'] as const;
/** Drivers dockerd ships that Berth does not: refused by name rather than as unknown. */
const DOCKERD_ONLY_DRIVERS = ['awslogs', 'etwlogs', 'fluentd', 'gcplogs', 'gelf', 'journald', 'logentries', 'splunk', 'syslog'];
/** Options every driver takes (the log-mode options of dockerd's logger package). */
const GENERIC_OPTS = ['mode', 'max-buffer-size'];
const DRIVER_OPTS: Record<string, string[]> = {
  'json-file': ['max-size', 'max-file', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag'],
  local: ['max-size', 'max-file', 'compress'],
};

/**
 * Bounds Berth applies when the user gave none: json-file is bounded too (dockerd's is not), so a chatty container
 * never fills the disk; `local` has dockerd's own defaults. Neither shows up in HostConfig.LogConfig.Config.
 */
const INTERNAL_DEFAULTS: Record<string, { maxSize: string; maxFile: string; compress: boolean }> = {
  'json-file': { maxSize: '20m', maxFile: '5', compress: false },
  local: { maxSize: '20m', maxFile: '5', compress: true },
};

/**
 * The container's log config as dockerd's mergeAndVerifyLogConfig makes it: the daemon's driver when none is
 * named, the daemon's log-opts (from daemon.json only) filling keys the user left out when the driver is the
 * daemon's, then validation with dockerd's messages. What is returned is what inspect shows.
 */
export function resolveLogConfig(requested: LogConfig | undefined, daemon: { type: string; opts: Record<string, string> }): LogConfig {
  const type = requested?.Type || daemon.type;
  const config: Record<string, string> = { ...(requested?.Config ?? {}) };
  if (type === daemon.type) for (const [k, v] of Object.entries(daemon.opts)) if (!(k in config)) config[k] = v;
  validateLogOpts(type, config);
  return { Type: type, Config: config };
}

export function validateLogOpts(type: string, config: Record<string, string>): void {
  if (!(LOG_DRIVERS as readonly string[]).includes(type)) {
    if (DOCKERD_ONLY_DRIVERS.includes(type)) {
      throw new InvalidParameterError(`logging driver "${type}" is not supported by Berth (json-file, local and none are)`);
    }
    throw new InvalidParameterError(`logger: no log driver named '${type}' is registered`);
  }
  if (type === 'none') return;
  const known = [...GENERIC_OPTS, ...(DRIVER_OPTS[type] ?? [])];
  for (const key of Object.keys(config)) {
    if (!known.includes(key)) throw new InvalidParameterError(`unknown log opt '${key}' for ${type} log driver`);
  }
  if (config['max-size'] !== undefined) parseLogSize(config['max-size']);
  if (config['max-file'] !== undefined && !/^-?\d+$/.test(config['max-file'])) {
    throw new InvalidParameterError(`invalid value for max-file: ${config['max-file']}`);
  }
  if (config['max-file'] !== undefined && Number(config['max-file']) < 1) throw new InvalidParameterError('max-file cannot be less than 1');
  if (config.compress !== undefined && parseBool(config.compress) === undefined) {
    throw new InvalidParameterError(`error reading compress log option: strconv.ParseBool: parsing "${config.compress}": invalid syntax`);
  }
  if (config.mode !== undefined && !['', 'blocking', 'non-blocking'].includes(config.mode)) {
    throw new InvalidParameterError(`logger: logging mode not supported: ${config.mode}`);
  }
  for (const key of ['labels-regex', 'env-regex']) {
    if (config[key] === undefined) continue;
    try {
      new RegExp(config[key]);
    } catch (e) {
      throw new InvalidParameterError(`error parsing ${key}: ${(e as Error).message}`);
    }
  }
}

function parseBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)) return false;
  return undefined;
}

/** What the shim does with a container's output: the file's bounds and compression, or no file (`none`). */
export interface LogLimits {
  enabled: boolean;
  maxSize: number;
  maxFile: number;
  compress: boolean;
}

export function logLimits(c: LogConfig): LogLimits {
  const d = INTERNAL_DEFAULTS[c.Type] ?? INTERNAL_DEFAULTS['json-file'];
  if (c.Type === 'none' || !d) return { enabled: false, maxSize: 0, maxFile: 1, compress: false };
  const maxSize = parseLogSize(c.Config['max-size'] ?? d.maxSize);
  const maxFile = Number(c.Config['max-file'] ?? d.maxFile);
  const compress = c.Config.compress !== undefined ? parseBool(c.Config.compress) === true : d.compress;
  // Rotation needs a size; compression needs a rotated file.
  return { enabled: true, maxSize, maxFile, compress: compress && maxFile > 1 };
}

/** The container facts a log tag template and the labels/env options read. */
export interface LogSubject {
  id: string;
  name: string;
  imageId: string;
  imageName: string;
  labels: Record<string, string>;
  env: string[];
}

/**
 * json-file's extra attributes, as dockerd's logger.Info.ExtraAttributes and ParseLogTag make them: the listed
 * labels and env variables (and those matching the regex options) that the container has, plus `tag` when the
 * user gave one ({{.ID}}, {{.FullID}}, {{.Name}}, {{.ImageID}}, {{.ImageFullID}}, {{.ImageName}}, {{.DaemonName}}).
 */
export function logAttributes(c: LogConfig, s: LogSubject): Record<string, string> {
  const attrs: Record<string, string> = {};
  if (c.Type !== 'json-file') return attrs;
  const o = c.Config;
  const list = (v: string | undefined): string[] => (v ? v.split(',').map((x) => x.trim()).filter((x) => x !== '') : []);
  for (const k of list(o.labels)) if (k in s.labels) attrs[k] = s.labels[k] ?? '';
  if (o['labels-regex']) {
    const re = new RegExp(o['labels-regex']);
    for (const [k, v] of Object.entries(s.labels)) if (re.test(k)) attrs[k] = v;
  }
  const env = new Map<string, string>();
  for (const kv of s.env) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const k of list(o.env)) if (env.has(k)) attrs[k] = env.get(k) ?? '';
  if (o['env-regex']) {
    const re = new RegExp(o['env-regex']);
    for (const [k, v] of env) if (re.test(k)) attrs[k] = v;
  }
  if (o.tag) {
    const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);
    const fields: Record<string, string> = {
      ID: s.id.slice(0, 12),
      FullID: s.id,
      Name: s.name,
      ImageID: short(s.imageId),
      ImageFullID: s.imageId,
      ImageName: s.imageName,
      DaemonName: 'docker',
    };
    attrs.tag = o.tag.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (all, f: string) => fields[f] ?? all);
  }
  return attrs;
}
