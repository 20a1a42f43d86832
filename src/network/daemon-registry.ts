import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processStartTime } from '../daemon-lock.js';

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Which Berth daemons run on this host: one file per running daemon, named by its daemon ID, holding
 * "<pid> <process start time>" (written at network start, removed at stop). Host devices and firewall rules are
 * tagged with the daemon ID; this record is what proves a tag's daemon dead: its file is still there (it never
 * stopped) and its process is gone (the start time rules out a recycled PID). A daemon with no record (stopped
 * cleanly, perhaps to be restarted onto running containers, or from a build that kept no record) is never
 * called dead.
 */
export class DaemonRegistry {
  constructor(readonly dir = '/run/berth-daemons') {}

  register(daemonId: string): void {
    if (!ID.test(daemonId)) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.dir, `.${daemonId}.${process.pid}`);
    writeFileSync(tmp, `${process.pid} ${processStartTime(process.pid) ?? ''}\n`, { mode: 0o600 });
    renameSync(tmp, join(this.dir, daemonId));
  }

  /** Removes the record (a clean stop, or a dead daemon whose leftovers are gone). */
  forget(daemonId: string): void {
    if (!ID.test(daemonId)) return;
    try {
      unlinkSync(join(this.dir, daemonId));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  /** IDs of daemons whose recorded process no longer exists. */
  dead(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const name of names) {
      if (!ID.test(name)) continue;
      let text: string;
      try {
        text = readFileSync(join(this.dir, name), 'utf8');
      } catch {
        continue; // removed meanwhile: stopped
      }
      const [pidText, start] = text.trim().split(' ');
      const pid = Number(pidText);
      if (!Number.isInteger(pid) || pid <= 0 || !start) continue; // not a record we can judge
      if (processStartTime(pid) !== start) out.push(name);
    }
    return out;
  }
}
