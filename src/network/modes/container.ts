import { ConflictError, InvalidParameterError, NotFoundError } from '../../errors.js';
import type { ContainerDirectory, NetworkContext, SandboxRecord, SandboxRequest } from '../types.js';

/**
 * `--network container:<x>`: the sandbox shares the namespace and the hosts/resolv.conf/hostname files of
 * x (of the container x itself shares with, when x is a container: sandbox too). Nothing is plumbed.
 */
export function containerSandbox(
  ctx: NetworkContext,
  base: SandboxRecord,
  targetRef: string,
  req: SandboxRequest,
  directory: ContainerDirectory | undefined,
): SandboxRecord {
  const { state } = ctx;
  const target = state.findSandbox(targetRef);
  if (!target) {
    if (directory?.find(targetRef)) throw new ConflictError(`cannot join network namespace of a non running container: ${targetRef}`);
    throw new NotFoundError(`No such container: ${targetRef}`);
  }
  if (req.portBindings && Object.keys(req.portBindings).length > 0) {
    throw new InvalidParameterError('conflicting options: port publishing and the container type network mode');
  }
  const owner = target.mode === 'container' && target.sharedWith ? state.sandboxes.get(target.sharedWith) ?? target : target;
  const sb: SandboxRecord = {
    ...base, mode: 'container', sharedWith: owner.containerId, netnsPath: owner.netnsPath,
    hostsPath: owner.hostsPath, resolvConfPath: owner.resolvConfPath, hostnamePath: owner.hostnamePath, exposed: [],
  };
  state.putSandbox(sb);
  return sb;
}
