import { describe, expect, it } from 'vitest';
import { legacyLinkEnv } from '../../../src/network/links.js';

describe('legacy link environment (dockerd links package)', () => {
  it('names the default port, every port, runs of consecutive ports, the link name and the environment', () => {
    const env = legacyLinkEnv('/web/db-1', '172.17.0.5', ['PATH=/bin', 'HOME=/root', 'A=b=c', 'NOVALUE'], ['6380/tcp', '53/udp', '6379/tcp', '8080/tcp']);
    expect(env).toEqual([
      'DB_1_PORT=tcp://172.17.0.5:6379',
      'DB_1_PORT_6379_TCP=tcp://172.17.0.5:6379',
      'DB_1_PORT_6379_TCP_ADDR=172.17.0.5',
      'DB_1_PORT_6379_TCP_PORT=6379',
      'DB_1_PORT_6379_TCP_PROTO=tcp',
      'DB_1_PORT_6380_TCP=tcp://172.17.0.5:6380',
      'DB_1_PORT_6380_TCP_ADDR=172.17.0.5',
      'DB_1_PORT_6380_TCP_PORT=6380',
      'DB_1_PORT_6380_TCP_PROTO=tcp',
      'DB_1_PORT_8080_TCP=tcp://172.17.0.5:8080',
      'DB_1_PORT_8080_TCP_ADDR=172.17.0.5',
      'DB_1_PORT_8080_TCP_PORT=8080',
      'DB_1_PORT_8080_TCP_PROTO=tcp',
      // A run is closed when the next port breaks it (after that port's own variables), as dockerd does.
      'DB_1_PORT_6379_TCP_START=tcp://172.17.0.5:6379',
      'DB_1_PORT_6379_TCP_PORT_START=6379',
      'DB_1_PORT_6379_TCP_END=tcp://172.17.0.5:6380',
      'DB_1_PORT_6379_TCP_PORT_END=6380',
      'DB_1_PORT_53_UDP=udp://172.17.0.5:53',
      'DB_1_PORT_53_UDP_ADDR=172.17.0.5',
      'DB_1_PORT_53_UDP_PORT=53',
      'DB_1_PORT_53_UDP_PROTO=udp',
      'DB_1_NAME=/web/db-1',
      'DB_1_ENV_A=b=c',
    ]);
  });

  it('has only the name without exposed ports or environment', () => {
    expect(legacyLinkEnv('/app/cache', '10.0.0.2', [], [])).toEqual(['CACHE_NAME=/app/cache']);
  });
});
