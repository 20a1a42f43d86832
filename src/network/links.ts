import { parsePortKey } from './ports/port-spec.js';

/**
 * Legacy links (`--link name:alias` on the default bridge): the environment dockerd gives the linking
 * container (libnetwork's links package): ALIAS_PORT, one ALIAS_PORT_<n>_<PROTO>{,_ADDR,_PORT,_PROTO}
 * set per exposed port of the linked container, _START/_END pairs for runs of consecutive ports,
 * ALIAS_NAME=/<parent>/<alias>, and ALIAS_ENV_<k> for its environment (HOME and PATH left out).
 */
export function legacyLinkEnv(linkName: string, childIp: string, childEnv: readonly string[], exposed: readonly string[]): string[] {
  const alias = (linkName.split('/').pop() ?? '').toUpperCase().replaceAll('-', '_');
  const ports = exposed.flatMap((k) => {
    try {
      return [parsePortKey(k)];
    } catch {
      return [];
    }
  });
  // TCP first, then by protocol name; by number within a protocol.
  ports.sort((a, b) => {
    if (a.proto === b.proto) return a.port - b.port;
    if (a.proto === 'tcp') return -1;
    if (b.proto === 'tcp') return 1;
    return a.proto < b.proto ? -1 : 1;
  });
  const env: string[] = [];
  let start = ports[0];
  let end = ports[0];
  ports.forEach((p, i) => {
    if (i === 0) env.push(`${alias}_PORT=${p.proto}://${childIp}:${p.port}`);
    const prefix = `${alias}_PORT_${p.port}_${p.proto.toUpperCase()}`;
    env.push(`${prefix}=${p.proto}://${childIp}:${p.port}`, `${prefix}_ADDR=${childIp}`, `${prefix}_PORT=${p.port}`, `${prefix}_PROTO=${p.proto}`);
    if (!start || !end) return;
    if (p.port === end.port + 1 && p.proto === start.proto) {
      end = p;
      if (i < ports.length - 1) return;
    }
    if (end !== start) {
      const sp = `${alias}_PORT_${start.port}_${start.proto.toUpperCase()}`;
      env.push(
        `${sp}_START=${start.proto}://${childIp}:${start.port}`,
        `${sp}_PORT_START=${start.port}`,
        `${sp}_END=${end.proto}://${childIp}:${end.port}`,
        `${sp}_PORT_END=${end.port}`,
      );
    }
    start = p;
    end = p;
  });
  env.push(`${alias}_NAME=${linkName}`);
  for (const kv of childEnv) {
    const eq = kv.indexOf('=');
    if (eq < 0) continue;
    const k = kv.slice(0, eq);
    if (k === 'HOME' || k === 'PATH') continue;
    env.push(`${alias}_ENV_${k}=${kv.slice(eq + 1)}`);
  }
  return env;
}
