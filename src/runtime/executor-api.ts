// What the runtime accepts and hands back: the options of a container's run and of an exec (an OCI spec and
// process, never Docker's shapes), the streams of a running process, and the ContainerRuntime interface the
// containers layer depends on (Executor implements it; tests fake it).

import type { Readable, Writable } from 'node:stream';
import { BerthError } from '../errors.js';
import type { RootfsSource } from './launch-plan.js';
import type { OciProcess, OciSpec } from './oci-spec.js';
import type { ExitStatus, ShimState } from './shim-client.js';

export type { ExitStatus, ShimState };

export interface ContainerCreateOptions {
  bundleDir: string;
  spec: OciSpec;
  rootfs: RootfsSource;
  logPath?: string;
  logOpts?: { maxSize?: number; maxFile?: number; compress?: boolean; attrs?: Record<string, string> };
  /** 'cri': the kubelet's log format at logPath (CRI containers); json-file otherwise. */
  logFormat?: 'json-file' | 'cri';
  tty: boolean;
  openStdin: boolean;
  stdinOnce: boolean;
  consoleSize?: { height: number; width: number };
}

export interface ExecOptions {
  process: OciProcess;
  tty: boolean;
  openStdin: boolean;
  stdinOnce?: boolean;
  consoleSize?: { height: number; width: number };
  /** Run without the container's seccomp filter (a privileged exec). */
  unconfined?: boolean;
  /** The client's socket for the shim to write the output to directly (see AttachWant.direct). */
  direct?: () => DirectOutput | undefined;
  /** Which output streams to deliver (default both). */
  stdout?: boolean;
  stderr?: boolean;
}

export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

/** The API client's own socket, for a shim to write a session's output to directly instead of through berthd. */
export interface DirectOutput {
  /** The socket's descriptor; all berthd wrote to it (the HTTP answer) has reached the kernel. */
  fd: number;
  /** In stdcopy frames; else raw (a TTY). */
  framed: boolean;
}

/** What an attach session asks for. */
export interface AttachWant {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /**
   * Asked once, as the session attaches to the shim: the client's socket when the shim may write the output to it
   * itself from then on (berthd then writes nothing more there but its end), else undefined (berthd relays).
   */
  direct?: () => DirectOutput | undefined;
}

export interface AttachHandle {
  /** Present when stdin was requested; end() closes the container's stdin if stdinOnce. */
  stdin?: Writable;
  /** objectMode stream of OutputChunk; ends when the process has exited and its output is drained. */
  output: Readable;
  /** Resolves with the exit status when the process ends while attached (undefined if detached first). */
  exited: Promise<ExitStatus | undefined>;
  close(): void;
}

export interface ExecHandle {
  execId: string;
  pid: number;
  stdin?: Writable;
  output: Readable;
  resize(height: number, width: number): Promise<void>;
  kill(signal: number): Promise<void>;
  exit: Promise<ExitStatus>;
}

/** A failure before the container's process ran (Docker maps 127/126 to 400s and exit codes). */
export class ContainerStartError extends BerthError {
  override readonly statusCode: number;
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.statusCode = exitCode === 126 || exitCode === 127 ? 400 : 500;
  }
}

/** The executor as the containers layer uses it (one container's shim, by container id). */
export interface ContainerRuntime {
  create(id: string, o: ContainerCreateOptions): Promise<{ pid: number; warnings: string[] }>;
  start(id: string): Promise<{ pid: number }>;
  attach(id: string, want: AttachWant): Promise<AttachHandle>;
  resize(id: string, height: number, width: number): Promise<void>;
  kill(id: string, signal: number, opts?: { all?: boolean }): Promise<void>;
  waitExit(id: string): Promise<ExitStatus>;
  adopt(id: string, bundleDir: string, opts?: { stdinOnce?: boolean }): Promise<'created' | 'running' | ExitStatus>;
  delete(id: string): Promise<void>;
  reopenLog(id: string): Promise<void>;
}

/**
 * The one exit status berthd makes up itself: for a run whose shim is gone without an exit record (or that could
 * not be adopted), code 255 and why.
 */
export function lostExit(error: string, pid = 0): ExitStatus {
  return { exitCode: 255, signal: 0, oomKilled: null, finishedAt: new Date().toISOString(), pid, error };
}
