import type { FastifyInstance } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { type Query, qStrings } from '../query.js';
import { effectiveVersion, versionAtLeast } from '../api-version.js';
import { InvalidParameterError } from '../../errors.js';
import type { DiskUsageObject } from '../../volumes/disk-usage.js';

const TYPES: readonly DiskUsageObject[] = ['container', 'image', 'volume', 'build-cache'];

export async function systemDfRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { diskUsage } = services;
  app.get<{ Querystring: Query }>('/system/df', async (request) => {
    const typeParams = qStrings(request.query, 'type');
    let types: Set<DiskUsageObject> | undefined;
    if (typeParams.length > 0 && versionAtLeast(effectiveVersion(request.apiVersion), '1.42')) {
      types = new Set();
      for (const t of typeParams) {
        if (!(TYPES as readonly string[]).includes(t)) throw new InvalidParameterError(`unknown object type: ${t}`);
        types.add(t as DiskUsageObject);
      }
    }
    return diskUsage.usage(types);
  });
}
