import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { openDatabase, type Db } from '../../../src/metadata/database.js';
import { EventRepo } from '../../../src/metadata/event-repo.js';
import { VolumeRepo } from '../../../src/metadata/volume-repo.js';
import { EventBus, type DockerEvent } from '../../../src/events/event-bus.js';
import { LocalDriver } from '../../../src/volumes/local-driver.js';
import { VolumeService } from '../../../src/volumes/volume-service.js';

export interface VolumeFixture {
  dir: string;
  dataRoot: string;
  db: Db;
  events: DockerEvent[];
  svc: VolumeService;
  /** volume name → container IDs, fed to the usage checker. */
  users: Map<string, string[]>;
  close(): void;
}

/** A VolumeService over a temporary data root and database. */
export async function volumeFixture(): Promise<VolumeFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-vol-'));
  const dataRoot = join(dir, 'data');
  const log = pino({ level: 'silent' });
  const db = openDatabase(join(dir, 'berth.db'), log);
  const bus = new EventBus(new EventRepo(db, 1000));
  const events: DockerEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const svc = new VolumeService(new VolumeRepo(db), new LocalDriver(dataRoot, log), bus, log);
  await svc.init();
  const users = new Map<string, string[]>();
  svc.setUsageChecker((name) => users.get(name) ?? []);
  return {
    dir,
    dataRoot,
    db,
    events,
    svc,
    users,
    close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
