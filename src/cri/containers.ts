import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { ConflictError, InvalidParameterError, NotFoundError } from '../errors.js';
import type { ContainerService } from '../containers/container-service.js';
import type { ContainerView, HostConfig } from '../containers/types.js';
import type { Logger } from '../util/logger.js';
import { nowNano } from '../util/time.js';
import { signalNumber } from '../containers/signals.js';
import { resolveUser } from '../containers/user-resolve.js';
import type { CriImageService } from './image-service.js';
import { msg, msgList, nanosOfTime, num, str, strList, strMap, text, type Msg } from './messages.js';
import { idmappedMounts } from './pod-userns.js';
import { CRI_SANDBOX_LABEL, CRI_TYPE_LABEL, dockerSafe, sandboxData, type SandboxService } from './sandboxes.js';
import { findByIdOrPrefix, selectByFilter } from './select.js';
import { redeliverWhenCaught } from './stop-signal.js';
import type { ImageVolumes, ImageVolumeSet } from './image-volumes.js';
import type { CriNri } from './nri-hooks.js';
import { newContainerId, type CreateRequest } from '../containers/create-request.js';

export interface ContainerData {
  sandboxId: string;
  metadata: Msg;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  image: string;
  createdAt: string;
  logPath: string;
  mounts: Msg[];
  /** Image volumes mounted for it (released at remove). */
  imageVolumes?: ImageVolumeSet;
  /** The identity the first process starts with (ContainerStatus.user), resolved at create. */
  user?: { uid: number; gid: number; supplemental_groups: number[] };
}

export function containerData(c: ContainerView): ContainerData {
  return (c.cri?.data ?? {}) as unknown as ContainerData;
}

const PROPAGATION: Record<string, string> = {
  PROPAGATION_PRIVATE: 'rprivate',
  PROPAGATION_HOST_TO_CONTAINER: 'rslave',
  PROPAGATION_BIDIRECTIONAL: 'rshared',
};

/** CRI's capability names come with or without CAP_; Docker's CapAdd takes either, "ALL" included. */
function caps(v: unknown): string[] {
  return strList(v).map((c) => (c.toUpperCase() === 'ALL' ? 'ALL' : c.toUpperCase().replace(/^CAP_/, '')));
}

/** CRI state of a Berth container. */
export function criState(c: ContainerView): string {
  if (c.state.Running || c.state.Restarting) return 'CONTAINER_RUNNING';
  if (c.state.Status === 'created') return 'CONTAINER_CREATED';
  return 'CONTAINER_EXITED';
}

/** The seccomp choice as SecurityOpt: null/unset means unconfined (containerd's default), as does Unconfined. */
function seccompOpt(sc: Msg): string[] {
  const s = msg(sc.seccomp);
  const type = sc.seccomp ? str(s.profile_type) : '';
  if (type === 'RuntimeDefault') return [];
  if (type === 'Localhost') {
    const ref = str(s.localhost_ref);
    if (!isAbsolute(ref)) throw new InvalidParameterError(`seccomp profile path must be absolute: "${ref}"`);
    let text: string;
    try {
      text = readFileSync(ref, 'utf8');
    } catch (e) {
      throw new InvalidParameterError(`failed to load seccomp profile "${ref}": ${(e as Error).message}`);
    }
    return [`seccomp=${text}`];
  }
  if (type === 'Unconfined') return ['seccomp=unconfined'];
  const legacy = str(sc.seccomp_profile_path);
  if (legacy === 'runtime/default' || legacy === 'docker/default') return [];
  if (legacy.startsWith('localhost/')) return seccompOpt({ seccomp: { profile_type: 'Localhost', localhost_ref: legacy.slice('localhost/'.length) } });
  return ['seccomp=unconfined'];
}

/** AppArmor: the hosts Berth runs on have no AppArmor; RuntimeDefault/Unconfined are accepted, a named profile is not. */
function checkAppArmor(sc: Msg): void {
  const a = msg(sc.apparmor);
  const type = sc.apparmor ? str(a.profile_type) : '';
  const legacy = str(sc.apparmor_profile);
  const named = type === 'Localhost' ? str(a.localhost_ref) : legacy.startsWith('localhost/') ? legacy.slice(10) : '';
  if (named !== '' && !existsSync('/sys/kernel/security/apparmor')) {
    throw new InvalidParameterError(`apparmor is not enabled on this host: cannot apply profile "${named}"`);
  }
}

/**
 * CRI containers: a CreateContainer request becomes a Docker-shaped create of the container service (one
 * lifecycle, one executor, one set of spec rules for both front doors), joined to its pod's namespaces by
 * the container: modes, logging in the CRI format at the kubelet's path.
 */
export class CriContainers {
  constructor(
    private readonly containers: ContainerService,
    private readonly sandboxes: SandboxService,
    private readonly images: CriImageService,
    private readonly imageVolumes: ImageVolumes,
    private readonly log: Logger,
    private readonly nri?: CriNri,
  ) {}

  find(id: string): ContainerView | undefined {
    return findByIdOrPrefix(this.list(), id);
  }

  get(id: string): ContainerView {
    const c = this.find(id);
    if (!c) throw new NotFoundError(`container "${id}" not found`);
    return c;
  }

  list(): ContainerView[] {
    return this.containers.all().filter((c) => c.cri?.kind === 'container');
  }

  inSandbox(sandboxId: string): ContainerView[] {
    return this.list().filter((c) => containerData(c).sandboxId === sandboxId);
  }

  async create(req: Msg): Promise<Msg> {
    const sb = this.sandboxes.get(str(req.pod_sandbox_id));
    if (!sb.state.Running) throw new ConflictError(`pod sandbox ${sb.id} is not ready`);
    const sd = sandboxData(sb);
    const config = msg(req.config);
    const md = msg(config.metadata);
    const name = str(md.name);
    if (name === '') throw new InvalidParameterError('container config must include metadata.name');
    const imageSpec = str(msg(config.image).image);
    const image = this.images.find(imageSpec);
    if (!image) throw new NotFoundError(`image "${imageSpec}" not found`);
    const linux = msg(config.linux);
    const sc = msg(linux.security_context);
    const res = msg(linux.resources);
    const nso = msg(sc.namespace_options);
    const hostNet = sd.namespaces.network === 'NODE';

    let pidMode = '';
    const pid = str(nso.pid) || 'CONTAINER';
    if (pid === 'NODE') pidMode = 'host';
    else if (pid === 'POD') pidMode = `container:${sb.id}`;
    else if (pid === 'TARGET') pidMode = `container:${this.get(str(nso.target_id)).id}`;

    let user = '';
    const runAsUser = config.linux && sc.run_as_user ? str(msg(sc.run_as_user).value) : '';
    const runAsGroup = config.linux && sc.run_as_group ? str(msg(sc.run_as_group).value) : '';
    if (runAsUser !== '') user = runAsUser;
    else if (str(sc.run_as_username) !== '') user = str(sc.run_as_username);
    if (runAsGroup !== '') {
      if (user === '') throw new InvalidParameterError('run_as_group is set without run_as_user or run_as_username');
      user = `${user}:${runAsGroup}`;
    }
    checkAppArmor(sc);

    // SupplementalGroupsPolicy (Kubernetes' semantics): Merge, the default, gives the process the groups the
    // image's /etc/group lists the user in, even when run_as_group names the primary group (Docker drops them
    // then: they are passed as added groups); Strict gives only the primary group and supplemental_groups.
    // The resulting identity is the one the container service resolves at start (same function, same files).
    const dirs = this.images.layerDirs(image);
    const effective = user !== '' ? user : (image.config.config?.User ?? '');
    const [userOnly = '', groupPart = ''] = effective.split(':', 2);
    const base = await resolveUser(dirs, userOnly);
    const supplemental = strList(sc.supplemental_groups).map(String);
    let groupAdd = supplemental;
    if (str(sc.supplemental_groups_policy) === 'Strict') {
      if (groupPart === '') user = `${userOnly === '' ? base.uid : userOnly}:${base.gid}`;
    } else {
      groupAdd = [...new Set([...base.additionalGids.filter((g) => g !== base.gid).map(String), ...supplemental])];
    }
    const identity = await resolveUser(dirs, user !== '' ? user : effective, groupAdd);

    // HostConfig.Mounts: the CRI's read-only is non-recursive unless recursive_read_only asks (Docker's default is
    // recursive); a missing host path is created, as containerd does
    const binds: Record<string, unknown>[] = [];
    const mounts = msgList(config.mounts);
    const idmapped = idmappedMounts(mounts, sb.cri?.userns);
    for (const m of mounts) {
      if (m.image) continue; // an image volume: below
      const src = str(m.host_path);
      const dst = str(m.container_path);
      if (!isAbsolute(src) || !isAbsolute(dst)) throw new InvalidParameterError(`mount paths must be absolute: "${src}" -> "${dst}"`);
      const readOnly = m.readonly === true;
      const rro = m.recursive_read_only === true;
      if (rro && !readOnly) throw new InvalidParameterError(`recursive_read_only needs readonly: ${dst}`);
      binds.push({
        Type: 'bind',
        Source: src,
        Target: dst,
        ReadOnly: readOnly,
        BindOptions: {
          Propagation: PROPAGATION[str(m.propagation)] ?? 'rprivate',
          CreateMountpoint: true,
          ...(readOnly ? (rro ? { ReadOnlyForceRecursive: true } : { ReadOnlyNonRecursive: true }) : {}),
        },
      });
    }
    const devices = msgList(config.devices).map((d) => ({
      PathOnHost: str(d.host_path),
      PathInContainer: str(d.container_path) || str(d.host_path),
      CgroupPermissions: str(d.permissions) || 'rwm',
    }));

    const privileged = sc.privileged === true;
    const masked = strList(sc.masked_paths);
    const readonlyPaths = strList(sc.readonly_paths);
    const hc: HostConfig = {
      NetworkMode: `container:${sb.id}`,
      IpcMode: sd.namespaces.ipc === 'NODE' ? 'host' : `container:${sb.id}`,
      UTSMode: hostNet ? 'host' : `container:${sb.id}`,
      PidMode: pidMode,
      Mounts: binds,
      Devices: devices,
      Privileged: privileged,
      CapAdd: caps(msg(sc.capabilities).add_capabilities),
      CapDrop: caps(msg(sc.capabilities).drop_capabilities),
      GroupAdd: groupAdd,
      ReadonlyRootfs: sc.readonly_rootfs === true,
      SecurityOpt: [...(sc.no_new_privs === true ? ['no-new-privileges'] : []), ...(privileged ? [] : seccompOpt(sc))],
      ...(masked.length > 0 ? { MaskedPaths: masked } : {}),
      ...(readonlyPaths.length > 0 ? { ReadonlyPaths: readonlyPaths } : {}),
      ...(sd.cgroupParent ? { CgroupParent: sd.cgroupParent } : {}),
      ...(num(res.cpu_period) > 0 ? { CpuPeriod: num(res.cpu_period) } : {}),
      ...(num(res.cpu_quota) > 0 ? { CpuQuota: num(res.cpu_quota) } : {}),
      ...(num(res.cpu_shares) > 0 ? { CpuShares: num(res.cpu_shares) } : {}),
      ...(num(res.memory_limit_in_bytes) > 0 ? { Memory: num(res.memory_limit_in_bytes) } : {}),
      ...(num(res.memory_swap_limit_in_bytes) > 0 ? { MemorySwap: num(res.memory_swap_limit_in_bytes) } : {}),
      ...(num(res.oom_score_adj) !== 0 ? { OomScoreAdj: num(res.oom_score_adj) } : {}),
      ...(str(res.cpuset_cpus) !== '' ? { CpusetCpus: str(res.cpuset_cpus) } : {}),
      ...(str(res.cpuset_mems) !== '' ? { CpusetMems: str(res.cpuset_mems) } : {}),
    };
    if (hc.PidMode === '') delete hc.PidMode;

    let logPath = '';
    if (str(config.log_path) !== '' && sd.logDirectory !== '') logPath = join(sd.logDirectory, str(config.log_path));
    else if (isAbsolute(str(config.log_path))) logPath = str(config.log_path);
    if (logPath !== '') await mkdir(dirname(logPath), { recursive: true, mode: 0o755 });

    // image volumes last: mounted now, released if the create fails
    const imageVolumes = this.imageVolumes.prepare(mounts);
    if (imageVolumes) binds.push(...imageVolumes.binds);

    const labels = strMap(config.labels);
    const annotations = strMap(config.annotations);
    const command = strList(config.command);
    const args = strList(config.args);
    const data: ContainerData = {
      sandboxId: sb.id,
      metadata: { name, attempt: num(md.attempt) },
      labels,
      annotations,
      image: imageSpec,
      createdAt: nowNano().toString(),
      logPath,
      // as ContainerStatus reports them: an image volume with the ID of the image it shows (image_ref)
      mounts: mounts.map((m) => (m.image ? { ...m, image: { ...msg(m.image), image_ref: this.images.find(str(msg(m.image).image))?.id ?? '' } } : { ...m })),
      ...(imageVolumes ? { imageVolumes: imageVolumes.set } : {}),
      user: { uid: identity.uid, gid: identity.gid, supplemental_groups: identity.additionalGids },
    };
    const pod = sd.metadata;
    const request: CreateRequest = {
      id: newContainerId(),
      name: `k8s_${dockerSafe(name)}_${dockerSafe(String(pod.name))}_${dockerSafe(String(pod.namespace))}_${dockerSafe(String(pod.uid))}_${num(md.attempt)}`,
      body: {
        Image: image.id,
        ...(hostNet ? {} : { Hostname: String(sb.config.Hostname) }),
        ...(command.length > 0 ? { Entrypoint: command } : {}),
        ...(args.length > 0 ? { Cmd: args } : {}),
        Env: msgList(config.envs).map((e) => `${str(e.key)}=${text(e.value)}`),
        WorkingDir: str(config.working_dir),
        User: user,
        Tty: config.tty === true,
        OpenStdin: config.stdin === true,
        StdinOnce: config.stdin_once === true,
        AttachStdin: config.stdin === true,
        Labels: {
          ...labels,
          [CRI_TYPE_LABEL]: 'container',
          [CRI_SANDBOX_LABEL]: sb.id,
          'io.kubernetes.container.name': name,
          'io.kubernetes.pod.name': String(pod.name),
          'io.kubernetes.pod.namespace': String(pod.namespace),
          'io.kubernetes.pod.uid': String(pod.uid),
        },
        HostConfig: hc,
      },
      cri: {
        kind: 'container',
        logPath,
        data: data as unknown as Record<string, unknown>,
        // a pod in a user namespace: its containers join the holder's (and the namespaces owned by it)
        ...(sb.cri?.userns
          ? {
              userns: {
                uidMappings: sb.cri.userns.uidMappings.map((m) => ({ ...m })),
                gidMappings: sb.cri.userns.gidMappings.map((m) => ({ ...m })),
                join: sb.id,
                ...(idmapped.length > 0 ? { idmapped } : {}),
              },
            }
          : {}),
      },
    };
    const { Id: id } = await this.createWithNri(sb, name, request, annotations).catch((e: unknown) => {
      if (imageVolumes) this.imageVolumes.release(imageVolumes.set);
      throw e;
    });
    await this.nri?.postCreateContainer(this.get(id));
    this.log.debug({ id, sandbox: sb.id, name }, 'CRI container created');
    return { container_id: id };
  }

  /** NRI's CreateContainer (its adjustment applied to the request), then the create, with plugin sync held off. */
  private async createWithNri(sb: ContainerView, name: string, request: CreateRequest, annotations: Record<string, string>): Promise<{ Id: string }> {
    if (!this.nri) return this.containers.create(request);
    const unblockSync = await this.nri.blockSync();
    try {
      await this.nri.createContainer(sb, request.id ?? '', name, request, annotations);
      return await this.containers.create(request);
    } finally {
      unblockSync();
    }
  }

  async start(req: Msg): Promise<Msg> {
    const c = this.get(str(req.container_id));
    if (c.state.Status !== 'created') throw new ConflictError(`container ${c.id} is not in created state: ${criState(c)}`);
    const volumes = containerData(c).imageVolumes;
    if (volumes) this.imageVolumes.ensure(volumes);
    await this.nri?.startContainer(c);
    await this.containers.start(c.id, 'cri');
    await this.nri?.postStartContainer(this.get(c.id));
    return {};
  }

  async stop(req: Msg): Promise<Msg> {
    const c = this.find(str(req.container_id));
    if (!c) return {}; // StopContainer is idempotent: an unknown container is already stopped
    const timeout = num(req.timeout);
    const stopSignal = c.config.StopSignal || 'SIGTERM';
    // a stop signal PID 1 has no handler for yet is dropped by the kernel: sent again once it has one
    const watch = c.state.Running
      ? redeliverWhenCaught(c.state.Pid, signalNumber(stopSignal), timeout * 1000, async () => {
          this.log.debug({ id: c.id, signal: stopSignal }, 'CRI stop: the stop signal was dropped (no handler yet in PID 1); sending it again');
          await this.containers.kill(c.id, stopSignal, 'cri').catch(() => undefined);
        })
      : undefined;
    try {
      await this.containers.stop(c.id, { timeout, by: 'cri' });
    } finally {
      watch?.cancel();
    }
    const after = this.find(c.id);
    if (after && after.state.Status !== 'created') await this.nri?.stopContainer(after);
    return {};
  }

  async remove(req: Msg): Promise<Msg> {
    const c = this.find(str(req.container_id));
    if (!c) return {}; // RemoveContainer is idempotent
    await this.removeOne(c);
    return {};
  }

  private async removeOne(c: ContainerView): Promise<void> {
    await this.containers.remove(c.id, { force: true, by: 'cri' });
    const volumes = containerData(c).imageVolumes;
    if (volumes) this.imageVolumes.release(volumes);
    await this.nri?.removeContainer(c);
  }

  /** Kills and removes (remove) or only stops (stop) every container of a pod. */
  async stopAll(sandboxId: string): Promise<void> {
    await Promise.all(this.inSandbox(sandboxId).filter((c) => c.state.Running).map((c) => this.containers.stop(c.id, { timeout: 0, by: 'cri' })));
  }

  async removeAll(sandboxId: string): Promise<void> {
    await Promise.all(this.inSandbox(sandboxId).map((c) => this.removeOne(c)));
  }

  private imageRef(c: ContainerView): string {
    const img = this.images.find(c.imageId);
    return img?.digests[0] ?? c.imageId;
  }

  listItem(c: ContainerView): Msg {
    const d = containerData(c);
    return {
      id: c.id,
      pod_sandbox_id: d.sandboxId,
      metadata: d.metadata,
      image: { image: d.image },
      image_ref: this.imageRef(c),
      image_id: c.imageId,
      state: criState(c),
      created_at: d.createdAt,
      labels: d.labels,
      annotations: d.annotations,
    };
  }

  /** The containers a ContainerFilter (or ContainerStatsFilter) selects. */
  select(filter: unknown): ContainerView[] {
    return selectByFilter(this.list(), filter, (c) => ({ state: criState(c), labels: containerData(c).labels, sandboxId: containerData(c).sandboxId }));
  }

  async listContainers(req: Msg): Promise<Msg> {
    return { containers: this.select(req.filter).map((c) => this.listItem(c)) };
  }

  status(req: Msg): Msg {
    const c = this.get(str(req.container_id));
    const d = containerData(c);
    const st = criState(c);
    let reason = '';
    if (st === 'CONTAINER_EXITED') reason = c.state.OOMKilled ? 'OOMKilled' : c.state.ExitCode === 0 ? 'Completed' : 'Error';
    const status = {
      id: c.id,
      metadata: d.metadata,
      state: st,
      created_at: d.createdAt,
      started_at: nanosOfTime(c.state.StartedAt),
      finished_at: st === 'CONTAINER_EXITED' ? nanosOfTime(c.state.FinishedAt) : '0',
      exit_code: c.state.ExitCode,
      image: { image: d.image },
      image_ref: this.imageRef(c),
      image_id: c.imageId,
      reason,
      message: c.state.Error,
      labels: d.labels,
      annotations: d.annotations,
      mounts: d.mounts,
      log_path: d.logPath,
      ...(d.user ? { user: { linux: { uid: String(d.user.uid), gid: String(d.user.gid), supplemental_groups: d.user.supplemental_groups.map(String) } } } : {}),
      resources: {
        linux: {
          cpu_period: String(c.hostConfig.CpuPeriod ?? 0),
          cpu_quota: String(c.hostConfig.CpuQuota ?? 0),
          cpu_shares: String(c.hostConfig.CpuShares ?? 0),
          memory_limit_in_bytes: String(c.hostConfig.Memory ?? 0),
          oom_score_adj: String(c.hostConfig.OomScoreAdj ?? 0),
          cpuset_cpus: String(c.hostConfig.CpusetCpus ?? ''),
          cpuset_mems: String(c.hostConfig.CpusetMems ?? ''),
        },
      },
    };
    const info: Record<string, string> = {};
    if (req.verbose === true) {
      info.info = JSON.stringify({ sandboxID: d.sandboxId, pid: c.state.Pid, config: c.config, hostConfig: c.hostConfig, runtimeSpec: { cgroupParent: c.hostConfig.CgroupParent ?? '' } });
    }
    return { status, info };
  }
}
