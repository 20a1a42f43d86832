/* The container init between clone() and execve(): waits for the shim to place it in its
 * cgroups, joins namespaces, builds the root filesystem, confines itself, resolves the
 * command, reports ready and execs on "start". Every failure goes back to the shim as
 * errno + message over the sync socket; the socket is close-on-exec, so EOF means exec'd. */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

int child_sync_fd = -1;

void child_fail(int code, int err, const char *fmt, ...)
{
	struct sync_error e;
	memset(&e, 0, sizeof(e));
	e.tag = SYNC_ERROR;
	e.err = err;
	e.exit_code = code;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	if (err && n >= 0 && (size_t)n < sizeof(e.msg))
		snprintf(e.msg + n, sizeof(e.msg) - (size_t)n, ": %s", strerror(err));
	(void)!send(child_sync_fd, &e, sizeof(e), MSG_NOSIGNAL);
	_exit(code);
}

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
static char *lookup(struct plan *p)
{
	const char *file = p->args.v[0];
	if (strchr(file, '/')) {
		int r = executable(file);
		if (r < 0)
			child_fail(127, 0, "exec: \"%s\": stat %s: %s", file, file, strerror(errno));
		if (r == 0)
			child_fail(126, 0, "exec: \"%s\": permission denied", file);
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
	child_fail(127, 0, "exec: \"%s\": executable file not found in $PATH", file);
}

static void setup_stdio(struct plan *p, struct child_fds *fds, int slave)
{
	if (setsid() < 0)
		child_fail(128, errno, "setsid");
	if (p->tty) {
		if (ioctl(slave, TIOCSCTTY, 0) < 0)
			child_fail(128, errno, "set controlling terminal");
		for (int i = 0; i < 3; i++)
			if (dup2(slave, i) < 0)
				child_fail(128, errno, "dup2 pty");
		if (slave > 2)
			close(slave);
		return;
	}
	int in = fds->stdin_r;
	if (in < 0) {
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in < 0)
			child_fail(128, errno, "open /dev/null");
	}
	if (dup2(in, 0) < 0 || dup2(fds->stdout_w, 1) < 0 || dup2(fds->stderr_w, 2) < 0)
		child_fail(128, errno, "dup2 stdio");
}

void child_main(struct plan *p, struct child_fds *fds)
{
	child_sync_fd = fds->sync;
	sigset_t all;
	sigemptyset(&all);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	umask(0);

	char go;
	if (read(fds->sync, &go, 1) != 1 || go != SYNC_GO)
		_exit(1);
	/* Moving oneself ("0" into `tasks`) skips the global threadgroup lock that moving a process by pid
	 * takes, and with it an RCU grace period (10-20 ms) per container start. */
	for (int i = 0; i < fds->ncg_tasks; i++) {
		int fd = open(fds->cg_tasks[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			child_fail(128, errno, "join cgroup %s", fds->cg_tasks[i]);
		close(fd);
	}
	sec_oom(p);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	if (p->clone_flags & CLONE_NEWUSER) {
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			child_fail(128, errno, "become root in the user namespace");
	}
	struct berth_err nserr;
	if (ns_join_paths(p, 0, &nserr) < 0 || ns_proc_join(fds->nsp, p->ns_proc.flags & ~CLONE_NEWPID, &nserr) < 0)
		child_fail(nserr.code, 0, "%s", nserr.msg);

	if (p->mode == MODE_CREATE)
		rootfs_prepare(p);
	int slave = -1;
	if (p->tty)
		rootfs_console(p, &slave);
	if (p->mode == MODE_CREATE) {
		if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
			child_fail(128, errno, "sethostname");
		if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
			child_fail(128, errno, "setdomainname");
		rootfs_finish(p);
	}
	sec_rlimits(p);

	const char *cwd = p->cwd && *p->cwd ? p->cwd : "/";
	if (p->mode == MODE_CREATE) {
		int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		int d = rootfd < 0 ? -1 : mkdir_all_in_root(rootfd, cwd, 0755, p->cwd_uid, p->cwd_gid);
		if (d < 0)
			child_fail(128, errno, "create working directory %s", cwd);
		close(d);
		close(rootfd);
	}
	char *path = lookup(p);
	setup_stdio(p, fds, slave);

	if (p->seccomp && !p->nnp)
		sec_seccomp(p); /* needs CAP_SYS_ADMIN: before the caps are dropped */
	sec_user_caps(p);
	if (chdir(cwd) < 0)
		child_fail(128, errno, "chdir to cwd (\"%s\") set in config.json failed", cwd);
	sec_nnp(p);
	umask(p->umask);
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 4096; fd++)
			if (fd != fds->sync)
				close(fd);
	}
	if (p->seccomp && p->nnp)
		sec_seccomp(p); /* as late as possible */

	char tag = SYNC_READY;
	if (write(fds->sync, &tag, 1) != 1)
		_exit(1);
	char start;
	if (read(fds->sync, &start, 1) != 1 || start != SYNC_START)
		_exit(1);
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	static char *noenv[] = {NULL};
	execve(path, p->args.v, p->env.v ? p->env.v : noenv);
	int e = errno;
	if (e == EACCES)
		child_fail(126, 0, "exec: \"%s\": permission denied", p->args.v[0]);
	if (e == ENOENT)
		child_fail(127, 0, "exec: \"%s\": no such file or directory", p->args.v[0]);
	child_fail(126, e, "exec %s", path);
}
