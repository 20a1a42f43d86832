#!/usr/bin/env node
import { loadConfig } from './config.js';
import { createLogger } from './util/logger.js';
import { startDaemon } from './daemon.js';
import { errorMessage } from './errors.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`berthd: ${errorMessage(e)}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  if (process.getuid?.() !== 0) log.warn('berthd is not running as root: containers cannot be created');

  let daemon;
  try {
    daemon = await startDaemon(config, log);
  } catch (e) {
    log.fatal({ err: e }, 'berthd failed to start');
    process.stderr.write(`berthd: ${errorMessage(e)}\n`);
    process.exit(1);
  }

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'signal received');
    daemon.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

void main();
