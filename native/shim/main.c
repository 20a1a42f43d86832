/* berth-shim: one per container (and one per exec). Started detached by berthd with
 *   berth-shim create|exec <plan-file>
 * or forked by `berth-shim spawner` (spawner.c), a small long-lived process berthd asks for shims:
 * forking berthd's large Node process for each shim costs several ms more than forking the spawner.
 * fd 3 (optional) is the report pipe: one line "ok <pid>" once the container is created
 * and waiting for start, or "err <exit-code> <message>". stdin/stdout are /dev/null, stderr
 * is the shim's own diagnostic log. The shim re-executes itself from a sealed memfd so no
 * process can write the host binary through /proc/<pid>/exe. */
#include "exitrec.h"
#include "launch.h"
#include "plan.h"
#include "server.h"
#include "spawner.h"
#include "util.h"

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
	struct berth_err e;
	if (plan_load(plan_path, &p, &e) < 0)
		setup_failed(NULL, 0, e.code, e.msg);
	if ((p.mode == MODE_EXEC) != !strcmp(mode, "exec"))
		setup_failed(&p, 0, 128, "plan mode does not match the command line");

	setsid();
	if (chdir("/") < 0) /* hold no directory of berthd's busy */
		shim_log("chdir /: %s", strerror(errno));
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (write_str("/proc/self/oom_score_adj", "-999") < 0)
		shim_log("lower own oom_score_adj: %s (continuing)", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	p.last_cap = read_last_cap();

	struct launch l;
	if (launch_init(&p, report_fd, &l, &e) < 0)
		setup_failed(&p, l.pid, e.code, e.msg);
	pid_t pid = l.pid;
	int pty = l.pty_master;
	/* The container is forked (with the normal policy): from now on the shim, which only moves its output, is a
	 * batch task, so a wake-up for output does not preempt the workload that produces it; under load the output
	 * is moved in fewer, larger reads. On an idle CPU it runs at once, as before. */
	struct sched_param sp = {0};
	if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0)
		shim_log("SCHED_BATCH: %s (continuing)", strerror(errno));

	struct supervisor s = {.p = &p, .init_pid = pid, .sync_fd = l.sync_fd, .out_fd = l.out_r, .err_fd = l.err_r,
			       .in_fd = l.in_w, .pty_master = pty, .log = NULL};
	if (pty >= 0) {
		fcntl(pty, F_SETFL, O_NONBLOCK);
		s.out_fd = pty;
		s.in_fd = p.open_stdin ? pty : -1;
	}
	if (s.in_fd >= 0)
		fcntl(s.in_fd, F_SETFL, O_NONBLOCK);
	fcntl(l.sync_fd, F_SETFL, O_NONBLOCK);
	if (p.log_path && *p.log_path)
		s.log = logw_open(p.log_path, p.log_max_size, p.log_max_file, p.log_cri, p.log_compress, p.log_attrs);
	int lfd = server_listen(p.socket);
	if (lfd < 0) {
		berth_fail(&e, errno, "listen on %s", p.socket);
		setup_failed(&p, pid, e.code, e.msg);
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
