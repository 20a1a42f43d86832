import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { chain, shQuote, ToolShell } from '../../../src/network/tool-shell.js';

describe('ToolShell (long-lived shells running plumbing scripts)', () => {
  const sh = new ToolShell(pino({ level: 'silent' }));
  afterAll(() => sh.close());

  it('returns stdout and stderr together with the exit status', async () => {
    expect(await sh.exec('echo out; echo err >&2')).toEqual({ code: 0, output: 'out\nerr\n' });
    expect((await sh.exec('echo nope; false')).code).toBe(1);
    await expect(sh.run('echo broken >&2; exit_status() { return 7; }; exit_status')).rejects.toThrow(/exit status 7: broken/);
  });

  it('feeds here-document input and stops a chain at the first failing step', async () => {
    const script = chain([
      { command: 'cat', input: ['line one', 'line two'] },
      { command: 'false' },
      { command: 'echo never' },
    ]);
    expect(await sh.exec(script)).toEqual({ code: 1, output: 'line one\nline two\n' });
    expect(await sh.run(chain([{ command: 'tr a-z A-Z', input: ['x'] }, { command: 'echo y' }]))).toBe('X\ny\n');
  });

  it('gives commands without input an empty stdin, so they never read the scripts that follow', async () => {
    expect(await sh.run('cat; echo after')).toBe('after\n');
    expect(await sh.run('echo next')).toBe('next\n');
  });

  it('quotes words with spaces and quotes', async () => {
    expect(shQuote('/run/berth/netns/abc')).toBe('/run/berth/netns/abc');
    expect(await sh.run(`printf '%s|' ${shQuote("it's a dir")} ${shQuote('$HOME')}`)).toBe("it's a dir|$HOME|");
  });

  it('runs many scripts at once and replaces a shell that exits', async () => {
    const all = await Promise.all(Array.from({ length: 10 }, (_, i) => sh.run(`echo ${i}`)));
    expect(all).toEqual(Array.from({ length: 10 }, (_, i) => `${i}\n`));
    await expect(sh.run('exit 3')).rejects.toThrow(/plumbing shell exited/);
    expect(await sh.run('echo alive')).toBe('alive\n');
  });
});

describe('ToolShell idle shells', () => {
  it('ends a shell left idle and starts a new one for the next script', async () => {
    const sh = new ToolShell(pino({ level: 'silent' }), 2, 20);
    try {
      expect(await sh.run('echo one')).toBe('one\n');
      for (let i = 0; i < 500 && sh.shells > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(sh.shells).toBe(0);
      expect(await sh.run('echo two')).toBe('two\n');
    } finally {
      sh.close();
    }
  });
});
