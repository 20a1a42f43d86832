import { pino, destination, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export type LogFormat = 'text' | 'json';

/** The root logger and the knob SIGHUP turns: pino children copy their level at creation, so the filter lives here. */
export interface DaemonLogger {
  log: Logger;
  setLevel(level: LevelWithSilent): void;
}

const PINO_LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };

/**
 * The daemon's root logger; subsystems take `log.child({ sub: '<name>' })`. Every child shares one adjustable
 * threshold (a logMethod hook), so a reloaded log level reaches loggers made before the reload.
 */
export function createDaemonLogger(level: LevelWithSilent, format: LogFormat, out: { write(s: string): void } = destination({ dest: 1, sync: true })): DaemonLogger {
  let threshold = PINO_LEVELS[level] ?? 30;
  const stream = format === 'text' ? { write: (line: string) => out.write(formatText(line)) } : out;
  const log = pino(
    {
      level: 'trace',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: {
        logMethod(args, method, levelValue) {
          if (levelValue >= threshold) method.apply(this, args);
        },
      },
    },
    stream,
  );
  // pino's own level stays 'trace' (the hook filters), so its isLevelEnabled would say yes to everything: answer
  // from the threshold instead. Children are made with Object.create(parent) and so share this one.
  log.isLevelEnabled = (l: string): boolean => (PINO_LEVELS[l] ?? 30) >= threshold;
  return {
    log,
    setLevel(l) {
      threshold = PINO_LEVELS[l] ?? 30;
    },
  };
}

/** A plain root logger (tests, tools). */
export function createLogger(level: LevelWithSilent): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

function quote(v: string): string {
  return /^[\w./:@+-]+$/.test(v) ? v : JSON.stringify(v);
}

/** One pino JSON line as dockerd's text format: `time="…" level=info msg="…" key=value …`. */
export function formatText(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { time, level, msg, pid: _pid, hostname: _host, err, ...rest } = rec;
  const parts = [`time=${JSON.stringify(String(time ?? new Date().toISOString()))}`, `level=${LEVEL_NAMES[level as number] ?? String(level)}`];
  if (msg !== undefined) parts.push(`msg=${JSON.stringify(String(msg))}`);
  for (const [k, v] of Object.entries(rest)) {
    if (v === undefined) continue;
    parts.push(`${k}=${typeof v === 'string' ? quote(v) : JSON.stringify(v)}`);
  }
  if (err && typeof err === 'object') {
    const e = err as { message?: unknown };
    parts.push(`error=${JSON.stringify(String(e.message ?? JSON.stringify(err)))}`);
  }
  return `${parts.join(' ')}\n`;
}
