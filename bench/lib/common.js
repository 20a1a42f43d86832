// Shared pieces of the benchmark scripts (plain Node, no build step).
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** A docker CLI runner for one daemon's environment; throws on failure unless opts.allowFail. */
export function dockerCli(env) {
  return (args, opts = {}) => {
    const r = spawnSync('docker', args, { env, maxBuffer: 1 << 30, ...opts });
    if (r.status !== 0 && !opts.allowFail) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
}

/** A busybox rootfs from Debian's busybox-static under `dir`/rootfs, every applet linked to /bin/busybox. */
export function busyboxRootfs(dir) {
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'tmp', 'etc', 'proc', 'sys', 'dev', 'root', 'usr/bin', 'usr/sbin', 'sbin']) mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  for (const a of execFileSync('/bin/busybox', ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    if (a === 'bin/busybox') continue;
    try {
      symlinkSync('/bin/busybox', join(root, a));
    } catch {
      // duplicate applet path
    }
  }
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  return root;
}

/** A loopback TCP port free at the time of asking. */
export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
