import * as grpc from '@grpc/grpc-js';
import { BerthError, ConflictError, InvalidParameterError, errorMessage } from '../errors.js';
import type { ContainerService } from '../containers/container-service.js';
import type { ContainerOps } from '../containers/container-ops.js';
import type { ExecService } from '../containers/exec-service.js';
import type { OutputChunk } from '../runtime/executor.js';
import type { EventBus } from '../events/event-bus.js';
import type { ContainerView } from '../containers/types.js';
import { BERTH_VERSION } from '../version.js';
import { recursiveReadOnlySupported } from '../volumes/container-mounts.js';
import type { Logger } from '../util/logger.js';
import type { CniManager } from './cni.js';
import { containerData, criState, type CriContainers } from './containers.js';
import { msg, num, str, strList, type Msg } from './messages.js';
import { CRI_API_VERSION } from './proto.js';
import { userNamespacesSupported } from './pod-userns.js';
import type { SandboxService } from './sandboxes.js';
import { nriResources, type CriNri } from './nri-hooks.js';
import type { CriStats } from './stats.js';
import { metricDescriptors, type CriMetrics } from './metrics.js';
import type { ServerStream, Unary } from './grpc-server.js';
import { sendInBatches } from './list-stream.js';

/** A deadline the runtime enforced itself (ExecSync timeout): gRPC DEADLINE_EXCEEDED, as containerd answers. */
export class DeadlineError extends BerthError {
  override readonly statusCode = 504;
}

const EXEC_SYNC_MAX_OUTPUT = 16 * 1024 * 1024;

export interface RuntimeDeps {
  containers: ContainerService;
  containerOps: ContainerOps;
  execs: ExecService;
  events: EventBus;
  cni: CniManager;
  sandboxes: SandboxService;
  criContainers: CriContainers;
  nri: CriNri;
  stats: CriStats;
  metrics: CriMetrics;
  streamUrl: (kind: 'exec' | 'attach' | 'portforward', req: Msg) => Promise<string>;
  log: Logger;
}

/** runtime.v1.RuntimeService: the handler table the gRPC server serves. */
export function runtimeHandlers(d: RuntimeDeps): Record<string, Unary | { stream: ServerStream }> {
  const { sandboxes, criContainers: ctrs } = d;
  // The List*/Stream* pairs share these: the same items, the same filters.
  const containerStats = async (req: Msg): Promise<Msg[]> => {
    // ContainerStatsFilter has no state: the running containers it selects
    const out: Msg[] = [];
    for (const c of ctrs.select(req.filter)) if (criState(c) === 'CONTAINER_RUNNING') out.push(await d.stats.container(c));
    return out;
  };
  const podStats = async (req: Msg): Promise<Msg[]> => {
    const out: Msg[] = [];
    for (const sb of sandboxes.select(req.filter)) if (sb.state.Running) out.push(await d.stats.sandbox(sb, ctrs.inSandbox(sb.id)));
    return out;
  };
  const podMetrics = async (): Promise<Msg[]> => {
    const out: Msg[] = [];
    for (const sb of sandboxes.list()) if (sb.state.Running) out.push(await d.metrics.pod(sb, ctrs.inSandbox(sb.id)));
    return out;
  };
  return {
    Version: async () => ({ version: '0.1.0', runtime_name: 'berth', runtime_version: BERTH_VERSION, runtime_api_version: CRI_API_VERSION }),

    Status: async (req) => {
      const net = await d.cni.status();
      const info: Record<string, string> = {};
      if (req.verbose === true) info.config = JSON.stringify({ cniConfDir: d.cni.confDir, runtime: 'berth', version: BERTH_VERSION });
      return {
        status: {
          conditions: [
            { type: 'RuntimeReady', status: true, reason: '', message: '' },
            { type: 'NetworkReady', status: net.ready, reason: net.reason, message: net.message },
          ],
        },
        info,
        runtime_handlers: [{ name: '', features: { recursive_read_only_mounts: recursiveReadOnlySupported(), user_namespaces: userNamespacesSupported() } }],
        features: { supplemental_groups_policy: true },
      };
    },

    RuntimeConfig: async () => ({ linux: { cgroup_driver: 'CGROUPFS' } }),
    UpdateRuntimeConfig: async () => ({}),

    RunPodSandbox: (req) => sandboxes.run(req),
    StopPodSandbox: async (req) => {
      await sandboxes.stop(str(req.pod_sandbox_id), (id) => ctrs.stopAll(id));
      return {};
    },
    RemovePodSandbox: async (req) => {
      await sandboxes.remove(str(req.pod_sandbox_id), (id) => ctrs.removeAll(id));
      return {};
    },
    PodSandboxStatus: async (req) => {
      const sb = sandboxes.get(str(req.pod_sandbox_id));
      const out = sandboxes.status(sb, req.verbose === true);
      out.containers_statuses = ctrs.inSandbox(sb.id).map((c) => msg(ctrs.status({ container_id: c.id }).status));
      return out;
    },
    // The kubelet calls it after it resized the pod's cgroup (the cgroup_parent it owns; Berth makes no pod-level
    // cgroup of its own to resize): as containerd, the pod's resources are recorded for NRI's view of the pod.
    UpdatePodSandboxResources: async (req) => {
      const sb = sandboxes.get(str(req.pod_sandbox_id));
      d.containers.setCriData(sb.id, { overhead: req.overhead ? msg(req.overhead) : undefined, resources: req.resources ? msg(req.resources) : undefined });
      return {};
    },
    ListPodSandbox: (req) => sandboxes.listSandboxes(req),
    StreamPodSandboxes: { stream: async (req, call) => sendInBatches(call, 'pod_sandboxes', (await sandboxes.listSandboxes(req)).items as Msg[]) },

    CreateContainer: (req) => ctrs.create(req),
    StartContainer: (req) => ctrs.start(req),
    StopContainer: (req) => ctrs.stop(req),
    RemoveContainer: (req) => ctrs.remove(req),
    ListContainers: (req) => ctrs.listContainers(req),
    StreamContainers: { stream: async (req, call) => sendInBatches(call, 'containers', (await ctrs.listContainers(req)).containers as Msg[]) },
    ContainerStatus: async (req) => ctrs.status(req),

    UpdateContainerResources: async (req) => {
      const c = ctrs.get(str(req.container_id));
      const r = msg(req.linux);
      const body: Record<string, unknown> = {};
      if (num(r.cpu_period) > 0) body.CpuPeriod = num(r.cpu_period);
      if (num(r.cpu_quota) > 0) body.CpuQuota = num(r.cpu_quota);
      if (num(r.cpu_shares) > 0) body.CpuShares = num(r.cpu_shares);
      if (num(r.memory_limit_in_bytes) > 0) body.Memory = num(r.memory_limit_in_bytes);
      if (num(r.memory_swap_limit_in_bytes) > 0) body.MemorySwap = num(r.memory_swap_limit_in_bytes);
      if (str(r.cpuset_cpus) !== '') body.CpusetCpus = str(r.cpuset_cpus);
      if (str(r.cpuset_mems) !== '') body.CpusetMems = str(r.cpuset_mems);
      await d.nri.updateContainer(c, nriResources(r));
      await d.containerOps.update(c.id, body as Parameters<ContainerOps['update']>[1], 'cri');
      await d.nri.postUpdateContainer(ctrs.get(c.id));
      return {};
    },

    ReopenContainerLog: async (req) => {
      const c = ctrs.get(str(req.container_id));
      if (criState(c) !== 'CONTAINER_RUNNING') throw new ConflictError(`container ${c.id} is not running`);
      await d.containers.reopenLog(c.id);
      return {};
    },

    ExecSync: async (req) => {
      const c = ctrs.get(str(req.container_id));
      const cmd = strList(req.cmd);
      if (cmd.length === 0) throw new InvalidParameterError('cmd must not be empty');
      const execId = d.execs.create(c.id, { Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false });
      const { handle } = await d.execs.start(execId);
      const timeout = num(req.timeout);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let timedOut = false;
      const timer = timeout > 0 ? setTimeout(() => {
        timedOut = true;
        void handle.kill(9).catch(() => undefined);
      }, timeout * 1000) : undefined;
      try {
        for await (const chunk of handle.output as AsyncIterable<OutputChunk>) {
          size += chunk.data.length;
          if (size > EXEC_SYNC_MAX_OUTPUT) continue; // keep draining, drop the excess
          (chunk.stream === 'stderr' ? err : out).push(chunk.data);
        }
        const st = await handle.exit;
        if (timedOut) throw new DeadlineError(`command ${JSON.stringify(cmd.join(' '))} timed out after ${timeout}s`);
        return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), exit_code: st.exitCode };
      } finally {
        if (timer) clearTimeout(timer);
      }
    },

    Exec: async (req) => {
      const c = ctrs.get(str(req.container_id));
      if (criState(c) !== 'CONTAINER_RUNNING') throw new ConflictError(`container ${c.id} is not running`);
      if (strList(req.cmd).length === 0) throw new InvalidParameterError('cmd must not be empty');
      if (req.stdout !== true && req.stderr !== true && req.stdin !== true) throw new InvalidParameterError('one of stdin, stdout, or stderr must be set');
      return { url: await d.streamUrl('exec', req) };
    },
    Attach: async (req) => {
      const c = ctrs.get(str(req.container_id));
      if (criState(c) !== 'CONTAINER_RUNNING') throw new ConflictError(`container ${c.id} is not running`);
      return { url: await d.streamUrl('attach', req) };
    },
    PortForward: async (req) => {
      const sb = sandboxes.get(str(req.pod_sandbox_id));
      if (!sb.state.Running) throw new ConflictError(`pod sandbox ${sb.id} is not ready`);
      return { url: await d.streamUrl('portforward', req) };
    },

    ContainerStats: async (req) => ({ stats: await d.stats.container(ctrs.get(str(req.container_id))) }),
    ListContainerStats: async (req) => ({ stats: await containerStats(req) }),
    StreamContainerStats: { stream: async (req, call) => sendInBatches(call, 'container_stats', await containerStats(req)) },
    PodSandboxStats: async (req) => {
      const sb = sandboxes.get(str(req.pod_sandbox_id));
      return { stats: await d.stats.sandbox(sb, ctrs.inSandbox(sb.id)) };
    },
    ListMetricDescriptors: async () => ({ descriptors: metricDescriptors(d.metrics.hasHugetlb()) }),
    ListPodSandboxMetrics: async () => ({ pod_metrics: await podMetrics() }),
    StreamPodSandboxMetrics: { stream: async (_req, call) => sendInBatches(call, 'pod_sandbox_metrics', await podMetrics()) },
    ListPodSandboxStats: async (req) => ({ stats: await podStats(req) }),
    StreamPodSandboxStats: { stream: async (req, call) => sendInBatches(call, 'pod_sandbox_stats', await podStats(req)) },

    GetContainerEvents: {
      stream: (_req, call) => containerEvents(d, call),
    },
  };
}

const EVENT_TYPES: Record<string, string> = {
  create: 'CONTAINER_CREATED_EVENT',
  start: 'CONTAINER_STARTED_EVENT',
  die: 'CONTAINER_STOPPED_EVENT',
  destroy: 'CONTAINER_DELETED_EVENT',
};

/** GetContainerEvents: container lifecycle of CRI containers (and sandboxes) as the kubelet's evented PLEG reads it. */
function containerEvents(d: RuntimeDeps, call: grpc.ServerWritableStream<Record<string, unknown>, Record<string, unknown>>): Promise<void> {
  return new Promise((resolve) => {
    const last = new Map<string, ContainerView>();
    const unsubscribe = d.events.subscribe((e) => {
      if (e.Type !== 'container') return;
      const type = EVENT_TYPES[e.Action];
      if (!type) return;
      const c = d.containers.find(e.Actor.ID) ?? last.get(e.Actor.ID);
      if (!c?.cri) return;
      last.set(c.id, c);
      if (e.Action === 'destroy') last.delete(c.id);
      try {
        if (c.cri.kind === 'sandbox') {
          const sb = d.sandboxes.status(c, false);
          call.write({ container_id: c.id, container_event_type: type, created_at: String(e.timeNano), pod_sandbox_status: sb.status, containers_statuses: [] });
        } else {
          const sbId = containerData(c).sandboxId;
          const sb = d.sandboxes.find(sbId);
          const status = e.Action === 'destroy' ? [] : [msg(d.criContainers.status({ container_id: c.id }).status)];
          call.write({
            container_id: c.id,
            container_event_type: type,
            created_at: String(e.timeNano),
            ...(sb ? { pod_sandbox_status: d.sandboxes.status(sb, false).status } : {}),
            containers_statuses: status,
          });
        }
      } catch (err) {
        d.log.debug({ err: errorMessage(err) }, 'CRI event not sent');
      }
    });
    const done = (): void => {
      unsubscribe();
      resolve();
    };
    call.on('cancelled', done);
    call.on('close', done);
    call.on('error', done);
  });
}
