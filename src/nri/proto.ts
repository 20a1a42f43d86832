import type * as ProtoLoader from '@grpc/proto-loader';
import { packagePath } from '../package-root.js';

/** The NRI interface specification (github.com/containerd/nri, version in the file name). */
export const NRI_PROTO = packagePath('api-spec', 'nri-api-v0.12.2.proto');
export const NRI_VERSION = 'v0.12.2';
export const NRI_PACKAGE = 'nri.pkg.api.v1alpha1';
export const PLUGIN_SERVICE = `${NRI_PACKAGE}.Plugin`;
export const RUNTIME_SERVICE = `${NRI_PACKAGE}.Runtime`;

/** A decoded NRI message: field names as the .proto spells them, int64s as strings, enums as names. */
export type NriMsg = Record<string, unknown>;

export interface MethodCodec {
  encodeRequest(m: NriMsg): Buffer;
  decodeRequest(b: Buffer): NriMsg;
  encodeResponse(m: NriMsg): Buffer;
  decodeResponse(b: Buffer): NriMsg;
}

export interface NriCodecs {
  plugin(method: string): MethodCodec;
  runtime(method: string): MethodCodec;
}

let loaded: NriCodecs | undefined;

/**
 * Loads the message codecs of NRI's two services once from the .proto (the method definitions of
 * @grpc/proto-loader carry protobufjs serializers; gRPC itself is not used). Loaded when the first plugin
 * connects: a daemon without plugins keeps protobufjs out of memory.
 */
export async function loadNriCodecs(): Promise<NriCodecs> {
  if (loaded) return loaded;
  const protoLoader = await import('@grpc/proto-loader');
  const def = protoLoader.loadSync(NRI_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const codec = (service: string) => (method: string): MethodCodec => {
    const svc = def[service] as Record<string, ProtoLoader.MethodDefinition<NriMsg, NriMsg>> | undefined;
    const m = svc?.[method];
    if (!m) throw new Error(`NRI ${service} has no method ${method}`);
    return {
      encodeRequest: (x) => m.requestSerialize(x),
      decodeRequest: (b) => m.requestDeserialize(b),
      encodeResponse: (x) => m.responseSerialize(x),
      decodeResponse: (b) => m.responseDeserialize(b),
    };
  };
  loaded = { plugin: codec(PLUGIN_SERVICE), runtime: codec(RUNTIME_SERVICE) };
  return loaded;
}

/** The codecs, once loadNriCodecs has run (a plugin connection exists only after it has). */
export function nriCodecs(): NriCodecs {
  if (!loaded) throw new Error('NRI codecs not loaded');
  return loaded;
}
