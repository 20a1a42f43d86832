// docker top: the host's `ps` (procps) with the client's arguments, filtered to the container's processes
// (the pids of its cgroup), as dockerd's daemon/top_unix.go does.

import { execFile } from 'node:child_process';
import { BerthError, InvalidParameterError } from '../errors.js';

export interface TopResult {
  Titles: string[];
  Processes: string[][];
}

/** Splits ps_args like the Go side (strings.Fields); an argument starting with '-' is validated by ps itself. */
export function splitPsArgs(psArgs: string | undefined): string[] {
  const a = (psArgs ?? '').trim();
  return a === '' ? ['-ef'] : a.split(/\s+/);
}

/**
 * dockerd's parsePSOutput: find the PID column in the header; each line is split into as many fields as
 * there are titles, the last taking the rest of the line (commands contain spaces).
 */
export function parsePsOutput(output: string, pids: ReadonlySet<number>): TopResult {
  const lines = output.split('\n');
  const header = lines[0] ?? '';
  const titles = header.trim().split(/\s+/).filter((t) => t !== '');
  const pidIndex = titles.indexOf('PID');
  if (pidIndex < 0) throw new InvalidParameterError("Couldn't find PID field in ps output");
  const processes: string[][] = [];
  for (const line of lines.slice(1)) {
    if (line.trim() === '') continue;
    const fields = line.trim().split(/\s+/);
    const row = fields.slice(0, titles.length - 1);
    row.push(fields.slice(titles.length - 1).join(' '));
    const pid = Number(row[pidIndex]);
    if (!Number.isInteger(pid) || !pids.has(pid)) continue;
    processes.push(row);
  }
  return { Titles: titles, Processes: processes };
}

function runPs(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ps', args, { maxBuffer: 64 * 1024 * 1024, timeout: 30_000, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') reject(new BerthError('ps: executable file not found in $PATH (install procps)'));
        else reject(new InvalidParameterError(`ps: ${(stderr || err.message).trim()}`));
        return;
      }
      resolve(stdout);
    });
  });
}

/** Runs ps for the container's pids: `ps <args> -q <pids>` first (fast), plain `ps <args>` if ps refuses -q. */
export async function top(psArgs: string | undefined, pids: number[]): Promise<TopResult> {
  const args = splitPsArgs(psArgs);
  const set = new Set(pids);
  if (pids.length > 0) {
    try {
      return parsePsOutput(await runPs([...args, '-q', pids.join(',')]), set);
    } catch (e) {
      if (e instanceof BerthError && !(e instanceof InvalidParameterError)) throw e;
      // Some argument combinations cannot take -q (e.g. BSD-style ones): fall back to filtering everything.
    }
  }
  return parsePsOutput(await runPs(args), set);
}
