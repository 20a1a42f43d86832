/* The container's root filesystem, built inside its new mount namespace (runs in the container init). */
#ifndef BERTH_ROOTFS_H
#define BERTH_ROOTFS_H

#include <sys/types.h>

#include "err.h"
#include "plan.h"

/* rootfs mount, the plan's mounts, devices and links, pivot_root */
int rootfs_prepare(struct plan *p, struct berth_err *err);
/* a pty from the container's devpts, bound on /dev/console for create */
int rootfs_console(struct plan *p, int *master_out, int *slave_out, struct berth_err *err);
/* sysctls, read-only and masked paths, read-only root */
int rootfs_finish(struct plan *p, struct berth_err *err);
/* openat2(RESOLVE_IN_ROOT): path resolved as if rootfd were / */
int open_in_root(int rootfd, const char *path, int flags);
/* Creates every missing directory of path inside the root; returns an O_PATH fd of it (-1, errno). */
int mkdir_all_in_root(int rootfd, const char *path, mode_t mode, uid_t uid, gid_t gid);

#endif
