/* `berth-shim spawner`: started once by berthd (stdin: requests, stdout: replies, stderr: its log), it forks
 * shims so berthd's big Node process does not have to fork for each one. The spawner runs from the sealed
 * memfd like any shim, so a forked shim runs the sealed copy without another exec.
 *
 * Request, one line:  <id> TAB create|exec TAB <plan-file> TAB <shim-log> LF
 * Reply, one line:    <id> SP <the shim's report line ("ok <pid>" / "err <code> <message>")> LF
 *                     or "<id>" alone (LF) when the shim exited without a report (see its log).
 * The shim's fd 0/1 are /dev/null, fd 2 its log (append), fd 3 the report pipe, as when berthd spawns it.
 * Shims are the spawner's children (it reaps them); each makes itself a session leader, so neither the
 * spawner's death (EOF on stdin ends it once the pending reports are passed on) nor its signals reach the shims, which are then
 * re-parented like any orphan. */
#include "spawner.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PENDING 64
#define REQ_MAX 8192
#define REPORT_MAX 1600

struct pending {
	int fd; /* read end of the shim's report pipe */
	char id[32];
	char buf[REPORT_MAX];
	size_t len;
};

static struct pending pend[MAX_PENDING];
static int npend;
static char reqbuf[REQ_MAX];
static size_t reqlen;
static int eof; /* no more requests: exit once the pending reports are passed on */

static void reply(const char *id, const char *line, size_t n)
{
	char out[32 + REPORT_MAX + 2];
	size_t il = strlen(id);
	memcpy(out, id, il);
	size_t o = il;
	if (n) {
		out[o++] = ' ';
		memcpy(out + o, line, n);
		o += n;
	}
	out[o++] = '\n';
	if (write_all(1, out, o) < 0)
		_exit(0); /* berthd is gone */
}

static void finish_pending(int i)
{
	struct pending *pp = &pend[i];
	char *nl = memchr(pp->buf, '\n', pp->len);
	reply(pp->id, pp->buf, nl ? (size_t)(nl - pp->buf) : 0);
	close(pp->fd);
	pend[i] = pend[--npend];
}

static int move_high(int fd)
{
	int n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	close(fd);
	return n;
}

/* In the forked child: set up fds 0-3 like berthd's spawn did, then become the shim. */
static void become_shim(shim_run_fn run, const char *mode, const char *plan, const char *log, int report_w, int sigfd)
{
	close(sigfd);
	report_w = move_high(report_w);
	int logfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (logfd >= 0)
		logfd = move_high(logfd);
	if (null >= 0)
		null = move_high(null);
	if (report_w < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || (logfd >= 0 && dup2(logfd, 2) < 0) ||
	    dup2(report_w, 3) < 0)
		_exit(127);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	_exit(run(mode, plan)); /* run closes every fd above 3 */
}

static void handle_request(shim_run_fn run, char *line, int sigfd)
{
	char *f[4];
	int n = 0;
	for (char *p = line; n < 4; n++) {
		f[n] = p;
		char *t = strchr(p, '\t');
		if (!t) {
			n++;
			break;
		}
		*t = '\0';
		p = t + 1;
	}
	if (n != 4 || strlen(f[0]) >= sizeof(pend[0].id) || (strcmp(f[1], "create") && strcmp(f[1], "exec"))) {
		shim_log("spawner: malformed request");
		if (n >= 1 && strlen(f[0]) < sizeof(pend[0].id))
			reply(f[0], "err 128 malformed spawn request", strlen("err 128 malformed spawn request"));
		return;
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		char msg[128];
		int l = snprintf(msg, sizeof(msg), "err 128 spawner: pipe: %s", strerror(errno));
		reply(f[0], msg, (size_t)l);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		char msg[128];
		int l = snprintf(msg, sizeof(msg), "err 128 spawner: fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		reply(f[0], msg, (size_t)l);
		return;
	}
	if (pid == 0) {
		close(pfd[0]);
		become_shim(run, f[1], f[2], f[3], pfd[1], sigfd);
	}
	close(pfd[1]);
	struct pending *pp = &pend[npend++];
	pp->fd = pfd[0];
	pp->len = 0;
	snprintf(pp->id, sizeof(pp->id), "%s", f[0]);
}

static void read_report(int i)
{
	struct pending *pp = &pend[i];
	ssize_t r = read(pp->fd, pp->buf + pp->len, sizeof(pp->buf) - 1 - pp->len);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r > 0)
		pp->len += (size_t)r;
	if (r <= 0 || memchr(pp->buf, '\n', pp->len) || pp->len == sizeof(pp->buf) - 1)
		finish_pending(i);
}

/* Starts the buffered complete requests while there is room for them. */
static void handle_buffered(shim_run_fn run, int sigfd)
{
	char *start = reqbuf;
	char *nl;
	while (npend < MAX_PENDING && (nl = memchr(start, '\n', reqlen - (size_t)(start - reqbuf)))) {
		*nl = '\0';
		handle_request(run, start, sigfd);
		start = nl + 1;
	}
	size_t left = reqlen - (size_t)(start - reqbuf);
	memmove(reqbuf, start, left);
	reqlen = left;
}

/* Returns 0 to continue, -1 at EOF (berthd gone) or on a request too long to buffer. */
static int read_requests(shim_run_fn run, int sigfd)
{
	ssize_t r = read(0, reqbuf + reqlen, sizeof(reqbuf) - reqlen);
	if (r < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (r == 0)
		return -1;
	reqlen += (size_t)r;
	handle_buffered(run, sigfd);
	if (reqlen == sizeof(reqbuf)) {
		shim_log("spawner: request too long");
		return -1;
	}
	return 0;
}

int spawner_main(shim_run_fn run)
{
	if (chdir("/") < 0)
		shim_log("spawner: chdir /: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0) {
		shim_log("fatal: spawner: signalfd: %s", strerror(errno));
		return 1;
	}
	for (;;) {
		struct pollfd pf[MAX_PENDING + 2];
		int n = 0;
		pf[n++] = (struct pollfd){sigfd, POLLIN, 0};
		int i_req = -1;
		if (eof && !npend)
			return 0; /* berthd is gone and every report is passed on */
		if (!eof && npend < MAX_PENDING) {
			i_req = n;
			pf[n++] = (struct pollfd){0, POLLIN, 0};
		}
		int base = n;
		int np = npend;
		for (int i = 0; i < np; i++)
			pf[n++] = (struct pollfd){pend[i].fd, POLLIN, 0};
		if (poll(pf, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			shim_log("fatal: spawner: poll: %s", strerror(errno));
			return 1;
		}
		if (pf[0].revents) {
			struct signalfd_siginfo si;
			while (read(sigfd, &si, sizeof(si)) == sizeof(si))
				;
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
		}
		/* highest first: finish_pending moves the last entry into the hole */
		for (int i = np - 1; i >= 0; i--)
			if (pf[base + i].revents)
				read_report(i);
		if (i_req >= 0 && pf[i_req].revents && read_requests(run, sigfd) < 0)
			eof = 1;
		/* requests buffered while the pending table was full */
		if (npend < MAX_PENDING && reqlen)
			handle_buffered(run, sigfd);
	}
}
