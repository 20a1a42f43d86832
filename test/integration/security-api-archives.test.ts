import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon, type CliResult } from '../helpers/daemon.js';
import { MiB, peakGrowth } from '../helpers/memory.js';
import { paxRecords, rawTar, specialHeader } from '../unit/archive/tar-fixtures.js';

/**
 * A tar that starts with `count` PAX headers of ~1000 KiB, each naming a new key (the old reader kept them all),
 * then one small file: 375 MiB in all, generated as it is sent.
 */
function endlessPax(count = 384): Readable {
  const value = 'v'.repeat(1000 * 1024);
  return Readable.from(
    (function* () {
      for (let i = 0; i < count; i++) yield specialHeader('x', paxRecords({ [`SCHILY.xattr.user.k${i}`]: value }));
      yield rawTar([{ name: 'hello.txt', data: 'hello\n' }]);
    })(),
  );
}

/** Runs the docker CLI with `input` streamed to its stdin. */
function dockerWithStream(d: TestDaemon, args: string[], input: Readable): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { env: d.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    // The CLI may stop reading once the daemon has answered: a broken pipe here is expected.
    pipeline(input, child.stdin).catch(() => undefined);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('security: archives with endless PAX headers are refused with bounded memory', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d.stop();
  });

  it('docker load', async () => {
    const { result, growth } = await peakGrowth(d.process?.pid ?? 0, () => dockerWithStream(d, ['load'], endlessPax()));
    expect(growth).toBeLessThan(128 * MiB);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('extended headers before one entry');
  });

  it('docker import', async () => {
    const { result, growth } = await peakGrowth(d.process?.pid ?? 0, () => dockerWithStream(d, ['import', '-', 'paxbomb:1'], endlessPax()));
    expect(growth).toBeLessThan(128 * MiB);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('extended headers before one entry');
    expect((await d.docker(['image', 'inspect', 'paxbomb:1'])).code).not.toBe(0);
  });
});
