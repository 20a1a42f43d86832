/* userns.c on its own (needs root, skips itself otherwise): a user namespace made with maps, and the mounts an
 * init prepares before it joins one: the rootfs overlay over idmapped layers and the binds, idmapped or not, as
 * detached mounts (seen from the host through an idmapped mount, a root-owned file is the mapped root's). */
#include "check.h"
#include "../plan.h"
#include "../userns.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/berth-userns-test-XXXXXX";

static void path(char *out, const char *name)
{
	snprintf(out, 256, "%s/%s", dir, name);
}

static void make_dir(const char *name)
{
	char p[256];
	path(p, name);
	if (mkdir(p, 0755) < 0) {
		perror(p);
		exit(2);
	}
}

static void make_file(const char *name)
{
	char p[256];
	path(p, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "x\n", 2) != 2 || close(fd) < 0) {
		perror(p);
		exit(2);
	}
}

/* the uid_map a process sees once it joined the namespace */
static void read_uid_map(int ufd, char *out, size_t outlen)
{
	int pp[2];
	if (pipe(pp) < 0)
		exit(2);
	pid_t c = fork();
	if (c == 0) {
		close(pp[0]);
		if (setns(ufd, CLONE_NEWUSER) < 0)
			_exit(1);
		int fd = open("/proc/self/uid_map", O_RDONLY);
		char b[256];
		ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof(b));
		if (n > 0)
			(void)!write(pp[1], b, (size_t)n);
		_exit(0);
	}
	close(pp[1]);
	ssize_t n = read(pp[0], out, outlen - 1);
	out[n > 0 ? n : 0] = '\0';
	close(pp[0]);
	waitpid(c, NULL, 0);
}

static uid_t owner_at(int fd, const char *name)
{
	struct stat st;
	return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? (uid_t)-1 : st.st_uid;
}

int main(void)
{
	if (geteuid() != 0) {
		printf("userns_test: skipped (needs root)\n");
		return 0;
	}
	if (!mkdtemp(dir))
		return 2;
	struct berth_err err;
	int ufd = userns_create("0 3300000 65536\n", "0 3300000 65536\n", &err);
	CHECK(ufd >= 0);
	if (ufd < 0) {
		fprintf(stderr, "userns_create: %s\n", err.msg);
		return check_report("userns_test");
	}
	char map[256];
	read_uid_map(ufd, map, sizeof(map));
	CHECK(strstr(map, "3300000") && strstr(map, "65536"));

	make_dir("layer");
	make_file("layer/image-file");
	make_dir("upper");
	make_dir("work");
	make_dir("rootfs");
	make_dir("vol");
	make_file("vol/host-file");
	char layer[256], upper[256], work[256], rootfs[256], vol[256];
	path(layer, "layer");
	path(upper, "upper");
	path(work, "work");
	path(rootfs, "rootfs");
	path(vol, "vol");

	struct plan p;
	memset(&p, 0, sizeof(p));
	p.rootfs_mnt = -1;
	p.rootfs_kind = ROOTFS_OVERLAY;
	p.rootfs = rootfs;
	char *lowers[] = {layer};
	p.lowers.v = lowers;
	p.lowers.n = 1;
	p.upper = upper;
	p.work = work;
	struct mount_ent mounts[] = {
		{"bind", vol, "/mapped", "", MS_BIND | MS_REC | MS_RDONLY, 0, 0, 1, -1},
		{"bind", vol, "/plain", "", MS_BIND | MS_REC, 0, 0, 0, -1},
		{"tmpfs", "tmpfs", "/tmp", "", 0, 0, 0, 0, -1},
	};
	p.mounts = mounts;
	p.nmounts = 3;

	int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r = userns_prepare_mounts(&p, ufd, &err);
	CHECK(r == 0);
	if (r < 0)
		fprintf(stderr, "userns_prepare_mounts: %s\n", err.msg);
	char here[256];
	/* the mount point is left as the working directory (unshare(CLONE_NEWNS) carries it over) */
	CHECK(getcwd(here, sizeof(here)) && !strcmp(here, rootfs));
	if (fchdir(cwd) < 0)
		return 2;
	/* seen from the host, an idmapped root-owned file is the mapped root's; the plain bind shows it as it is */
	CHECK(p.rootfs_mnt >= 0 && owner_at(p.rootfs_mnt, "image-file") == 3300000);
	CHECK(mounts[0].prefd >= 0 && owner_at(mounts[0].prefd, "host-file") == 3300000);
	CHECK(mounts[1].prefd >= 0 && owner_at(mounts[1].prefd, "host-file") == 0);
	CHECK(mounts[2].prefd == -1); /* not a bind: mounted by the init itself */
	struct statvfs sv;
	CHECK(fstatvfs(mounts[0].prefd, &sv) == 0 && (sv.f_flag & ST_RDONLY));
	CHECK(fstatvfs(mounts[1].prefd, &sv) == 0 && !(sv.f_flag & ST_RDONLY));
	/* the overlay writes to the upper directory, not idmapped: a file the host's root makes is root's there */
	int f = openat(p.rootfs_mnt, "new", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(f >= 0);
	if (f >= 0)
		close(f);
	char newp[256];
	path(newp, "upper/new");
	struct stat st;
	CHECK(stat(newp, &st) == 0);
	/* nothing of it is attached anywhere: the detached mounts go with their fds */
	close(p.rootfs_mnt);
	close(mounts[0].prefd);
	close(mounts[1].prefd);
	close(ufd);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "userns_test: could not remove %s\n", dir);
	free(p.rootfs != rootfs ? p.rootfs : NULL);
	return check_report("userns_test");
}
