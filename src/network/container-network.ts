import type { PortListEntry } from './ports/port-spec.js';
import type { EndpointRequest, NetworkSettings, SandboxInfo, SandboxRequest } from './types.js';

/**
 * What the containers service needs from the network layer (NetworkService implements it). All async
 * methods throw Berth's typed errors.
 */
export interface ContainerNetwork {
  /**
   * Before the container starts. Prepares its network namespace (netnsPath, a bind-mounted nsfs file the
   * shim setns()es into; undefined for host mode; the target's path for container:<x>), writes hosts /
   * resolv.conf / hostname into req.filesDir (for container:<x> the target's files are returned), attaches
   * endpoints, publishes ports. Port conflicts throw dockerd's "Bind for 0.0.0.0:P failed: port is
   * already allocated".
   */
  createSandbox(containerId: string, req: SandboxRequest): Promise<SandboxInfo>;
  /**
   * After the container stopped: addresses, proxies, DNAT rules freed before it returns; veths and netns
   * are removed in the background, and every later call that changes state waits for that. Idempotent.
   */
  releaseSandbox(containerId: string): Promise<void>;
  /** Resolves once no released sandbox has devices left. */
  settled(): Promise<void>;
  /** Resolves once no released sandbox still has its namespace mounted. */
  unmounted(): Promise<void>;
  /** NetworkSettings while the sandbox exists (inspect of a running container). */
  settings(containerId: string): NetworkSettings | undefined;
  /** NetworkSettings of a container that is not running: its networks with empty addresses. */
  stoppedSettings(endpoints: Record<string, EndpointRequest>, mode: string): NetworkSettings;
  /** The Ports column of docker ps. */
  portList(containerId: string): PortListEntry[];
  /** Rename: DNS and inspect follow the new name. */
  setContainerName(containerId: string, name: string): void;
  /** Removes a legacy link (docker rm --link) of a running container from its hosts file. */
  removeLink(containerId: string, alias: string): Promise<void>;
}
