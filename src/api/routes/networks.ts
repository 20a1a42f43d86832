import type { FastifyInstance } from 'fastify';
import type { ApiRouteOptions } from './index.js';
import { type Query, qString } from '../query.js';
import { InvalidParameterError } from '../../errors.js';
import type { EndpointRequest, NetworkCreateBody } from '../../network/network-service.js';

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidParameterError(`json: cannot unmarshal into Go value of type ${what}`);
  }
  return body as Record<string, unknown>;
}

function strings(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new InvalidParameterError(`json: cannot unmarshal into Go struct field EndpointSettings.${field} of type []string`);
  }
  return v as string[];
}

/** EndpointSettings of a connect body → what the network service takes. */
export function endpointRequestFrom(v: unknown): EndpointRequest {
  const e = asObject(v, 'network.EndpointSettings');
  const ipam = asObject(e.IPAMConfig, 'network.EndpointIPAMConfig');
  const out: EndpointRequest = {};
  const aliases = strings(e.Aliases, 'Aliases');
  if (aliases) out.aliases = aliases;
  const links = strings(e.Links, 'Links');
  if (links) out.links = links;
  if (typeof ipam.IPv4Address === 'string' && ipam.IPv4Address !== '') out.ipv4Address = ipam.IPv4Address;
  if (typeof ipam.IPv6Address === 'string' && ipam.IPv6Address !== '') out.ipv6Address = ipam.IPv6Address;
  const linkLocal = strings(ipam.LinkLocalIPs, 'LinkLocalIPs');
  if (linkLocal && linkLocal.length > 0) out.linkLocalIps = linkLocal;
  if (typeof e.MacAddress === 'string' && e.MacAddress !== '') out.macAddress = e.MacAddress;
  if (e.DriverOpts !== undefined && e.DriverOpts !== null) {
    const opts = asObject(e.DriverOpts, 'map[string]string');
    out.driverOpts = Object.fromEntries(Object.entries(opts).map(([k, x]) => [k, String(x)]));
  }
  return out;
}

export async function networkRoutes(app: FastifyInstance, { services }: ApiRouteOptions): Promise<void> {
  const { networks } = services;
  app.get<{ Querystring: Query }>('/networks', async (request) => networks.list(qString(request.query, 'filters')));

  app.get('/networks/:id', async (request) => networks.inspect((request.params as { id: string }).id));

  app.post('/networks/create', async (request, reply) => {
    const body = asObject(request.body, 'network.CreateRequest') as NetworkCreateBody;
    const created = await networks.create(body);
    void reply.code(201);
    return created;
  });

  app.delete('/networks/:id', async (request, reply) => {
    await networks.remove((request.params as { id: string }).id);
    void reply.code(204).send();
  });

  app.post('/networks/:id/connect', async (request, reply) => {
    const body = asObject(request.body, 'network.ConnectOptions');
    if (typeof body.Container !== 'string' || body.Container === '') throw new InvalidParameterError('container is required');
    await networks.connect(body.Container, (request.params as { id: string }).id, endpointRequestFrom(body.EndpointConfig));
    void reply.code(200).send();
  });

  app.post('/networks/:id/disconnect', async (request, reply) => {
    const body = asObject(request.body, 'network.DisconnectOptions');
    if (typeof body.Container !== 'string' || body.Container === '') throw new InvalidParameterError('container is required');
    await networks.disconnect(body.Container, (request.params as { id: string }).id, body.Force === true);
    void reply.code(200).send();
  });

  app.post<{ Querystring: Query }>('/networks/prune', async (request) => networks.prune(qString(request.query, 'filters')));
}
