import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { buildHostsFile, parseExtraHost } from '../etc-files.js';
import { writeEtcFile, type SandboxFiles } from '../sandbox-files.js';
import type { NetworkContext, SandboxRecord, SandboxRequest } from '../types.js';

/**
 * `--network host`: no namespace of its own (the shim stays in the host's); an endpoint without address on
 * the predefined host network, the host's /etc/hosts (plus --add-host) and resolv.conf, and the hostname.
 */
export function hostSandbox(ctx: NetworkContext, files: SandboxFiles, base: SandboxRecord, req: SandboxRequest): SandboxRecord {
  const { state } = ctx;
  const sb: SandboxRecord = { ...base, mode: 'host', exposed: [] };
  const hostNet = state.findNetwork('host');
  state.addEndpoint(state.blankEndpoint(hostNet, sb.containerId));
  sb.order = [hostNet.Id];
  let hosts = '';
  try {
    hosts = readFileSync('/etc/hosts', 'utf8');
  } catch {
    hosts = buildHostsFile([], []);
  }
  const extra = sb.extraHosts.map((h) => parseExtraHost(h, '127.0.0.1'));
  if (extra.length > 0) hosts += `${extra.map((e) => `${e.ip}\t${e.names.join(' ')}`).join('\n')}\n`;
  writeEtcFile(sb.hostsPath, hosts, false);
  writeEtcFile(sb.resolvConfPath, files.resolvFor(sb, undefined, true), false);
  writeEtcFile(sb.hostnamePath, `${req.hostname || osHostname()}\n`, false);
  state.putSandbox(sb);
  ctx.events.publish('network', 'connect', hostNet.Id, { container: sb.containerId, name: 'host', type: 'host' });
  return sb;
}
