import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';

/** Facts about the host the daemon reports in /info and /version; read once. */
export interface HostFacts {
  hostname: string;
  kernelVersion: string;
  operatingSystem: string;
  osVersion: string;
  architecture: string;
  goArch: string;
  ncpu: number;
  memTotal: number;
  cgroupVersion: '1' | '2';
}

const GO_ARCH: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', armv7l: 'arm', i686: '386', ppc64le: 'ppc64le', s390x: 's390x' };

function osRelease(): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of readFileSync('/etc/os-release', 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m?.[1] && m[2] !== undefined) out[m[1]] = m[2].replace(/^"|"$/g, '');
    }
    return out;
  } catch {
    return {};
  }
}

/** cgroup v2 only when the unified hierarchy is mounted at the root; hybrid hosts count as v1. */
export function detectCgroupVersion(root = '/sys/fs/cgroup'): '1' | '2' {
  return existsSync(`${root}/cgroup.controllers`) ? '2' : '1';
}

export function readHostFacts(): HostFacts {
  const rel = osRelease();
  const machine = os.machine();
  return {
    hostname: os.hostname(),
    kernelVersion: os.release(),
    operatingSystem: rel.PRETTY_NAME ?? 'Linux',
    osVersion: rel.VERSION_ID ?? '',
    architecture: machine,
    goArch: GO_ARCH[machine] ?? machine,
    ncpu: os.cpus().length,
    memTotal: os.totalmem(),
    cgroupVersion: detectCgroupVersion(),
  };
}
