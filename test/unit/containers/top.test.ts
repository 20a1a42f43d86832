import { describe, expect, it } from 'vitest';
import { parsePsOutput, splitPsArgs } from '../../../src/containers/top.js';

describe('docker top output', () => {
  const ps = [
    'UID          PID    PPID  C STIME TTY          TIME CMD',
    'root        4242    4200  0 10:00 ?        00:00:00 sleep 1000 with args',
    'root        9999       1  0 10:00 ?        00:00:00 /usr/sbin/sshd -D',
    '',
  ].join('\n');

  it('keeps only the container\'s pids and gives the last column the rest of the line', () => {
    expect(parsePsOutput(ps, new Set([4242]))).toEqual({
      Titles: ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'],
      Processes: [['root', '4242', '4200', '0', '10:00', '?', '00:00:00', 'sleep 1000 with args']],
    });
  });

  it('needs a PID column and defaults to -ef', () => {
    expect(() => parsePsOutput('USER COMMAND\nroot sh\n', new Set([1]))).toThrow("Couldn't find PID field in ps output");
    expect(splitPsArgs(undefined)).toEqual(['-ef']);
    expect(splitPsArgs(' -o  pid,comm ')).toEqual(['-o', 'pid,comm']);
  });
});
