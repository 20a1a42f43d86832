import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { catches, procSignals, redeliverWhenCaught } from '../../../src/cri/stop-signal.js';
import { waitFor } from '../../helpers/wait.js';

const children: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** A shell that catches SIGTERM once it has written "ready". */
function trapping(): Promise<ReturnType<typeof spawn>> {
  const c = spawn('sh', ['-c', 'trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done'], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(c);
  return new Promise((resolve) => c.stdout?.once('data', () => resolve(c)));
}

describe('the CRI stop signal watch', () => {
  it("reads a process's handlers, namespace init flag and identity from /proc", async () => {
    const c = await trapping();
    const p = procSignals(c.pid ?? 0);
    expect(p).toBeDefined();
    expect(p && catches(p, 15)).toBe(true);
    expect(p && catches(p, 10)).toBe(false); // SIGUSR1: no handler
    expect(p?.nsInit).toBe(false); // not PID 1 of a namespace of its own
    expect(p?.startTime).toMatch(/^\d+$/);
    expect(procSignals(0)).toBeUndefined();
  });

  it('watches nothing when the signal would be delivered (a handler, or not a namespace init)', async () => {
    const c = await trapping();
    expect(redeliverWhenCaught(c.pid ?? 0, 15, 10_000, () => Promise.resolve())).toBeUndefined();
    expect(redeliverWhenCaught(process.pid, 10, 10_000, () => Promise.resolve())).toBeUndefined();
    expect(redeliverWhenCaught(c.pid ?? 0, 9, 10_000, () => Promise.resolve())).toBeUndefined();
  });
});

// a namespace init (unshare --pid --fork) that installs its SIGTERM handler late: the watch sends the signal again
describe.skipIf(process.getuid?.() !== 0)('the CRI stop signal watch on a PID namespace init', () => {
  it('sends the signal again once PID 1 catches it', async () => {
    // the handler goes in when the test writes a line, not after a fixed sleep that a loaded machine could outlast
    const c = spawn('unshare', ['--pid', '--fork', '--kill-child', 'sh', '-c', 'read go; trap "exit 7" TERM; echo trapped; while :; do sleep 0.1; done'], { stdio: ['pipe', 'pipe', 'ignore'] });
    children.push(c);
    let init = 0;
    await waitFor(() => {
      const kids = procChildren(c.pid ?? 0);
      init = kids[0] ?? 0;
      return init !== 0 && procSignals(init)?.nsInit === true;
    }, 5000);
    let sent = 0;
    const watch = redeliverWhenCaught(init, 15, 10_000, () => {
      sent++;
      process.kill(init, 'SIGTERM');
      return Promise.resolve();
    }, 20);
    expect(watch).toBeDefined();
    process.kill(init, 'SIGTERM'); // dropped: no handler yet
    c.stdin?.end('go\n');
    const code = await new Promise<number | null>((resolve) => c.once('exit', (x) => resolve(x)));
    watch?.cancel();
    expect(sent).toBe(1);
    expect(code).toBe(7);
  });
});

function procChildren(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
