/* The container init between clone() and execve(): waits for the shim to place it in its
 * cgroups, joins namespaces, builds the root filesystem, confines itself, resolves the
 * command, reports ready and execs on "start". This is the init's top level: every step below
 * returns a struct berth_err, and child_main alone reports it to the shim over the sync socket
 * (close-on-exec, so EOF means exec'd) and exits. */
#include "child.h"

#include "ns.h"
#include "rootfs.h"
#include "security.h"
#include "sync.h"
#include "userns.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const char *env_get(struct plan *p, const char *name)
{
	size_t l = strlen(name);
	const char *v = NULL;
	for (int i = 0; i < p->env.n; i++)
		if (!strncmp(p->env.v[i], name, l) && p->env.v[i][l] == '=')
			v = p->env.v[i] + l + 1;
	return v;
}

/* 1: executable regular file; 0: exists but not executable; -1: stat error (errno). */
static int executable(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (S_ISDIR(st.st_mode) || !(st.st_mode & 0111))
		return 0;
	return 1;
}

/* Go's exec.LookPath, as runc uses it, with the container's PATH; messages match Docker's. */
static char *lookup(struct plan *p, struct berth_err *err)
{
	const char *file = p->args.v[0];
	if (strchr(file, '/')) {
		int r = executable(file);
		if (r < 0) {
			berth_fail_code(err, 127, 0, "exec: \"%s\": stat %s: %s", file, file, strerror(errno));
			return NULL;
		}
		if (r == 0) {
			berth_fail_code(err, 126, 0, "exec: \"%s\": permission denied", file);
			return NULL;
		}
		return (char *)file;
	}
	const char *path = env_get(p, "PATH");
	if (path && *file) {
		const char *s = path;
		for (;;) {
			const char *e = strchr(s, ':');
			size_t l = e ? (size_t)(e - s) : strlen(s);
			char *cand = xmalloc(l + strlen(file) + 3);
			if (l == 0)
				sprintf(cand, "./%s", file);
			else
				sprintf(cand, "%.*s/%s", (int)l, s, file);
			if (executable(cand) == 1)
				return cand;
			free(cand);
			if (!e)
				break;
			s = e + 1;
		}
	}
	berth_fail_code(err, 127, 0, "exec: \"%s\": executable file not found in $PATH", file);
	return NULL;
}

static int setup_stdio(struct plan *p, struct child_fds *fds, int slave, struct berth_err *err)
{
	if (setsid() < 0)
		return berth_fail(err, errno, "setsid");
	if (p->tty) {
		if (ioctl(slave, TIOCSCTTY, 0) < 0)
			return berth_fail(err, errno, "set controlling terminal");
		for (int i = 0; i < 3; i++)
			if (dup2(slave, i) < 0)
				return berth_fail(err, errno, "dup2 pty");
		if (slave > 2)
			close(slave);
		return 0;
	}
	int in = fds->stdin_r;
	if (in < 0) {
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in < 0)
			return berth_fail(err, errno, "open /dev/null");
	}
	if (dup2(in, 0) < 0 || dup2(fds->stdout_w, 1) < 0 || dup2(fds->stderr_w, 2) < 0)
		return berth_fail(err, errno, "dup2 stdio");
	return 0;
}

static int join_cgroups(struct child_fds *fds, struct berth_err *err)
{
	/* Moving oneself ("0" into `tasks`) skips the global threadgroup lock that moving a process by pid
	 * takes, and with it an RCU grace period (10-20 ms) per container start. */
	for (int i = 0; i < fds->ncg_tasks; i++) {
		int fd = open(fds->cg_tasks[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			return berth_fail(err, errno, "join cgroup %s", fds->cg_tasks[i]);
		close(fd);
	}
	return 0;
}

/* Cgroups, OOM score, then the namespaces the plan joins (the clone made the others). */
static int child_enter(struct plan *p, struct child_fds *fds, struct berth_err *err)
{
	if (join_cgroups(fds, err) < 0)
		return -1;
	if (fds->unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
		return berth_fail(err, errno, "create the cgroup namespace");
	if (sec_oom(p, err) < 0)
		return -1;
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	if (p->clone_flags & CLONE_NEWUSER) {
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			return berth_fail(err, errno, "become root in the user namespace");
	}
	return ns_join_paths(p, 0, err) < 0 || ns_proc_join(fds->nsp, p->ns_proc.flags & ~CLONE_NEWPID, err) < 0 ? -1 : 0;
}

/* User namespace (userns.c): as root of the host, the init joins its cgroups, sets its limits, prepares the
 * mounts and joins the pod's namespaces; then it joins the user namespace, unshares the rest (owned by the user
 * namespace) and forks the container's PID 1. Returns in that process only: the init reports its pid and exits. */
static int child_enter_userns(struct plan *p, struct child_fds *fds, struct berth_err *err)
{
	if (join_cgroups(fds, err) < 0 || sec_oom(p, err) < 0)
		return -1;
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* raising a hard limit needs CAP_SYS_RESOURCE of the host: set here, inherited by the fork */
	if (sec_rlimits(p, err) < 0 || userns_prepare_mounts(p, fds->userns_fd, err) < 0)
		return -1;
	/* the pod's namespaces (owned by the user namespace) joined as root of the host, whose paths it can open */
	if (ns_join_paths(p, 0, err) < 0 || ns_join_paths(p, 1, err) < 0 || ns_proc_join(fds->nsp, p->ns_proc.flags, err) < 0)
		return -1;
	if (setns(fds->userns_fd, CLONE_NEWUSER) < 0)
		return berth_fail(err, errno, "join the user namespace");
	close(fds->userns_fd);
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		return berth_fail(err, errno, "become root in the user namespace");
	if (fds->late_flags && unshare((int)fds->late_flags) < 0)
		return berth_fail(err, errno, "create the container's namespaces in its user namespace");
	pid_t pid = fork();
	if (pid < 0)
		return berth_fail(err, errno, "fork the container's first process");
	if (pid > 0)
		_exit(sync_send_pid(fds->sync, pid) < 0 ? 1 : 0);
	/* the shim adopted this process once the init exited: only then does a parent-death signal name it */
	if (sync_expect(fds->sync, SYNC_GO) < 0)
		_exit(1);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	return 0;
}

/* Everything between the go and ready; *path gets the resolved command. */
static int child_setup(struct plan *p, struct child_fds *fds, char **path, struct berth_err *err)
{
	if ((fds->userns_fd >= 0 ? child_enter_userns(p, fds, err) : child_enter(p, fds, err)) < 0)
		return -1;

	if (p->mode == MODE_CREATE && rootfs_prepare(p, err) < 0)
		return -1;
	int slave = -1;
	if (p->tty) {
		int master;
		if (rootfs_console(p, &master, &slave, err) < 0 || sync_send_fd(fds->sync, master, err) < 0)
			return -1;
		close(master);
	}
	if (p->mode == MODE_CREATE) {
		if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
			return berth_fail(err, errno, "sethostname");
		if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
			return berth_fail(err, errno, "setdomainname");
		if (rootfs_finish(p, err) < 0)
			return -1;
	}
	if (sec_rlimits(p, err) < 0)
		return -1;

	const char *cwd = p->cwd && *p->cwd ? p->cwd : "/";
	if (p->mode == MODE_CREATE) {
		int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		int d = rootfd < 0 ? -1 : mkdir_all_in_root(rootfd, cwd, 0755, p->cwd_uid, p->cwd_gid);
		if (d < 0)
			return berth_fail(err, errno, "create working directory %s", cwd);
		close(d);
		close(rootfd);
	}
	if (!(*path = lookup(p, err)) || setup_stdio(p, fds, slave, err) < 0)
		return -1;

	if (p->seccomp && !p->nnp && sec_seccomp(p, err) < 0) /* needs CAP_SYS_ADMIN: before the caps are dropped */
		return -1;
	if (sec_user_caps(p, err) < 0)
		return -1;
	if (chdir(cwd) < 0)
		return berth_fail(err, errno, "chdir to cwd (\"%s\") set in config.json failed", cwd);
	if (sec_nnp(p, err) < 0)
		return -1;
	umask(p->umask);
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 4096; fd++)
			if (fd != fds->sync)
				close(fd);
	}
	if (p->seccomp && p->nnp && sec_seccomp(p, err) < 0) /* as late as possible */
		return -1;
	return 0;
}

__attribute__((noreturn)) static void fail(int sync, const struct berth_err *err)
{
	sync_send_error(sync, err);
	_exit(err->code);
}

void child_main(struct plan *p, struct child_fds *fds)
{
	sigset_t all;
	sigemptyset(&all);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	umask(0);

	if (sync_expect(fds->sync, SYNC_GO) < 0)
		_exit(1);
	struct berth_err err;
	char *path = NULL;
	if (child_setup(p, fds, &path, &err) < 0)
		fail(fds->sync, &err);
	if (sync_send(fds->sync, SYNC_READY) < 0 || sync_expect(fds->sync, SYNC_START) < 0)
		_exit(1);
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	static char *noenv[] = {NULL};
	execve(path, p->args.v, p->env.v ? p->env.v : noenv);
	int e = errno;
	if (e == EACCES)
		berth_fail_code(&err, 126, 0, "exec: \"%s\": permission denied", p->args.v[0]);
	else if (e == ENOENT)
		berth_fail_code(&err, 127, 0, "exec: \"%s\": no such file or directory", p->args.v[0]);
	else
		berth_fail_code(&err, 126, e, "exec %s", path);
	fail(fds->sync, &err);
}
