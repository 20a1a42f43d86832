import { existsSync } from 'node:fs';
import { packagePath, packageRequire } from './package-root.js';

/** The syscalls of native/addon (berth_addon.node). Failures throw Errors with errno/code/syscall/path. */
export interface BerthAddon {
  /** mode includes the file type (S_IFCHR, S_IFBLK, S_IFIFO) and permission bits. */
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void;
  /** undefined when the attribute is not set. */
  lgetxattr(path: string, name: string): Buffer | undefined;
  llistxattr(path: string): string[];
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount2(target: string, flags: number): void;
  /** umount2 on the thread pool (a lazy unmount waits for an RCU grace period, up to ~10 ms): rejects as umount2 throws. */
  umount2Async(target: string, flags: number): Promise<void>;
  /**
   * Binds the mount tree at `source` (recursively with `recursive`) onto the inode held by `targetFd` (an O_PATH
   * descriptor of the mount point), with the MOUNT_ATTR_* bits `attrs` set before it becomes visible:
   * open_tree + mount_setattr + move_mount. The target is never looked up by name (no symlink can redirect it).
   */
  bindMountAt(source: string, targetFd: number, recursive: boolean, attrs: number): void;
  /**
   * Loads a BPF_PROG_TYPE_CGROUP_DEVICE program (struct bpf_insn bytes) and attaches it to the cgroup v2 directory
   * with BPF_F_ALLOW_MULTI, then detaches the Berth device programs attached there before; returns how many.
   */
  attachDeviceFilter(cgroupDir: string, insns: Buffer): number;
  /**
   * A new network namespace bind-mounted on the existing file `path`, lo up, with the veth endpoints `spec`
   * describes (native/addon/netns.h) plugged in, over rtnetlink from a thread of its own. Rejects with errno/code
   * and the failing step; the caller removes what was made.
   */
  createNetns(path: string, spec: string): Promise<void>;
  /** One datagram to a unix datagram socket (systemd's $NOTIFY_SOCKET; a leading '@' is the abstract namespace). */
  sdNotify(socketPath: string, message: string): boolean;
  /**
   * One non-blocking sendmsg of `data` on the unix stream socket `socketFd`, passing `fd` along (SCM_RIGHTS);
   * returns the bytes sent (the caller sends the rest). Throws EAGAIN when nothing could be sent.
   */
  sendWithFd(socketFd: number, data: Buffer, fd: number): number;
  /** glibc's malloc_trim(0): the free pages of every malloc arena go back to the kernel; true when some did. */
  mallocTrim(): boolean;
  /** Starts V8's memory-reducing collection (what its memory reducer runs after ~8 s of quiet); it ends in tasks. */
  reduceHeap(): void;
}

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const MS_RDONLY = 1;
export const MS_BIND = 4096;
export const MNT_DETACH = 2;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_REMOUNT = 32;
export const MS_REC = 16384;
export const MOUNT_ATTR_RDONLY = 0x1;
export const MOUNT_ATTR_NOSUID = 0x2;
export const MOUNT_ATTR_NODEV = 0x4;

let addon: BerthAddon | undefined;

/** Loads native/build/berth_addon.node once (built by `make -C native`). */
export function nativeAddon(): BerthAddon {
  if (addon) return addon;
  const path = packagePath('native', 'build', 'berth_addon.node');
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`make -C native\` (npm install does)`);
  addon = packageRequire(path) as BerthAddon;
  return addon;
}
