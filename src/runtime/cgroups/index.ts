// Entry point: detect the host's cgroup layout and return the matching backend.
//   <root>/cgroup.controllers exists  ⇒ v2 (pure unified hierarchy at <root>)
//   otherwise                           ⇒ v1 (hierarchies from mountinfo; a cgroup2 mount beside them = hybrid)

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../util/logger.js';
import { type CgroupFs, type CgroupManager, realCgroupFs } from './cgroup.js';
import { CgroupV1Manager } from './cgroup-v1.js';
import { CgroupV2Manager, type DeviceFilterAttacher } from './cgroup-v2.js';
import { parseCgroupMounts } from './mountinfo.js';

export interface CgroupManagerOptions {
  /** Where the cgroup filesystems are mounted (default /sys/fs/cgroup). */
  root?: string;
  /** mountinfo text to use instead of /proc/self/mountinfo (tests). */
  mountinfo?: string;
  /** File operations (tests inject a fake cgroupfs). */
  fs?: CgroupFs;
  log?: Logger;
  /** cgroup v2 device-program attach (tests inject a fake; default: the native addon). */
  attachDeviceFilter?: DeviceFilterAttacher;
}

export function createCgroupManager(options: CgroupManagerOptions = {}): CgroupManager {
  const root = options.root ?? '/sys/fs/cgroup';
  const fs = options.fs ?? realCgroupFs;
  const log = options.log?.child({ sub: 'cgroups' });
  if (existsSync(path.join(root, 'cgroup.controllers'))) {
    return new CgroupV2Manager({ mountPoint: root, fs, log, attachDeviceFilter: options.attachDeviceFilter });
  }
  const mounts = parseCgroupMounts(options.mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8'), root);
  // A cgroup2 mount alongside v1 hierarchies (hybrid) is used for tracking, kill and freeze fallback only.
  return new CgroupV1Manager({ hierarchies: mounts.v1, unifiedMount: mounts.unified?.mountPoint, fs, log });
}

export type { Cgroup, CgroupFs, CgroupManager } from './cgroup.js';
export { realCgroupFs } from './cgroup.js';
export { CgroupV1, CgroupV1Manager, formatV1DeviceRule, parseBlkioFile } from './cgroup-v1.js';
export {
  CgroupV2,
  CgroupV2Manager,
  type DeviceFilterAttacher,
  blkioWeightToIoWeight,
  memorySwapToV2,
  sharesToCpuWeight,
} from './cgroup-v2.js';
export { compileDeviceFilter, emulateDeviceRules } from './device-filter.js';
export { type CgroupMounts, type V1Hierarchy, parseCgroupMounts } from './mountinfo.js';
export * from './resources.js';
export { parseProcStat, readSystemCpu } from './system-cpu.js';
