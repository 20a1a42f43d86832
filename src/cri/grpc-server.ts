import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BerthError, errorMessage } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { loadCriServices } from './proto.js';

/** A unary CRI method: request message in, response message out. */
export type Unary = (req: Record<string, unknown>) => Promise<Record<string, unknown>>;
/** A server-streaming CRI method: writes messages until the call is cancelled or the stream ends. */
export type ServerStream = (req: Record<string, unknown>, call: grpc.ServerWritableStream<Record<string, unknown>, Record<string, unknown>>) => Promise<void>;

export interface CriHandlers {
  runtime: Record<string, Unary | { stream: ServerStream }>;
  image: Record<string, Unary | { stream: ServerStream }>;
}

const STATUS_BY_HTTP: Record<number, grpc.status> = {
  400: grpc.status.INVALID_ARGUMENT,
  401: grpc.status.UNAUTHENTICATED,
  403: grpc.status.PERMISSION_DENIED,
  404: grpc.status.NOT_FOUND,
  409: grpc.status.FAILED_PRECONDITION,
  501: grpc.status.UNIMPLEMENTED,
  503: grpc.status.UNAVAILABLE,
  504: grpc.status.DEADLINE_EXCEEDED,
};

/** Berth's error family → gRPC status codes (everything unexpected is UNKNOWN, as containerd's plain errors are). */
export function grpcStatusOf(e: unknown): grpc.status {
  if (e instanceof BerthError) return STATUS_BY_HTTP[e.statusCode] ?? grpc.status.UNKNOWN;
  return grpc.status.UNKNOWN;
}

function implementation(def: grpc.ServiceDefinition, handlers: Record<string, Unary | { stream: ServerStream }>, log: Logger): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(def)) {
    const h = handlers[name];
    if (method.responseStream) {
      impl[name] = (call: grpc.ServerWritableStream<Record<string, unknown>, Record<string, unknown>>) => {
        if (!h || typeof h === 'function') {
          call.destroy(Object.assign(new Error(`method ${name} not implemented`), { code: grpc.status.UNIMPLEMENTED }));
          return;
        }
        h.stream(call.request, call).then(
          () => call.end(),
          (e: unknown) => {
            log.debug({ method: name, err: errorMessage(e) }, 'CRI stream failed');
            call.destroy(Object.assign(new Error(errorMessage(e)), { code: grpcStatusOf(e) }));
          },
        );
      };
      continue;
    }
    impl[name] = (call: grpc.ServerUnaryCall<Record<string, unknown>, Record<string, unknown>>, callback: grpc.sendUnaryData<Record<string, unknown>>) => {
      if (!h || typeof h !== 'function') {
        callback({ code: grpc.status.UNIMPLEMENTED, details: `method ${name} not implemented` });
        return;
      }
      const t0 = performance.now();
      h(call.request).then(
        (res) => {
          log.debug({ method: name, ms: Math.round(performance.now() - t0) }, 'CRI call');
          callback(null, res);
        },
        (e: unknown) => {
          const code = grpcStatusOf(e);
          if (code === grpc.status.UNKNOWN) log.warn({ method: name, err: e }, 'CRI call failed');
          else log.debug({ method: name, err: errorMessage(e) }, 'CRI call refused');
          callback({ code, details: errorMessage(e) });
        },
      );
    };
  }
  return impl;
}

/** The CRI gRPC server on a unix socket (unix:///run/berth/cri.sock), mode 0660 like the Docker socket. */
export class CriGrpcServer {
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024, 'grpc.max_send_message_length': 16 * 1024 * 1024 });

  constructor(handlers: CriHandlers, private readonly log: Logger) {
    const defs = loadCriServices();
    this.server.addService(defs.runtime, implementation(defs.runtime, handlers.runtime, log));
    this.server.addService(defs.image, implementation(defs.image, handlers.image, log));
  }

  async listen(endpoint: string): Promise<void> {
    if (!endpoint.startsWith('unix://')) throw new BerthError(`CRI endpoint must be unix://<path>, got "${endpoint}"`);
    const path = endpoint.slice('unix://'.length);
    mkdirSync(dirname(path), { recursive: true, mode: 0o711 });
    rmSync(path, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
    chmodSync(path, 0o660);
    this.log.info({ socket: path }, 'CRI server listening');
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
