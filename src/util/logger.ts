import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** The daemon's root logger; subsystems take `log.child({ sub: '<name>' })`. */
export function createLogger(level: LevelWithSilent): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
