import { InvalidParameterError } from '../errors.js';
import type { LogConfig } from './types.js';

/** go-units RAMInBytes-style sizes as json-file's max-size takes them: "10m", "1g", "512k", "100". */
export function parseLogSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)b?$/i.exec(s.trim());
  if (!m) throw new InvalidParameterError(`invalid value for max-size: ${s}`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Math.floor(Number(m[1]) * (mult[(m[2] ?? '').toLowerCase()] ?? 1));
}

/** The container's log config: json-file only, daemon defaults filled in (so inspect shows what applies). */
export function resolveLogConfig(requested: LogConfig | undefined, daemonOpts: Record<string, string>): LogConfig {
  const type = requested?.Type || 'json-file';
  if (type !== 'json-file') {
    throw new InvalidParameterError(`logging driver "${type}" is not supported by Berth (json-file only)`);
  }
  const config = { ...daemonOpts, ...(requested?.Config ?? {}) };
  for (const key of Object.keys(config)) {
    if (!['max-size', 'max-file', 'compress', 'labels', 'env', 'tag', 'mode', 'max-buffer-size'].includes(key)) {
      throw new InvalidParameterError(`unknown log opt '${key}' for json-file log driver`);
    }
  }
  if (config['max-size'] !== undefined) parseLogSize(config['max-size']);
  if (config['max-file'] !== undefined && !/^[1-9]\d*$/.test(config['max-file'])) {
    throw new InvalidParameterError(`invalid value for max-file: ${config['max-file']}`);
  }
  return { Type: type, Config: config };
}

export function logLimits(c: LogConfig): { maxSize: number; maxFile: number } {
  return {
    maxSize: c.Config['max-size'] !== undefined ? parseLogSize(c.Config['max-size']) : 0,
    maxFile: c.Config['max-file'] !== undefined ? Number(c.Config['max-file']) : 1,
  };
}
