import type { FastifyInstance } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { type Query, qBool, qString } from '../query.js';
import { effectiveVersion, versionAtLeast } from '../api-version.js';
import { Filters } from '../../util/filters.js';
import { InvalidParameterError } from '../../errors.js';
import { VOLUME_LIST_FILTERS, VOLUME_PRUNE_FILTERS } from '../../volumes/volume-service.js';

/** Body of POST /volumes/create (Docker's VolumeCreateOptions). */
interface VolumeCreateBody {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  ClusterVolumeSpec?: unknown;
}

function stringMap(field: string, v: unknown): Record<string, string> | null | undefined {
  if (v === undefined || v === null) return v;
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new InvalidParameterError(`json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go struct field CreateOptions.${field} of type map[string]string`);
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val !== 'string') {
      throw new InvalidParameterError(`json: cannot unmarshal ${typeof val} into Go struct field CreateOptions.${field} of type string`);
    }
    out[k] = val;
  }
  return out;
}

function parseCreateBody(body: unknown): VolumeCreateBody {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidParameterError('json: cannot unmarshal into Go value of type volume.CreateOptions');
  }
  const b = body as Record<string, unknown>;
  for (const f of ['Name', 'Driver'] as const) {
    if (b[f] !== undefined && b[f] !== null && typeof b[f] !== 'string') {
      throw new InvalidParameterError(`json: cannot unmarshal ${typeof b[f]} into Go struct field CreateOptions.${f} of type string`);
    }
  }
  return {
    Name: (b.Name as string | null | undefined) ?? undefined,
    Driver: (b.Driver as string | null | undefined) ?? undefined,
    DriverOpts: stringMap('DriverOpts', b.DriverOpts),
    Labels: stringMap('Labels', b.Labels),
  };
}

export async function volumeRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { volumes } = services;
  app.get<{ Querystring: Query }>('/volumes', async (request) => {
    const filters = Filters.parse(qString(request.query, 'filters'), VOLUME_LIST_FILTERS);
    return volumes.list(filters);
  });

  app.post('/volumes/create', async (request, reply) => {
    const body = parseCreateBody(request.body);
    const { volume } = await volumes.create({
      name: body.Name,
      driver: body.Driver,
      driverOpts: body.DriverOpts,
      labels: body.Labels,
    });
    void reply.code(201);
    return volume;
  });

  app.post<{ Querystring: Query }>('/volumes/prune', async (request) => {
    const raw = qString(request.query, 'filters');
    let filters = Filters.parse(raw, VOLUME_PRUNE_FILTERS);
    // API 1.42 made prune consider anonymous volumes only; older clients keep pruning all of them.
    if (!versionAtLeast(effectiveVersion(request.apiVersion), '1.42') && !filters.has('all')) {
      const json = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      filters = Filters.parse(JSON.stringify({ ...json, all: { true: true } }), VOLUME_PRUNE_FILTERS);
    }
    return volumes.prune(filters);
  });

  app.get<{ Params: { name: string } }>('/volumes/:name', async (request) => volumes.get(request.params.name));

  app.delete<{ Params: { name: string }; Querystring: Query }>('/volumes/:name', async (request, reply) => {
    await volumes.remove(request.params.name, { force: qBool(request.query, 'force') });
    void reply.code(204).send();
  });
}
