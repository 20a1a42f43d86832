import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { insecureTcpForced, tlsEnabled, tlsVerifyClients, type DaemonConfig, type ReloadableConfig } from './config.js';
import type { Logger } from './util/logger.js';
import { acquireDataRootLock } from './daemon-lock.js';
import { openDatabase, type Db } from './metadata/database.js';
import { MetaRepo } from './metadata/meta-repo.js';
import { EventRepo } from './metadata/event-repo.js';
import { EventBus } from './events/event-bus.js';
import { SystemService } from './system/system-service.js';
import { readHostFacts } from './system/host-facts.js';
import { detectStorageDriver, driverStatus } from './snapshots/driver-detect.js';
import { openImageSubsystem } from './images/image-subsystem.js';
import { RegistryService, registryOptionsFrom } from './registry/registry-service.js';
import { createApiServer, type ApiServer } from './api/server.js';
import { checkHosts, takeSystemdFds, type ListenOptions } from './api/listeners.js';
import type { Services } from './api/services.js';
import { VolumeRepo } from './metadata/volume-repo.js';
import { LocalDriver } from './volumes/local-driver.js';
import { VolumeService } from './volumes/volume-service.js';
import { DiskUsageService, imagesDiskUsageProvider } from './volumes/disk-usage.js';
import { NetworkRepo } from './metadata/network-repo.js';
import { NetworkService } from './network/network-service.js';
import { createCgroupManager } from './runtime/cgroups/index.js';
import { Executor } from './runtime/executor.js';
import { ContainerRepo } from './metadata/container-repo.js';
import { ContainerService } from './containers/container-service.js';
import { ExecService } from './containers/exec-service.js';
import { ContainerOps } from './containers/container-ops.js';
import { ContainerViews } from './containers/container-views.js';
import { secureDataRoot } from './data-root.js';
import type { StoredContainer } from './containers/types.js';
import { serveCriOnDemand, type OnDemandCriServer } from './cri/on-demand.js';
import type { NriService } from './nri/nri-service.js';
import { BERTH_VERSION } from './version.js';
import { errorMessage } from './errors.js';
import { BuildService } from './build/builder.js';
import { BuildCacheRepo } from './build/build-cache.js';
import { validateLogOpts } from './containers/log-options.js';
import { IdleTrim } from './system/idle-trim.js';
import { nativeAddon } from './native.js';
import { packagePath } from './package-root.js';

/** berth-shim and berth-init, built from native/ by npm install. */
const SHIM_PATH = packagePath('native', 'build', 'berth-shim');
const INIT_PATH = packagePath('native', 'build', 'berth-init');

export interface Daemon {
  stop(): Promise<void>;
  /** SIGHUP: applies the daemon.json keys dockerd reloads (labels, debug/log-level, registries, concurrency). */
  reload(next: ReloadableConfig): void;
}

/** -H options: TLS material read once at start, the sockets systemd passed, the socket link. */
function listenOptions(config: DaemonConfig): ListenOptions {
  return {
    ...(tlsEnabled(config)
      ? {
          tls: {
            key: readFileSync(config.tlsKey),
            cert: readFileSync(config.tlsCert),
            ...(tlsVerifyClients(config) ? { ca: readFileSync(config.tlsCaCert) } : {}),
            verifyClients: tlsVerifyClients(config),
          },
        }
      : {}),
    insecureTcp: insecureTcpForced(config),
    systemdFds: takeSystemdFds(),
    ...(config.socketLink ? { socketLink: config.socketLink } : {}),
  };
}

/** The composition root: builds stores and services, hands them to the API, and tears them down in reverse. */
export async function startDaemon(config: DaemonConfig, log: Logger): Promise<Daemon> {
  validateLogOpts(config.logDriver, config.logOpts);
  // TLS material, systemd's sockets and the -H addresses are checked before anything is created.
  const listening = listenOptions(config);
  checkHosts(config.hosts, listening);
  mkdirSync(config.dataRoot, { recursive: true, mode: 0o711 });
  mkdirSync(config.execRoot, { recursive: true, mode: 0o711 });
  const releaseLock = acquireDataRootLock(join(config.dataRoot, 'berthd.lock'), config.dataRoot);

  let db: Db | undefined;
  let api: ApiServer | undefined;
  let networks: NetworkService | undefined;
  let containers: ContainerService | undefined;
  let containerOps: ContainerOps | undefined;
  let registry: RegistryService | undefined;
  let cri: OnDemandCriServer | undefined;
  let nri: NriService | undefined;
  const idleTrim = new IdleTrim({ heap: () => nativeAddon().reduceHeap(), malloc: () => nativeAddon().mallocTrim() });
  try {
    secureDataRoot(config.dataRoot, log);
    db = openDatabase(join(config.dataRoot, 'berth.db'), log.child({ sub: 'store' }));
    const events = new EventBus(new EventRepo(db, 10_000));
    const storageDriver = detectStorageDriver(config.storageDriver, config.dataRoot);
    const images = openImageSubsystem(db, config.dataRoot, storageDriver, events, log);
    registry = new RegistryService(images.service, registryOptionsFrom(config), log);
    const system = new SystemService(config, readHostFacts(), new MetaRepo(db), {
      storageDriver: () => ({ name: storageDriver, status: driverStatus(storageDriver, config.dataRoot) }),
      imageCount: () => images.service.count(),
      listenerCount: () => events.listenerCount,
      warnings: () => networks?.warnings() ?? [],
      containerCounts: () => containers?.counts() ?? { total: 0, running: 0, paused: 0, stopped: 0 },
    });
    const volumesLog = log.child({ sub: 'volumes' });
    const volumes = new VolumeService(new VolumeRepo(db), new LocalDriver(config.dataRoot, volumesLog), events, volumesLog);
    await volumes.init();
    const diskUsage = new DiskUsageService(volumes);
    networks = new NetworkService(new NetworkRepo(db), events, log.child({ sub: 'network' }), {
      execRoot: config.execRoot,
      bip: config.bip,
      defaultAddressPools: config.defaultAddressPools,
      iptables: config.iptables,
      icc: config.icc,
      defaultBindIp: config.ip,
      dns: config.dns,
      daemonId: system.daemonId,
    });
    await networks.start();
    const cgroups = createCgroupManager({ log: log.child({ sub: 'cgroups' }) });
    const executor = new Executor({ execRoot: config.execRoot, shimPath: SHIM_PATH, initPath: INIT_PATH, log, cgroups });
    containers = new ContainerService({
      dataRoot: config.dataRoot,
      repo: new ContainerRepo<StoredContainer>(db),
      images: images.service,
      layers: images.layers,
      volumes,
      network: networks,
      executor,
      cgroups,
      views: new ContainerViews({ dataRoot: config.dataRoot, execRoot: config.execRoot, layers: images.layers, cgroups, log: log.child({ sub: 'containers' }) }),
      events,
      log: log.child({ sub: 'containers' }),
      logConfig: { type: config.logDriver, opts: config.logOpts },
      initPath: INIT_PATH,
    });
    const containerSvc = containers;
    images.service.setUsageChecker((imageId) => containerSvc.usersOfImage(imageId));
    volumes.setUsageChecker((name) => containerSvc.usersOfVolume(name));
    diskUsage.setDiskUsageProviders({
      images: imagesDiskUsageProvider({
        list: () => images.service.list({ all: true }),
        layersOf: (id) => {
          const chainId = images.service.get(id)?.chainId;
          return chainId ? images.layers.chain(chainId).map((l) => ({ key: l.chainId, size: l.size })) : [];
        },
        containersUsing: (id) => containerSvc.usersOfImage(id).length,
      }),
      containers: () =>
        Promise.all(containerSvc.list({ all: true, size: true }).map(async (e) => ({ ...e, ...(await containerOps?.sizes(e.Id as string)) }))),
    });
    networks.setContainerDirectory({
      find: (ref) => {
        const c = containerSvc.find(ref);
        return c ? { id: c.id, name: c.name, running: c.state.Running, env: [...(c.config.Env ?? [])] } : undefined;
      },
      attachStopped: (id, network, cfg) => containerSvc.attachStopped(id, network, cfg),
      detachStopped: (id, network) => containerSvc.detachStopped(id, network),
    });
    // Containers that kept running while berthd was down are adopted; their sandboxes stay, others go.
    const liveIds = await containers.restore();
    await networks.restore(liveIds);
    const execs = new ExecService(containers, executor, images.layers, events, config.dataRoot);
    containerOps = new ContainerOps({ dataRoot: config.dataRoot, execRoot: config.execRoot, containers, execs, images: images.service, network: networks, cgroups, events, log: log.child({ sub: 'containers' }) });
    const build = new BuildService({
      dataRoot: config.dataRoot,
      execRoot: config.execRoot,
      images: images.service,
      containers,
      registry,
      cache: new BuildCacheRepo(db),
      log: log.child({ sub: 'build' }),
    });
    diskUsage.setDiskUsageProviders({ buildCache: () => build.diskUsage() });
    const services: Services = { system, events, volumes, diskUsage, networks, images, containers, execs, containerOps, registry, build };

    if (config.nriSocket !== '' && config.criSocket !== '') {
      // NRI applies to the CRI's pods and containers only (as in containerd); a plugin that connects before the
      // first CRI connection starts the CRI, whose pods and containers it is synchronized with.
      const { NriService } = await import('./nri/nri-service.js');
      nri = new NriService(
        {
          socketPath: config.nriSocket,
          registrationTimeoutMs: config.nriRegistrationTimeoutMs,
          requestTimeoutMs: config.nriRequestTimeoutMs,
          runtimeName: 'berth',
          runtimeVersion: BERTH_VERSION,
          pluginPath: config.nriPluginPath,
          pluginConfigPath: config.nriPluginConfigPath,
        },
        log.child({ sub: 'nri' }),
        async () => cri?.warm(),
      );
      try {
        await nri.start();
      } catch (e) {
        // NRI is optional: a taken or unusable socket leaves the daemon without it, never down
        log.error({ err: errorMessage(e), socket: config.nriSocket }, 'NRI not served');
        nri = undefined;
      }
    }
    if (config.criSocket !== '') {
      // Loaded on the first CRI connection: gRPC and the CRI services are resident memory that a daemon nobody
      // drives through the CRI never uses.
      const criDeps = { containers, containerOps, execs, events, images: images.service, layers: images.layers, registry, cgroups, log, ...(nri ? { nri } : {}) };
      const criOptions = { dataRoot: config.dataRoot, cniConfDir: config.cniConfDir, cniBinDirs: config.cniBinDirs, initPath: INIT_PATH };
      cri = await serveCriOnDemand(
        config.criSocket,
        async (endpoint) => (await import('./cri/index.js')).startCri({ ...criOptions, endpoint }, criDeps),
        log.child({ sub: 'cri' }),
      );
    }
    api = await createApiServer(services, log, config.apiTimeouts);
    await api.listen(config.hosts, listening);
    writeFileSync(config.pidfile, `${process.pid}\n`);
    log.info({ dataRoot: config.dataRoot, execRoot: config.execRoot }, 'berthd started');
    void containers.startRestartPolicyContainers();
    idleTrim.start();
  } catch (e) {
    await cri?.close();
    await nri?.close();
    await api?.close(0);
    await networks?.stop().catch((err: unknown) => log.error({ err }, 'network shutdown failed'));
    db?.close();
    releaseLock();
    throw e;
  }

  const openDb = db;
  const openApi = api;
  const openNetworks = networks;
  const openContainers = containers;
  const openContainerOps = containerOps;
  const openRegistry = registry;
  const openCri = cri;
  const openNri = nri;
  return {
    reload(next) {
      // The system service reads these from the shared config object (docker info shows them at once).
      Object.assign(config, next);
      openRegistry?.reconfigure(registryOptionsFrom(config));
    },
    async stop() {
      log.info('berthd shutting down');
      idleTrim.stop();
      openContainers?.shutdown();
      openContainerOps?.shutdown();
      await openCri?.close().catch((err: unknown) => log.error({ err }, 'CRI server shutdown failed'));
      await openNri?.close().catch((err: unknown) => log.error({ err }, 'NRI shutdown failed'));
      await openApi.close(10_000);
      await openRegistry?.close().catch((err: unknown) => log.error({ err }, 'registry shutdown failed'));
      await openNetworks?.stop().catch((err: unknown) => log.error({ err }, 'network shutdown failed'));
      openDb.close();
      rmSync(config.pidfile, { force: true });
      releaseLock();
      log.info('berthd stopped');
    },
  };
}
