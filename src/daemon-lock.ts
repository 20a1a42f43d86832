import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { BerthError } from './errors.js';

/** Process start time (clock ticks since boot), so a recycled PID is not mistaken for a live daemon. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * One daemon per data root: a lock file holding "<pid> <starttime>", created exclusively.
 * A lock whose process is gone (a crash, SIGKILL) is taken over.
 */
export function acquireDataRootLock(path: string, dataRoot: string): () => void {
  const me = `${process.pid} ${processStartTime(process.pid) ?? ''}`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, me);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, 'utf8') === me) unlinkSync(path);
        } catch {
          // Already gone.
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const [pidText, start] = readFileSync(path, 'utf8').trim().split(' ');
    const pid = Number(pidText);
    if (pid > 0 && start && processStartTime(pid) === start) {
      throw new BerthError(`another berthd (pid ${pid}) is already running on data root ${dataRoot}`);
    }
    unlinkSync(path); // stale: its owner is gone
  }
  throw new BerthError(`could not lock data root ${dataRoot}`);
}
