import type { Db } from './database.js';

/**
 * Networks, their endpoints (one per container and network: the persisted IPAM allocations) and
 * network sandboxes (one per container with networking prepared by berthd). Bodies are JSON
 * written and read only by the network service, which validates their shape.
 */

export interface NetworkRow {
  id: string;
  name: string;
  body: string;
}

export interface EndpointRow {
  network_id: string;
  container_id: string;
  ip: string;
  body: string;
}

export interface SandboxRow {
  container_id: string;
  body: string;
}

export class NetworkRepo {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      listNetworks: db.prepare<[], NetworkRow>('SELECT id, name, body FROM networks ORDER BY name'),
      insertNetwork: db.prepare<[string, string, string]>('INSERT INTO networks (id, name, body) VALUES (?, ?, ?)'),
      updateNetwork: db.prepare<[string, string, string]>('UPDATE networks SET name = ?, body = ? WHERE id = ?'),
      deleteNetwork: db.prepare<[string]>('DELETE FROM networks WHERE id = ?'),
      listEndpoints: db.prepare<[], EndpointRow>('SELECT network_id, container_id, ip, body FROM network_endpoints'),
      insertEndpoint: db.prepare<[string, string, string, string]>(
        'INSERT INTO network_endpoints (network_id, container_id, ip, body) VALUES (?, ?, ?, ?)',
      ),
      updateEndpoint: db.prepare<[string, string, string]>(
        'UPDATE network_endpoints SET body = ? WHERE network_id = ? AND container_id = ?',
      ),
      deleteEndpoint: db.prepare<[string, string]>('DELETE FROM network_endpoints WHERE network_id = ? AND container_id = ?'),
      listSandboxes: db.prepare<[], SandboxRow>('SELECT container_id, body FROM network_sandboxes'),
      putSandbox: db.prepare<[string, string]>(
        'INSERT INTO network_sandboxes (container_id, body) VALUES (?, ?) ON CONFLICT(container_id) DO UPDATE SET body = excluded.body',
      ),
      deleteSandbox: db.prepare<[string]>('DELETE FROM network_sandboxes WHERE container_id = ?'),
    };
  }

  listNetworks(): NetworkRow[] {
    return this.s.listNetworks.all();
  }

  insertNetwork(id: string, name: string, body: string): void {
    this.s.insertNetwork.run(id, name, body);
  }

  updateNetwork(id: string, name: string, body: string): void {
    this.s.updateNetwork.run(name, body, id);
  }

  deleteNetwork(id: string): void {
    this.s.deleteNetwork.run(id);
  }

  listEndpoints(): EndpointRow[] {
    return this.s.listEndpoints.all();
  }

  insertEndpoint(networkId: string, containerId: string, ip: string, body: string): void {
    this.s.insertEndpoint.run(networkId, containerId, ip, body);
  }

  updateEndpoint(networkId: string, containerId: string, body: string): void {
    this.s.updateEndpoint.run(body, networkId, containerId);
  }

  deleteEndpoint(networkId: string, containerId: string): void {
    this.s.deleteEndpoint.run(networkId, containerId);
  }

  listSandboxes(): SandboxRow[] {
    return this.s.listSandboxes.all();
  }

  putSandbox(containerId: string, body: string): void {
    this.s.putSandbox.run(containerId, body);
  }

  deleteSandbox(containerId: string): void {
    this.s.deleteSandbox.run(containerId);
  }

  /** Runs fn in one transaction. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}
