import { spawn } from 'node:child_process';
import type { Logger } from './logger.js';
import { BerthError } from '../errors.js';

export interface ToolResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs an external tool (ip, iptables, nft, ...), logging its command line.
 * A non-zero exit becomes an error carrying stderr; a missing binary names the tool.
 */
export function runTool(
  log: Logger,
  cmd: string,
  args: readonly string[],
  options: { input?: string | Buffer; allowFailure?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<ToolResult & { code: number }> {
  log.debug({ cmd, args }, 'run tool');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(options.env ? { env: options.env } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        new BerthError(
          e.code === 'ENOENT' ? `${cmd} is required but was not found on PATH` : `${cmd}: ${e.message}`,
          { cause: e },
        ),
      );
    });
    child.on('close', (code, signal) => {
      const result = {
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        code: code ?? 128,
      };
      if (code === 0 || options.allowFailure) {
        resolve(result);
        return;
      }
      const why = signal ? `killed by ${signal}` : `exit status ${code}`;
      reject(new BerthError(`${cmd} ${args.join(' ')}: ${why}: ${result.stderr.trim()}`));
    });
    child.stdin.end(options.input);
  });
}
