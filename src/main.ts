#!/usr/bin/env -S node --max-semi-space-size=2 --heap-growing-percent=100
// The young generation capped at 2 MiB semi-spaces (V8's default grows to 16): an idle berthd keeps ~8 MiB less
// resident, and a daemon's short-lived request garbage fits. The old generation grows to twice its live size
// before the next full GC: V8's own factor follows the mutator's allocation rate, which for a daemon that was
// idle is tiny, so it fell to its floor (1.1x) and a busy berthd then ran a mark-compact every one or two
// container runs (~20 ms of CPU each; 47-58 instead of 22-23 ms of CPU per `docker run --rm`); idle RSS is
// unchanged. The same flags are in `npm start`, the systemd unit and the benchmarks (which read them from this line).
import { restoreTiering } from './system/start-tiering.js';
import { ConfigError, configFrom, parseArgs, reloadablePart, usage, type DaemonConfig, type ParsedArgs } from './config.js';
import { createDaemonLogger } from './util/logger.js';
import { startDaemon, type Daemon } from './daemon.js';
import { errorMessage } from './errors.js';
import { API_VERSION, BERTH_VERSION } from './version.js';
import { notifySystemd } from './system/sd-notify.js';

function fail(code: number, lines: string[], hint = false): never {
  for (const l of lines) process.stderr.write(`berthd: ${l}\n`);
  if (hint) process.stderr.write("See 'berthd --help'.\n");
  process.exit(code);
}

async function main(): Promise<void> {
  let args: ParsedArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    fail(2, e instanceof ConfigError ? e.problems : [errorMessage(e)], true);
  }
  if (args.help) {
    process.stdout.write(usage());
    return;
  }
  if (args.version) {
    process.stdout.write(`Berth version ${BERTH_VERSION}, API ${API_VERSION}, Node.js ${process.version}\n`);
    return;
  }
  let config: DaemonConfig;
  try {
    config = configFrom(args);
  } catch (e) {
    fail(1, e instanceof ConfigError ? e.problems : [errorMessage(e)]);
  }
  if (args.validate) {
    process.stdout.write('configuration OK\n');
    return;
  }

  const format = config.logFormat === 'auto' ? (process.stdout.isTTY ? 'text' : 'json') : config.logFormat;
  const logger = createDaemonLogger(config.logLevel, format);
  const log = logger.log;
  if (process.getuid?.() !== 0) log.warn('berthd is not running as root: containers cannot be created');

  let daemon: Daemon | undefined;
  // Until the daemon is up, SIGHUP must not kill it (Node's default); afterwards it reloads daemon.json.
  process.on('SIGHUP', () => {
    if (!daemon) return;
    let fresh: DaemonConfig;
    try {
      fresh = configFrom(args);
    } catch (e) {
      log.error({ problems: e instanceof ConfigError ? e.problems : [errorMessage(e)] }, 'configuration reload failed; keeping the running configuration');
      return;
    }
    notifySystemd('RELOADING=1', log);
    const part = reloadablePart(fresh);
    logger.setLevel(part.logLevel);
    daemon.reload(part);
    log.info({ config: part }, 'configuration reloaded');
    notifySystemd('READY=1', log);
  });

  try {
    daemon = await startDaemon(config, log);
  } catch (e) {
    log.fatal({ err: e }, 'berthd failed to start');
    process.stderr.write(`berthd: ${errorMessage(e)}\n`);
    process.exit(1);
  }
  restoreTiering();
  notifySystemd(`READY=1\nSTATUS=serving the API on ${config.hosts.join(', ')}\nMAINPID=${process.pid}`, log);

  let stopping = false;
  const running = daemon;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'signal received');
    notifySystemd('STOPPING=1', log);
    running.stop().then(
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
