/* Root filesystem of the container, done inside its new mount namespace: rootfs mount,
 * the plan's mounts in order, device nodes, pivot_root, console, sysctls, read-only and
 * masked paths. Every path inside the root is resolved with openat2(RESOLVE_IN_ROOT), and
 * mounts target /proc/self/fd/N of the resolved fd, so a symlink in the image can never
 * send a mount outside the root. */
#include "rootfs.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#define FDPATH(buf, fd) snprintf(buf, sizeof(buf), "/proc/self/fd/%d", fd)

static int openat2_in_root(int rootfd, const char *path, int flags, unsigned long long resolve)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = (unsigned long long)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_IN_ROOT | resolve;
	while (*path == '/')
		path++;
	if (*path == '\0')
		path = ".";
	return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

int open_in_root(int rootfd, const char *path, int flags)
{
	return openat2_in_root(rootfd, path, flags, RESOLVE_NO_MAGICLINKS);
}

/* Like open_in_root, but no component may be a symlink (ELOOP): for paths a container can rewrite
 * between the shim creating them and mounting on or from them. */
static int open_no_symlinks(int rootfd, const char *path, int flags)
{
	return openat2_in_root(rootfd, path, flags, RESOLVE_NO_SYMLINKS);
}

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

/* Bind-mounts the file open as src onto the file open as dst: open_tree + move_mount, no path is
 * looked up again (mount(2) on /proc/self/fd/N where the kernel lacks the new mount API). */
static int bind_fd(int src, int dst)
{
	int t = (int)syscall(SYS_open_tree, src, "", OPEN_TREE_CLONE | AT_EMPTY_PATH | O_CLOEXEC);
	if (t >= 0) {
		int r = (int)syscall(SYS_move_mount, t, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
		int e = errno;
		close(t);
		errno = e;
		return r;
	}
	if (errno != ENOSYS)
		return -1;
	char sp[64], dp[64];
	FDPATH(sp, src);
	FDPATH(dp, dst);
	return mount(sp, dp, NULL, MS_BIND, NULL);
}

/* Lexically cleans path into "a/b/c" (no leading slash, no "." or "..", ".." clamped at root). */
static char *clean_path(const char *path)
{
	size_t n = strlen(path);
	char *out = xmalloc(n + 1);
	size_t o = 0;
	const char *s = path;
	while (*s) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 1 && s[0] == '.') {
		} else if (l == 2 && s[0] == '.' && s[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else {
			if (o > 0)
				out[o++] = '/';
			memcpy(out + o, s, l);
			o += l;
		}
		s += l;
	}
	out[o] = '\0';
	return out;
}

/* Creates every missing directory of path inside the root; returns an O_PATH fd of it. */
int mkdir_all_in_root(int rootfd, const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	char *c = clean_path(path);
	if (!*c) {
		free(c);
		return open_in_root(rootfd, ".", O_PATH | O_DIRECTORY);
	}
	int fd = open_in_root(rootfd, c, O_PATH | O_DIRECTORY);
	if (fd >= 0 || errno != ENOENT) {
		free(c);
		return fd;
	}
	int parent = open_in_root(rootfd, ".", O_PATH | O_DIRECTORY);
	char *s = c;
	for (;;) {
		char *slash = strchr(s, '/');
		if (slash)
			*slash = '\0';
		if (mkdirat(parent, s, mode) == 0) {
			if (fchownat(parent, s, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
				int e = errno;
				close(parent);
				free(c);
				errno = e;
				return -1;
			}
		} else if (errno != EEXIST) {
			int e = errno;
			close(parent);
			free(c);
			errno = e;
			return -1;
		}
		if (slash)
			*slash = '/';
		/* resolve the prefix again from the root: a symlink stays inside */
		char save = slash ? *slash : '\0';
		if (slash)
			*slash = '\0';
		int next = open_in_root(rootfd, c, O_PATH | O_DIRECTORY);
		if (slash)
			*slash = save;
		close(parent);
		if (next < 0) {
			free(c);
			return -1;
		}
		parent = next;
		if (!slash)
			break;
		s = slash + 1;
	}
	free(c);
	return parent;
}

/* Creates a mount point (directory or empty file) and returns an O_PATH fd of it. */
static int make_target(int rootfd, const char *dest, int isdir)
{
	if (isdir)
		return mkdir_all_in_root(rootfd, dest, 0755, 0, 0);
	int fd = open_in_root(rootfd, dest, O_PATH);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	char *c = clean_path(dest);
	char *slash = strrchr(c, '/');
	const char *base = slash ? slash + 1 : c;
	if (slash)
		*slash = '\0';
	int pfd = mkdir_all_in_root(rootfd, slash ? c : "", 0755, 0, 0);
	if (pfd < 0) {
		free(c);
		return -1;
	}
	int f = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (f < 0 && errno != EEXIST) {
		int e = errno;
		close(pfd);
		free(c);
		errno = e;
		return -1;
	}
	if (f >= 0)
		close(f);
	close(pfd);
	free(c);
	return open_in_root(rootfd, dest, O_PATH);
}

static int do_mount(int rootfd, struct mount_ent *m, struct berth_err *err)
{
	char fdp[64];
	int isdir = 1;
	if (m->prefd >= 0) {
		/* prepared before the user namespace was joined (userns.c): attached by fd, flags already set */
		struct stat st;
		if (fstat(m->prefd, &st) < 0)
			return berth_fail(err, errno, "mount %s to %s: stat source", m->src, m->dest);
		int t = make_target(rootfd, m->dest, S_ISDIR(st.st_mode));
		if (t < 0)
			return berth_fail(err, errno, "create mount point %s", m->dest);
		if (syscall(SYS_move_mount, m->prefd, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return berth_fail(err, errno, "bind mount %s to %s", m->src, m->dest);
		close(t);
		close(m->prefd);
		m->prefd = -1;
		if (m->pflags) {
			t = open_in_root(rootfd, m->dest, O_PATH);
			FDPATH(fdp, t);
			if (t < 0 || mount(NULL, fdp, NULL, m->pflags, NULL) < 0)
				return berth_fail(err, errno, "set propagation of %s", m->dest);
			close(t);
		}
		return 0;
	}
	if ((m->flags & MS_BIND) && !(m->flags & MS_REMOUNT)) {
		struct stat st;
		if (stat(m->src, &st) < 0)
			return berth_fail(err, errno, "mount %s to %s: stat source", m->src, m->dest);
		isdir = S_ISDIR(st.st_mode);
	}
	int fd;
	if (m->flags & MS_REMOUNT) {
		fd = open_in_root(rootfd, m->dest, O_PATH);
		if (fd < 0)
			return berth_fail(err, errno, "remount %s", m->dest);
		FDPATH(fdp, fd);
		if (mount(NULL, fdp, NULL, m->flags, *m->data ? m->data : NULL) < 0)
			return berth_fail(err, errno, "remount %s", m->dest);
		close(fd);
		return 0;
	}
	fd = make_target(rootfd, m->dest, isdir);
	if (fd < 0)
		return berth_fail(err, errno, "create mount point %s", m->dest);
	FDPATH(fdp, fd);
	if (m->flags & MS_BIND) {
		if (mount(m->src, fdp, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
			return berth_fail(err, errno, "bind mount %s to %s", m->src, m->dest);
		unsigned long rest = m->flags & ~(MS_BIND | MS_REC);
		if (rest) {
			close(fd);
			fd = open_in_root(rootfd, m->dest, O_PATH);
			if (fd < 0)
				return berth_fail(err, errno, "reopen %s", m->dest);
			FDPATH(fdp, fd);
			if (mount(NULL, fdp, NULL, MS_REMOUNT | MS_BIND | rest, NULL) < 0)
				return berth_fail(err, errno, "remount bind %s", m->dest);
		}
	} else {
		if (mount(m->src, fdp, m->type, m->flags, *m->data ? m->data : NULL) < 0)
			return berth_fail(err, errno, "mount %s (%s) on %s", m->src, m->type, m->dest);
	}
	if (m->rro) {
		close(fd);
		fd = open_in_root(rootfd, m->dest, O_PATH);
		if (fd < 0)
			return berth_fail(err, errno, "reopen %s", m->dest);
		struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
		if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
			return berth_fail(err, errno, "make %s recursively read-only", m->dest);
	}
	if (m->pflags) {
		close(fd);
		fd = open_in_root(rootfd, m->dest, O_PATH);
		if (fd < 0)
			return berth_fail(err, errno, "reopen %s", m->dest);
		FDPATH(fdp, fd);
		if (mount(NULL, fdp, NULL, m->pflags, NULL) < 0)
			return berth_fail(err, errno, "set propagation of %s", m->dest);
	}
	close(fd);
	return 0;
}

/* Opens the parent directory of path inside the root (creating it); *base gets the last name. */
static int parent_in_root(int rootfd, const char *path, char **basecopy)
{
	char *c = clean_path(path);
	char *slash = strrchr(c, '/');
	*basecopy = xstrdup(slash ? slash + 1 : c);
	if (slash)
		*slash = '\0';
	int pfd = mkdir_all_in_root(rootfd, slash ? c : "", 0755, 0, 0);
	free(c);
	return pfd;
}

static int make_device(int rootfd, struct dev_ent *d, struct berth_err *err)
{
	char *base;
	int pfd = parent_in_root(rootfd, d->path, &base);
	if (pfd < 0 || !*base)
		return berth_fail(err, errno, "create device %s: parent directory", d->path);
	mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
	unlinkat(pfd, base, 0);
	if (mknodat(pfd, base, type | (d->mode & 07777), makedev(d->major, d->minor)) < 0) {
		if (errno != EPERM)
			return berth_fail(err, errno, "mknod %s", d->path);
		/* no CAP_MKNOD here (user namespace): bind the host's node instead */
		int f = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (f < 0)
			return berth_fail(err, errno, "create %s", d->path);
		close(f);
		int t = openat(pfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		char fdp[64];
		FDPATH(fdp, t);
		if (t < 0 || mount(d->path, fdp, NULL, MS_BIND, NULL) < 0)
			return berth_fail(err, errno, "bind device %s", d->path);
		close(t);
	} else {
		if (fchownat(pfd, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return berth_fail(err, errno, "chown %s", d->path);
		if (fchmodat(pfd, base, d->mode & 07777, 0) < 0)
			return berth_fail(err, errno, "chmod %s", d->path);
	}
	close(pfd);
	free(base);
	return 0;
}

static int make_symlink(int rootfd, struct link_ent *l, struct berth_err *err)
{
	char *base;
	int pfd = parent_in_root(rootfd, l->path, &base);
	if (pfd < 0 || !*base)
		return berth_fail(err, errno, "symlink %s: parent directory", l->path);
	if (symlinkat(l->target, pfd, base) < 0 && errno != EEXIST)
		return berth_fail(err, errno, "symlink %s -> %s", l->path, l->target);
	close(pfd);
	free(base);
	return 0;
}

static int mount_rootfs(struct plan *p, struct berth_err *err)
{
	if (p->rootfs_mnt >= 0) {
		/* made before the user namespace was joined (userns.c), which left the mount point as working directory */
		if (syscall(SYS_move_mount, p->rootfs_mnt, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return berth_fail(err, errno, "attach the rootfs on %s", p->rootfs);
		return 0;
	}
	if (p->rootfs_kind == ROOTFS_BIND) {
		if (mount(p->bind_src, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
			return berth_fail(err, errno, "bind rootfs %s on %s", p->bind_src, p->rootfs);
		return 0;
	}
	size_t cap = 64 + (p->upper ? strlen(p->upper) : 0) + (p->work ? strlen(p->work) : 0) +
		     (p->overlay_opts ? strlen(p->overlay_opts) : 0);
	for (int i = 0; i < p->lowers.n; i++)
		cap += strlen(p->lowers.v[i]) + 1;
	char *data = xmalloc(cap);
	size_t o = (size_t)snprintf(data, cap, "lowerdir=");
	for (int i = 0; i < p->lowers.n; i++)
		o += (size_t)snprintf(data + o, cap - o, "%s%s", i ? ":" : "", p->lowers.v[i]);
	if (p->upper)
		o += (size_t)snprintf(data + o, cap - o, ",upperdir=%s,workdir=%s", p->upper, p->work ? p->work : "");
	if (p->overlay_opts && *p->overlay_opts)
		o += (size_t)snprintf(data + o, cap - o, ",%s", p->overlay_opts);
	if (o >= (size_t)sysconf(_SC_PAGESIZE) - 1)
		return berth_fail(err, E2BIG, "mount overlay on %s: options longer than a page; use mount_cwd with short lower names", p->rootfs);
	if (p->mount_cwd && chdir(p->mount_cwd) < 0)
		return berth_fail(err, errno, "chdir to overlay mount dir %s", p->mount_cwd);
	if (mount("overlay", p->rootfs, "overlay", 0, data) < 0)
		return berth_fail(err, errno, "mount overlay on %s (%s)", p->rootfs, data);
	free(data);
	if (chdir("/") < 0)
		return berth_fail(err, errno, "chdir /");
	return 0;
}

/* With a shared root (rshared binds), pivot_root refuses a new root whose parent mount is shared: the mount
 * holding the rootfs directory (the longest mount point of /proc/self/mountinfo above it) is made private in
 * the container's namespace, as runc does. */
static int make_rootfs_parent_private(const char *rootfs, struct berth_err *err)
{
	char real[4096];
	/* in a user namespace the path was resolved before (userns.c) and cannot be walked again */
	if (!realpath(rootfs, real) && snprintf(real, sizeof(real), "%s", rootfs) >= (int)sizeof(real))
		return berth_fail(err, ENAMETOOLONG, "realpath %s", rootfs);
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return berth_fail(err, errno, "open /proc/self/mountinfo");
	char line[8192], best[4096] = "/";
	size_t bestlen = 1;
	while (fgets(line, sizeof(line), f)) {
		char mp[4096];
		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		size_t n = strlen(mp);
		int above = n == 1 || (strncmp(real, mp, n) == 0 && (real[n] == '/' || real[n] == '\0'));
		if (above && n >= bestlen) {
			memcpy(best, mp, n + 1);
			bestlen = n;
		}
	}
	fclose(f);
	if (mount(NULL, best, NULL, MS_PRIVATE, NULL) < 0)
		return berth_fail(err, errno, "make %s private (parent of the rootfs)", best);
	return 0;
}

int rootfs_prepare(struct plan *p, struct berth_err *err)
{
	unsigned long prop = p->root_prop ? p->root_prop : (MS_REC | MS_PRIVATE);
	if (mount(NULL, "/", NULL, prop, NULL) < 0)
		return berth_fail(err, errno, "set the propagation of /");
	if ((prop & MS_SHARED) && make_rootfs_parent_private(p->rootfs, err) < 0)
		return -1;
	if (mount_rootfs(p, err) < 0)
		return -1;
	/* on failure below, fds stay open: the container init exits */
	/* an attached fsmount fd names the root of its mount: no path walk through the host (user namespace) */
	int rootfd = p->rootfs_mnt >= 0 ? fcntl(p->rootfs_mnt, F_DUPFD_CLOEXEC, 3) : open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return berth_fail(err, errno, "open rootfs %s", p->rootfs);
	for (int i = 0; i < p->nmounts; i++)
		if (do_mount(rootfd, &p->mounts[i], err) < 0)
			return -1;
	for (int i = 0; i < p->ndevs; i++)
		if (make_device(rootfd, &p->devs[i], err) < 0)
			return -1;
	for (int i = 0; i < p->nlinks; i++)
		if (make_symlink(rootfd, &p->links[i], err) < 0)
			return -1;
	close(rootfd);
	int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0)
		return berth_fail(err, errno, "open the old root");
	if ((p->rootfs_mnt >= 0 ? fchdir(p->rootfs_mnt) : chdir(p->rootfs)) < 0)
		return berth_fail(err, errno, "chdir %s", p->rootfs);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return berth_fail(err, errno, "pivot_root %s", p->rootfs);
	/* "." still names the new root (a path walk does not climb the old root stacked on it): back to the old
	 * root by fd, so that only its tree becomes slave (the container's shared binds must stay shared) */
	if (fchdir(oldroot) < 0)
		return berth_fail(err, errno, "fchdir to the old root");
	close(oldroot);
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return berth_fail(err, errno, "make old root slave");
	if (umount2(".", MNT_DETACH) < 0)
		return berth_fail(err, errno, "unmount old root");
	if (chdir("/") < 0)
		return berth_fail(err, errno, "chdir / after pivot_root");
	return 0;
}

/* The pty comes from the container's own devpts, so `tty` prints /dev/pts/N inside. The caller passes the
 * master to the shim and makes the slave the container's terminal. */
int rootfs_console(struct plan *p, int *master_out, int *slave_out, struct berth_err *err)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return berth_fail(err, errno, "open /dev/ptmx");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		return berth_fail(err, errno, "unlock pty");
	int n;
	if (ioctl(master, TIOCGPTN, &n) < 0)
		return berth_fail(err, errno, "pty number");
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		return berth_fail(err, errno, "open pty slave");
	if (p->cons_h && p->cons_w) {
		struct winsize ws = {.ws_row = p->cons_h, .ws_col = p->cons_w};
		ioctl(master, TIOCSWINSZ, &ws);
	}
	if (p->mode == MODE_CREATE) {
		/* /dev can be a directory another container shares: create the mount point inside a /dev reached
		 * without symlinks, check that what is there is not a symlink, and bind the slave by fd onto it */
		int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		int dev = rootfd < 0 ? -1 : open_no_symlinks(rootfd, "/dev", O_PATH | O_DIRECTORY);
		if (dev < 0)
			return berth_fail(err, errno, "create /dev/console: open /dev");
		close(rootfd);
		if (mknodat(dev, "console", S_IFREG | 0600, 0) < 0 && errno != EEXIST)
			return berth_fail(err, errno, "create /dev/console");
		int t = openat(dev, "console", O_PATH | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (t < 0 || fstat(t, &st) < 0)
			return berth_fail(err, errno, "open /dev/console");
		if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
			return berth_fail(err, 0, "bind /dev/pts/%d on /dev/console: /dev/console is not a file or a character device", n);
		if (bind_fd(slave, t) < 0)
			return berth_fail(err, errno, "bind /dev/pts/%d on /dev/console", n);
		close(t);
		close(dev);
	}
	*master_out = master;
	*slave_out = slave;
	return 0;
}

static unsigned long mnt_flags_of(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
	return f;
}

static int readonly_path(int rootfd, const char *path, struct berth_err *err)
{
	char fdp[64];
	int fd = open_in_root(rootfd, path, O_PATH);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return berth_fail(err, errno, "readonly path %s", path);
	}
	FDPATH(fdp, fd);
	if (mount(fdp, fdp, NULL, MS_BIND | MS_REC, NULL) < 0)
		return berth_fail(err, errno, "bind readonly path %s", path);
	close(fd);
	fd = open_in_root(rootfd, path, O_PATH);
	if (fd < 0)
		return berth_fail(err, errno, "reopen readonly path %s", path);
	FDPATH(fdp, fd);
	unsigned long keep = mnt_flags_of(fdp);
	if (mount(NULL, fdp, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
		return berth_fail(err, errno, "remount readonly path %s", path);
	close(fd);
	return 0;
}

/* The source of the file masks: the container's /dev/null, reached without symlinks and checked to be the
 * null device (1:3). A /dev shared with another container can have /dev/null replaced by a symlink after
 * the shim made the node; bound by path, that would mask /proc files with a file of the attacker's choice
 * (the CVE-2025-31133 pattern). */
static int open_dev_null(int rootfd, struct berth_err *err)
{
	int fd = open_no_symlinks(rootfd, "/dev/null", O_PATH);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_fail(err, errno, "mask: open /dev/null");
	if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		return berth_fail(err, 0, "mask: /dev/null is not the null device (1:3)");
	return fd;
}

static int mask_path(int rootfd, int *nullfd, const char *path, struct berth_err *err)
{
	char fdp[64];
	/* no symlink anywhere on the way: a masked path is what it names or the container does not start */
	int fd = open_no_symlinks(rootfd, path, O_PATH);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return berth_fail(err, errno, "masked path %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return berth_fail(err, errno, "stat masked path %s", path);
	FDPATH(fdp, fd);
	if (S_ISDIR(st.st_mode)) {
		if (mount("tmpfs", fdp, "tmpfs", MS_RDONLY, "nr_blocks=1,nr_inodes=1") < 0 &&
		    mount("tmpfs", fdp, "tmpfs", MS_RDONLY, "nr_blocks=1,nr_inodes=2") < 0)
			return berth_fail(err, errno, "mask directory %s", path);
	} else {
		if (*nullfd < 0 && (*nullfd = open_dev_null(rootfd, err)) < 0)
			return -1;
		if (bind_fd(*nullfd, fd) < 0)
			return berth_fail(err, errno, "mask %s", path);
	}
	close(fd);
	return 0;
}

int rootfs_finish(struct plan *p, struct berth_err *err)
{
	for (int i = 0; i < p->nsysctls; i++) {
		char path[512];
		snprintf(path, sizeof(path), "/proc/sys/%s", p->sysctls[i].key);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write_all(fd, p->sysctls[i].val, strlen(p->sysctls[i].val)) < 0)
			return berth_fail(err, errno, "write sysctl %s", p->sysctls[i].key);
		close(fd);
	}
	int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return berth_fail(err, errno, "open /");
	for (int i = 0; i < p->ro_paths.n; i++)
		if (readonly_path(rootfd, p->ro_paths.v[i], err) < 0)
			return -1;
	int nullfd = -1;
	for (int i = 0; i < p->masked.n; i++)
		if (mask_path(rootfd, &nullfd, p->masked.v[i], err) < 0)
			return -1;
	if (nullfd >= 0)
		close(nullfd);
	close(rootfd);
	if (p->rootfs_ro) {
		unsigned long keep = mnt_flags_of("/");
		if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
			return berth_fail(err, errno, "remount root read-only");
	}
	return 0;
}
