import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packagePath } from '../package-root.js';

/** The CRI interface specification Berth serves (k8s.io/cri-api, version in the file name). */
export const CRI_PROTO = packagePath('api-spec', 'cri-api-v0.37.0.proto');
export const CRI_API_VERSION = 'v1';

export interface CriServices {
  runtime: grpc.ServiceDefinition;
  image: grpc.ServiceDefinition;
}

/**
 * Loads runtime.v1's services. Field names stay as the .proto spells them (snake_case), int64s travel as
 * strings (nanosecond timestamps do not fit a double), enums as their names.
 */
export function loadCriServices(): CriServices {
  const def = protoLoader.loadSync(CRI_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: { service: grpc.ServiceDefinition }; ImageService: { service: grpc.ServiceDefinition } } };
  };
  return { runtime: pkg.runtime.v1.RuntimeService.service, image: pkg.runtime.v1.ImageService.service };
}
