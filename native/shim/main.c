/* berth-shim: one per container (and one per exec). Started detached by berthd with
 *   berth-shim create|exec <plan-file>
 * or forked by `berth-shim spawner` (spawner.c), a small long-lived process berthd asks for shims:
 * forking berthd's large Node process for each shim costs several ms more than forking the spawner.
 * fd 3 (optional) is the report pipe: one line "ok <pid>" once the container is created
 * and waiting for start, or "err <exit-code> <message>". stdin/stdout are /dev/null, stderr
 * is the shim's own diagnostic log. The shim re-executes itself from a sealed memfd so no
 * process can write the host binary through /proc/<pid>/exe. */
#include "child.h"
#include "exitrec.h"
#include "ns.h"
#include "plan.h"
#include "server.h"
#include "spawner.h"
#include "sync.h"
#include "util.h"


#define OUTPUT_PIPE_SIZE (256 * 1024)

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CGROUP_JOINS 32

/* struct clone_args of <linux/sched.h> (v2, with cgroup), spelled out: that header clashes with <sched.h> */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;
static int report_fd = -1;

static void report(const char *line)
{
	if (report_fd < 0)
		return;
	(void)!write_all(report_fd, line, strlen(line));
	close(report_fd);
	report_fd = -1;
}

#define SHIM_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* Whether this process runs from the sealed copy: asked of the executable itself, never of the
 * environment, which whoever starts the binary from disk controls. */
static int running_sealed(void)
{
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int seals = fcntl(fd, F_GET_SEALS);
	close(fd);
	return seals >= 0 && (seals & SHIM_SEALS) == SHIM_SEALS;
}

/* Re-executes the shim from a sealed memfd copy unless it already runs from one; returns only on failure. */
static int ensure_sealed(char **argv, struct berth_err *err)
{
	if (running_sealed())
		return 0;
	int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int m = memfd_create("berth-shim", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	struct stat st;
	if (exe < 0 || m < 0 || fstat(exe, &st) < 0)
		return berth_fail(err, errno, "sealed copy");
	off_t off = 0;
	while (off < st.st_size) {
		ssize_t n = sendfile(m, exe, &off, (size_t)(st.st_size - off));
		if (n <= 0)
			return berth_fail(err, n < 0 ? errno : EIO, "sealed copy");
	}
	close(exe);
	if (fcntl(m, F_ADD_SEALS, SHIM_SEALS) < 0)
		return berth_fail(err, errno, "seal");
	fexecve(m, argv, environ);
	return berth_fail(err, errno, "fexecve sealed copy");
}

static int write_str_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = write_all(fd, s, strlen(s));
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

static int read_last_cap(void)
{
	char buf[16] = {0};
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 40;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : 40;
}

/* Failure before the container exists: exit file + report, then exit. */
static void setup_failed(struct plan *p, pid_t pid, int code, const char *msg)
{
	int st = 0;
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	struct exit_record rec;
	exit_record_build(&rec, code, 0, pid, msg);
	if (p && p->exit_file && exit_record_save(&rec, p->exit_file) < 0)
		shim_log("write exit file: %s", strerror(errno));
	char line[1500];
	snprintf(line, sizeof(line), "err %d %s\n", code, msg);
	for (char *c = line + 4; *c && c[1]; c++)
		if (*c == '\n')
			*c = ' ';
	shim_log("setup failed: %s", msg);
	report(line);
	_exit(1);
}

static void write_state(struct plan *p, pid_t init)
{
	if (!p->state_file)
		return;
	char js[256];
	int n = snprintf(js, sizeof(js), "{\"shimPid\":%d,\"shimStart\":%llu,\"initPid\":%d,\"initStart\":%llu}\n",
			 (int)getpid(), proc_start_time(getpid()), (int)init, proc_start_time(init));
	if (write_file_atomic(p->state_file, js, (size_t)n, 0644, 0) < 0)
		shim_log("write state file: %s", strerror(errno));
}

/* The shim proper, from the report pipe on (fd 3 when valid) to the end of the container's life. */
static int shim_run(const char *mode, const char *plan_path)
{
	if (fcntl(3, F_GETFD) >= 0) {
		report_fd = 3;
		fcntl(3, F_SETFD, FD_CLOEXEC);
	}
	/* nothing inherited beyond stdio and the report pipe */
	if (syscall(SYS_close_range, 4U, ~0U, 0) < 0)
		for (int fd = 4; fd < 1024; fd++)
			close(fd);

	static struct plan p;
	char err[512];
	struct berth_err e;
	if (plan_load(plan_path, &p, &e) < 0)
		setup_failed(NULL, 0, e.code, e.msg);
	if ((p.mode == MODE_EXEC) != !strcmp(mode, "exec"))
		setup_failed(&p, 0, 128, "plan mode does not match the command line");

	setsid();
	if (chdir("/") < 0) /* hold no directory of berthd's busy */
		shim_log("chdir /: %s", strerror(errno));
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (write_str_file("/proc/self/oom_score_adj", "-999") < 0)
		shim_log("lower own oom_score_adj: %s (continuing)", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	p.last_cap = read_last_cap();

	/* stdio */
	int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
	if (!p.tty) {
		if ((p.open_stdin && pipe2(in_p, O_CLOEXEC) < 0) || pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0)
			setup_failed(&p, 0, 128, "create stdio pipes");
		/* bigger output pipes: fewer wake-ups of the shim and the writer on bulk output (best effort) */
		fcntl(out_p[0], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
		fcntl(err_p[0], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		setup_failed(&p, 0, 128, "create sync socket");

	/* exec: pin the container's init (checked by its start time) before anything is joined */
	struct ns_proc nsp = {.pid = 0, .pidfd = -1, .procfd = -1};
	if (p.ns_proc.pid && ns_proc_open(&p.ns_proc, &nsp, &e) < 0)
		setup_failed(&p, 0, e.code, e.msg);
	/* joining a pid namespace only affects children: do it here, before clone */
	if (ns_join_paths(&p, 1, &e) < 0 || ((p.ns_proc.flags & CLONE_NEWPID) && ns_proc_join(&nsp, CLONE_NEWPID, &e) < 0))
		setup_failed(&p, 0, e.code, e.msg);

	/* Cgroups, without moving the child by pid (cgroup.procs), which waits for an RCU grace period:
	 * v1 hierarchies are joined by the child itself through `tasks` (not possible from a new user
	 * namespace), a cgroup2 directory by clone3(CLONE_INTO_CGROUP). Whatever is left is written here. */
	static char *cg_tasks[MAX_CGROUP_JOINS], *cg_procs[MAX_CGROUP_JOINS];
	int ncg_tasks = 0, ncg_procs = 0, cg2_fd = -1;
	const char *cg2_procs = NULL;
	for (int i = 0; i < p.cgroup_procs.n; i++) {
		char *procs = p.cgroup_procs.v[i];
		size_t l = strlen(procs);
		const size_t sl = strlen("cgroup.procs");
		if (l > sl && !strcmp(procs + l - sl, "cgroup.procs") && ncg_tasks < MAX_CGROUP_JOINS) {
			char *tasks = xmalloc(l);
			memcpy(tasks, procs, l - sl);
			strcpy(tasks + l - sl, "tasks");
			if (access(tasks, F_OK) == 0) {
				if (!(p.clone_flags & CLONE_NEWUSER)) {
					cg_tasks[ncg_tasks++] = tasks;
					continue;
				}
			} else if (cg2_fd < 0) {
				tasks[l - sl] = '\0';
				cg2_fd = open(tasks, O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (cg2_fd >= 0) {
					cg2_procs = procs;
					free(tasks);
					continue;
				}
			}
			free(tasks);
		}
		if (ncg_procs < MAX_CGROUP_JOINS)
			cg_procs[ncg_procs++] = procs;
	}

	pid_t pid = -1;
	if (cg2_fd >= 0) {
		struct clone3_args ca;
		memset(&ca, 0, sizeof(ca));
		ca.flags = (uint64_t)p.clone_flags | CLONE_INTO_CGROUP;
		ca.exit_signal = SIGCHLD;
		ca.cgroup = (uint64_t)cg2_fd;
		pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
		if (pid < 0) {
			/* an older kernel or a filter without clone3: move the child the slow way */
			if (ncg_procs < MAX_CGROUP_JOINS)
				cg_procs[ncg_procs++] = (char *)cg2_procs;
		}
		if (pid != 0) {
			close(cg2_fd);
			cg2_fd = -1;
		}
	}
	if (pid < 0)
		pid = (pid_t)syscall(SYS_clone, (unsigned long)(p.clone_flags | SIGCHLD), NULL, NULL, NULL, NULL);
	if (pid < 0) {
		snprintf(err, sizeof(err), "clone: %s", strerror(errno));
		setup_failed(&p, 0, 128, err);
	}
	if (pid == 0) {
		if (report_fd >= 0)
			close(report_fd);
		close(sv[0]);
		if (in_p[1] >= 0)
			close(in_p[1]);
		if (out_p[0] >= 0)
			close(out_p[0]);
		if (err_p[0] >= 0)
			close(err_p[0]);
		if (cg2_fd >= 0)
			close(cg2_fd);
		struct child_fds fds = {.sync = sv[1], .stdin_r = in_p[0], .stdout_w = out_p[1], .stderr_w = err_p[1],
					.cg_tasks = cg_tasks, .ncg_tasks = ncg_tasks, .nsp = &nsp};
		child_main(&p, &fds);
	}
	close(sv[1]);
	ns_proc_close(&nsp);
	if (in_p[0] >= 0)
		close(in_p[0]);
	if (out_p[1] >= 0)
		close(out_p[1]);
	if (err_p[1] >= 0)
		close(err_p[1]);

	/* place the child in its cgroups before it runs anything of the container */
	char pidstr[32];
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	for (int i = 0; i < ncg_procs; i++) {
		if (write_str_file(cg_procs[i], pidstr) < 0) {
			snprintf(err, sizeof(err), "join cgroup %s: %s", cg_procs[i], strerror(errno));
			setup_failed(&p, pid, 128, err);
		}
	}
	if (p.clone_flags & CLONE_NEWUSER) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
		if (p.uid_map && write_str_file(path, p.uid_map) < 0)
			setup_failed(&p, pid, 128, "write uid_map");
		snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
		if (p.gid_map && write_str_file(path, p.gid_map) < 0)
			setup_failed(&p, pid, 128, "write gid_map");
	}
	if (sync_send(sv[0], SYNC_GO) < 0)
		setup_failed(&p, pid, 128, "container init vanished before setup");

	int pty = -1;
	for (;;) {
		struct sync_error m;
		memset(&m, 0, sizeof(m));
		int passed = -1;
		int r = sync_recv(sv[0], &m, &passed);
		if (r <= 0)
			setup_failed(&p, pid, 128, "container init exited during setup");
		if (m.tag == SYNC_PTY && passed >= 0) {
			pty = passed;
		} else if (m.tag == SYNC_READY) {
			break;
		} else if (m.tag == SYNC_ERROR) {
			setup_failed(&p, pid, m.exit_code ? m.exit_code : 128, m.msg);
		}
	}

	struct supervisor s = {.p = &p, .init_pid = pid, .sync_fd = sv[0], .out_fd = out_p[0], .err_fd = err_p[0],
			       .in_fd = in_p[1], .pty_master = pty, .log = NULL};
	if (pty >= 0) {
		fcntl(pty, F_SETFL, O_NONBLOCK);
		s.out_fd = pty;
		s.in_fd = p.open_stdin ? pty : -1;
	}
	if (s.in_fd >= 0)
		fcntl(s.in_fd, F_SETFL, O_NONBLOCK);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	if (p.log_path && *p.log_path)
		s.log = logw_open(p.log_path, p.log_max_size, p.log_max_file, p.log_cri, p.log_compress, p.log_attrs);
	int lfd = server_listen(p.socket);
	if (lfd < 0) {
		snprintf(err, sizeof(err), "listen on %s: %s", p.socket, strerror(errno));
		setup_failed(&p, pid, 128, err);
	}
	write_state(&p, pid);
	char line[64];
	snprintf(line, sizeof(line), "ok %d\n", (int)pid);
	report(line);
	return supervise(&s, lfd);
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		puts("berth-shim 1");
		return 0;
	}
	struct berth_err err;
	int spawner = argc == 2 && !strcmp(argv[1], "spawner");
	if (!spawner && (argc != 3 || (strcmp(argv[1], "create") && strcmp(argv[1], "exec")))) {
		fprintf(stderr, "usage: berth-shim create|exec <plan-file> | spawner\n");
		return 2;
	}
	if (ensure_sealed(argv, &err) < 0) {
		shim_log("fatal: %s", err.msg);
		return 1;
	}
	if (spawner)
		return spawner_main(shim_run);
	return shim_run(argv[1], argv[2]);
}
