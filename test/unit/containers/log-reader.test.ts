import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLogs, type LogEntry } from '../../../src/containers/log-reader.js';

const line = (log: string, stream = 'stdout', time = '2026-01-01T00:00:00.000000001Z'): string =>
  `${JSON.stringify({ log, stream, time })}\n`;

async function collect(gen: AsyncGenerator<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of gen) out.push(`${e.stream}:${e.data.toString()}`);
  return out;
}

describe('json-file log reader', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-logs-'));
    path = join(dir, 'c-json.log');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads rotated files oldest first, selects streams and keeps the tail', async () => {
    writeFileSync(`${path}.2`, line('a\n'));
    writeFileSync(`${path}.1`, line('b\n', 'stderr'));
    writeFileSync(path, line('c\n') + line('d\n', 'stderr'));
    expect(await collect(readLogs(path, { stdout: true, stderr: true, follow: false, maxFile: 3 }))).toEqual([
      'stdout:a\n', 'stderr:b\n', 'stdout:c\n', 'stderr:d\n',
    ]);
    expect(await collect(readLogs(path, { stdout: true, stderr: false, follow: false, maxFile: 3 }))).toEqual(['stdout:a\n', 'stdout:c\n']);
    expect(await collect(readLogs(path, { stdout: true, stderr: true, tail: 1, follow: false, maxFile: 3 }))).toEqual(['stderr:d\n']);
  });

  it("reads a CRI container's log in the kubelet's format (F ends a line, P is a part of one)", async () => {
    writeFileSync(
      path,
      '2026-01-01T00:00:00.000000001Z stdout F hello\n2026-01-01T00:00:00.5Z stderr P par\n2026-01-01T00:00:01Z stderr F tial {"x"}\n',
    );
    expect(await collect(readLogs(path, { stdout: true, stderr: true, follow: false, maxFile: 1 }))).toEqual(['stdout:hello\n', 'stderr:par', 'stderr:tial {"x"}\n']);
    expect(await collect(readLogs(path, { stdout: true, stderr: true, since: 1767225600_600_000_000n, follow: false, maxFile: 1 }))).toEqual(['stderr:tial {"x"}\n']);
  });

  it('skips a torn last line and decodes escapes', async () => {
    writeFileSync(path, line('tab\there "q" \u0001\n') + '{"log":"torn');
    expect(await collect(readLogs(path, { stdout: true, stderr: true, follow: false, maxFile: 1 }))).toEqual(['stdout:tab\there "q" \u0001\n']);
  });

  it('decodes long and short lines, partial lines without a newline, non-UTF-8 bytes and the entry times alike', async () => {
    const long = `${'x'.repeat(2000)}\n`;
    const longEsc = `${'y'.repeat(1000)}"${'z'.repeat(1000)}\n`;
    const partial = 'p'.repeat(700); // a 16 KiB-style part: no newline, so no backslash in the line
    const bad = Buffer.concat([Buffer.from('{"log":"bad \xff\\n","stream":"stdout","time":"2026-01-01T00:00:02Z"}\n', 'latin1')]);
    writeFileSync(path, line(long) + line(partial) + line('short\n', 'stderr', '2026-01-01T00:00:01.5Z') + line(longEsc) + line(partial) + line('end\n'));
    appendFileSync(path, bad);
    const got: LogEntry[] = [];
    for await (const e of readLogs(path, { stdout: true, stderr: true, follow: false, maxFile: 1 })) got.push(e);
    expect(got.map((e) => `${e.stream}:${e.data.toString()}`)).toEqual([
      `stdout:${long}`, `stdout:${partial}`, 'stderr:short\n', `stdout:${longEsc}`, `stdout:${partial}`, 'stdout:end\n', 'stdout:bad \ufffd\n',
    ]);
    expect(got[2]?.time).toBe('2026-01-01T00:00:01.5Z');
    expect(got[2]?.timeNano).toBe(1767225601_500_000_000n);
    expect(got[6]?.timeNano).toBe(1767225602_000_000_000n);
  });

  it('a follower sees output written just before the container stops, even when the file appears late', async () => {
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => {
      stop = r;
    });
    const reading = collect(readLogs(path, { stdout: true, stderr: true, follow: true, stopped, maxFile: 1 }));
    await new Promise((r) => setImmediate(r));
    writeFileSync(path, line('first\n'));
    appendFileSync(path, line('last\n'));
    stop();
    expect(await reading).toEqual(['stdout:first\n', 'stdout:last\n']);
  });

  it('a follower follows rotation', async () => {
    writeFileSync(path, line('one\n'));
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => {
      stop = r;
    });
    const logs = readLogs(path, { stdout: true, stderr: true, follow: true, stopped, maxFile: 2 });
    // following: it has read what the file held
    const first = await logs.next();
    expect(first.done ? undefined : `${first.value.stream}:${first.value.data.toString()}`).toBe('stdout:one\n');
    const reading = collect(logs);
    appendFileSync(path, line('two\n'));
    renameSync(path, `${path}.1`);
    writeFileSync(path, line('three\n'));
    stop();
    expect(await reading).toEqual(['stdout:two\n', 'stdout:three\n']);
  });
});
