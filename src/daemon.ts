import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonConfig } from './config.js';
import type { Logger } from './util/logger.js';
import { acquireDataRootLock } from './daemon-lock.js';
import { openDatabase, type Db } from './store/database.js';
import { MetaRepo } from './store/meta-repo.js';
import { EventRepo } from './store/event-repo.js';
import { EventBus } from './events/event-bus.js';
import { SystemService } from './system/system-service.js';
import { readHostFacts } from './system/host-facts.js';
import { detectStorageDriver } from './storage/driver-detect.js';
import { createApiServer, type ApiServer } from './api/server.js';
import type { Services } from './api/services.js';
import { VolumeRepo } from './store/volume-repo.js';
import { LocalDriver } from './volumes/local-driver.js';
import { VolumeService } from './volumes/volume-service.js';
import { DiskUsageService } from './volumes/disk-usage.js';
import { NetworkRepo } from './store/network-repo.js';
import { NetworkService } from './network/network-service.js';

export interface Daemon {
  stop(): Promise<void>;
}

/** The composition root: builds stores and services, hands them to the API, and tears them down in reverse. */
export async function startDaemon(config: DaemonConfig, log: Logger): Promise<Daemon> {
  mkdirSync(config.dataRoot, { recursive: true, mode: 0o711 });
  mkdirSync(config.execRoot, { recursive: true, mode: 0o711 });
  const releaseLock = acquireDataRootLock(join(config.dataRoot, 'berthd.lock'), config.dataRoot);

  let db: Db | undefined;
  let api: ApiServer | undefined;
  let networks: NetworkService | undefined;
  try {
    db = openDatabase(join(config.dataRoot, 'berth.db'), log.child({ sub: 'store' }));
    const events = new EventBus(new EventRepo(db, 10_000));
    const storageDriver = detectStorageDriver(config.storageDriver);
    const system = new SystemService(config, readHostFacts(), new MetaRepo(db), {
      storageDriver: () => ({ name: storageDriver, status: [] }),
      listenerCount: () => events.listenerCount,
      warnings: () => networks?.warnings() ?? [],
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
      dns: config.dns,
      daemonId: system.daemonId,
    });
    await networks.start();
    // Until the containers service reports which containers survived, no sandbox does: release leftovers.
    await networks.restore([]);
    const services: Services = { system, events, volumes, diskUsage, networks };

    api = await createApiServer(services, log);
    await api.listen(config.hosts);
    writeFileSync(config.pidfile, `${process.pid}\n`);
    log.info({ dataRoot: config.dataRoot, execRoot: config.execRoot }, 'berthd started');
  } catch (e) {
    await api?.close(0);
    await networks?.stop().catch((err: unknown) => log.error({ err }, 'network shutdown failed'));
    db?.close();
    releaseLock();
    throw e;
  }

  const openDb = db;
  const openApi = api;
  const openNetworks = networks;
  return {
    async stop() {
      log.info('berthd shutting down');
      await openApi.close(10_000);
      await openNetworks?.stop().catch((err: unknown) => log.error({ err }, 'network shutdown failed'));
      openDb.close();
      rmSync(config.pidfile, { force: true });
      releaseLock();
      log.info('berthd stopped');
    },
  };
}
