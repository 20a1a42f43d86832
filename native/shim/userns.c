/* User namespaces for pod containers. Every namespace of such a container must be owned by its user namespace
 * (its root can then mount /proc, /sys and tmpfs, and configure its network), so the init never clones with
 * namespace flags: the shim makes the user namespace (or opens the pod's), the init prepares its mounts while
 * it is still root of the host, joins the user namespace, joins the pod's namespaces, unshares the others
 * and forks the container's PID 1 into the new PID namespace (the shim, a subreaper, adopts it).
 *
 * Mounts made here are detached (open_tree/fsmount): nothing appears on the host, and the init attaches them in
 * its own mount namespace by fd (move_mount), without walking host paths it could not search any more. The
 * image's layers are idmapped to the user namespace, so root-owned image files are the container root's; the
 * overlay's upper directory is not (berthd gives it to the mapped root), so what the container writes is owned
 * on the host by the mapped ids. Binds are idmapped only when the plan says so (mount_idmap). */
#include "userns.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int userns_create(const char *uid_map, const char *gid_map, struct berth_err *err)
{
	int up[2], down[2];
	if (pipe2(up, O_CLOEXEC) < 0)
		return berth_fail(err, errno, "create user namespace: pipe");
	if (pipe2(down, O_CLOEXEC) < 0) {
		int e = errno;
		close(up[0]);
		close(up[1]);
		return berth_fail(err, e, "create user namespace: pipe");
	}
	pid_t h = fork();
	if (h == 0) {
		/* the holder: unshares, says so, and stays until the shim has the namespace's fd */
		close(up[0]);
		close(down[1]);
		int e = unshare(CLONE_NEWUSER) < 0 ? errno : 0;
		if (write(up[1], &e, sizeof(e)) != sizeof(e))
			_exit(1);
		char c;
		while (read(down[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	int saved = errno;
	close(up[1]);
	close(down[0]);
	int fd = -1;
	if (h < 0) {
		berth_fail(err, saved, "create user namespace: fork");
		goto out;
	}
	int e = 0;
	ssize_t r;
	while ((r = read(up[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	if (r != sizeof(e)) {
		berth_fail(err, 0, "create user namespace: the helper exited");
		goto out;
	}
	if (e) {
		berth_fail(err, e, "create user namespace");
		goto out;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)h);
	if (uid_map && write_str(path, uid_map) < 0) {
		berth_fail(err, errno, "write uid_map");
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)h);
	if (gid_map && write_str(path, gid_map) < 0) {
		berth_fail(err, errno, "write gid_map");
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)h);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		berth_fail(err, errno, "open the new user namespace");
out:
	close(up[0]);
	close(down[1]);
	if (h > 0)
		while (waitpid(h, NULL, 0) < 0 && errno == EINTR)
			;
	return fd;
}

static int clone_tree(int dirfd, const char *path, int recursive)
{
	return (int)syscall(SYS_open_tree, dirfd, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
}

static int set_attrs(int fd, unsigned long long set, unsigned long long clr, int ufd, int recursive)
{
	struct mount_attr a = {.attr_set = set, .attr_clr = clr, .propagation = 0, .userns_fd = (unsigned long long)(ufd < 0 ? 0 : ufd)};
	return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof(a));
}

static int fsconfig_str(int fs, const char *key, const char *val)
{
	return (int)syscall(SYS_fsconfig, fs, val ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, key, val, 0);
}

/* overlay over the layers, each an idmapped detached bind, given by /proc/self/fd path: one per lowerdir+ (Linux
 * 6.8), else all in one lowerdir (fsconfig takes 256 bytes: about 14 layers) */
static int overlay_rootfs(struct plan *p, int ufd, struct berth_err *err)
{
	int cwd = p->mount_cwd ? open(p->mount_cwd, O_PATH | O_DIRECTORY | O_CLOEXEC) : AT_FDCWD;
	if (cwd < 0 && cwd != AT_FDCWD)
		return berth_fail(err, errno, "open overlay mount dir %s", p->mount_cwd);
	int fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
	if (fs < 0)
		return berth_fail(err, errno, "fsopen overlay");
	int *lfds = xmalloc(sizeof(int) * (size_t)(p->lowers.n ? p->lowers.n : 1));
	size_t cap = 24 * (size_t)p->lowers.n + 1, o = 0;
	char *all = xmalloc(cap);
	all[0] = '\0';
	int plus = 1;
	for (int i = 0; i < p->lowers.n; i++) {
		lfds[i] = clone_tree(cwd, p->lowers.v[i], 0);
		if (lfds[i] < 0)
			return berth_fail(err, errno, "open layer %s", p->lowers.v[i]);
		if (set_attrs(lfds[i], MOUNT_ATTR_IDMAP, 0, ufd, 0) < 0)
			return berth_fail(err, errno, "idmap layer %s", p->lowers.v[i]);
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", lfds[i]);
		o += (size_t)snprintf(all + o, cap - o, "%s%s", i ? ":" : "", path);
		if (plus && fsconfig_str(fs, "lowerdir+", path) < 0) {
			if (i > 0 || errno != EINVAL)
				return berth_fail(err, errno, "overlay lowerdir+ %s", p->lowers.v[i]);
			plus = 0;
		}
	}
	if (!plus && fsconfig_str(fs, "lowerdir", all) < 0)
		return berth_fail(err, errno, "overlay lowerdir (%d idmapped layers)", p->lowers.n);
	free(all);
	if (p->upper && (fsconfig_str(fs, "upperdir", p->upper) < 0 || fsconfig_str(fs, "workdir", p->work ? p->work : "") < 0))
		return berth_fail(err, errno, "overlay upperdir %s", p->upper);
	if (p->overlay_opts && *p->overlay_opts) {
		char *opts = xstrdup(p->overlay_opts), *save = NULL;
		for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(o, '=');
			if (eq)
				*eq++ = '\0';
			if (fsconfig_str(fs, o, eq) < 0)
				return berth_fail(err, errno, "overlay option %s", o);
		}
		free(opts);
	}
	if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return berth_fail(err, errno, "create the overlay over idmapped layers");
	p->rootfs_mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
	if (p->rootfs_mnt < 0)
		return berth_fail(err, errno, "fsmount overlay");
	for (int i = 0; i < p->lowers.n; i++)
		close(lfds[i]);
	free(lfds);
	close(fs);
	if (cwd >= 0)
		close(cwd);
	return 0;
}

/* what mount(MS_REMOUNT|MS_BIND) would set, as mount_setattr attributes */
static unsigned long long attrs_of(unsigned long flags)
{
	unsigned long long a = 0;
	if (flags & MS_RDONLY)
		a |= MOUNT_ATTR_RDONLY;
	if (flags & MS_NOSUID)
		a |= MOUNT_ATTR_NOSUID;
	if (flags & MS_NODEV)
		a |= MOUNT_ATTR_NODEV;
	if (flags & MS_NOEXEC)
		a |= MOUNT_ATTR_NOEXEC;
	if (flags & MS_NODIRATIME)
		a |= MOUNT_ATTR_NODIRATIME;
	return a;
}

int userns_prepare_mounts(struct plan *p, int ufd, struct berth_err *err)
{
	/* the init resolves the mount point by path once more (make_rootfs_parent_private): the real one */
	char *real = realpath(p->rootfs, NULL);
	if (!real)
		return berth_fail(err, errno, "realpath %s", p->rootfs);
	p->rootfs = real;
	if (p->rootfs_kind == ROOTFS_BIND) {
		p->rootfs_mnt = clone_tree(AT_FDCWD, p->bind_src, 1);
		if (p->rootfs_mnt < 0 || set_attrs(p->rootfs_mnt, MOUNT_ATTR_IDMAP, 0, ufd, 1) < 0)
			return berth_fail(err, errno, "idmapped bind of the rootfs %s", p->bind_src);
	} else if (overlay_rootfs(p, ufd, err) < 0) {
		return -1;
	}
	for (int i = 0; i < p->nmounts; i++) {
		struct mount_ent *m = &p->mounts[i];
		if (!(m->flags & MS_BIND) || (m->flags & MS_REMOUNT))
			continue;
		int rec = (m->flags & MS_REC) != 0;
		m->prefd = clone_tree(AT_FDCWD, m->src, rec);
		if (m->prefd < 0)
			return berth_fail(err, errno, "bind mount %s to %s", m->src, m->dest);
		if (m->idmap && set_attrs(m->prefd, MOUNT_ATTR_IDMAP, 0, ufd, m->idmap == 2) < 0)
			return berth_fail(err, errno, "idmap the bind of %s to %s", m->src, m->dest);
		unsigned long long a = attrs_of(m->flags);
		unsigned long long clr = (m->flags & MS_NOATIME) ? MOUNT_ATTR__ATIME : 0;
		if (clr)
			a |= MOUNT_ATTR_NOATIME;
		if ((a || clr) && set_attrs(m->prefd, a, clr, -1, 0) < 0)
			return berth_fail(err, errno, "set the flags of the bind of %s to %s", m->src, m->dest);
		if (m->rro && set_attrs(m->prefd, MOUNT_ATTR_RDONLY, 0, -1, 1) < 0)
			return berth_fail(err, errno, "make %s recursively read-only", m->dest);
	}
	/* the mount point, as the working directory: unshare(CLONE_NEWNS) moves it into the new mount namespace (an fd
	 * would keep naming the old one), and the init could not walk the data root's path from there */
	if (chdir(real) < 0)
		return berth_fail(err, errno, "chdir %s", real);
	return 0;
}
