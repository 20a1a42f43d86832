/* The shim's event loop: container output (log + attached clients), stdin, the control
 * socket, child reaping, and the exit record.
 *
 * Socket protocol (SOCK_STREAM, both directions): frames of 1 type byte + 4-byte big-endian
 * length + payload. Client -> shim requests, each answered by one 'r' frame ("ok[ <json>]" or
 * "err <message>") except 'I':
 *   'S' start            'A' attach "<stdout 0|1> <stderr 0|1>[ <direct 0|1|2>]"   'I' stdin bytes (no reply)
 *   'C' close stdin      'W' resize "<rows> <cols>"                'K' kill "<signal> <all 0|1>"
 *   'Q' state -> ok {"state":"created|running|exited","pid":N}      'L' reopen the log file
 * Shim -> client: 'o' stdout bytes, 'e' stderr bytes (attached clients only; a TTY is all 'o'),
 * 'x' exit record (the exit file's JSON) to every client once the output is drained.
 * Direct attach (direct 1: stdcopy frames, 2: raw, answered "ok direct"): the attach frame comes with the API
 * client's socket (SCM_RIGHTS), after berthd has written its HTTP answer there; the output then goes to that
 * socket as Docker sends it instead of as 'o'/'e' frames, so berthd relays nothing. It is written before the 'x'
 * on the connection, and the socket is closed with the connection (berthd ends it once the connection closes).
 * Backpressure: while an attached client has more than CLIENT_OUT_HWM unsent, the shim stops reading the
 * container's output (the container blocks in write(2), as with dockerd's attach), so nothing is lost and
 * nothing grows; a client that makes no progress for CLIENT_STALL_MS while over the mark is disconnected,
 * so a hung daemon cannot hold a container forever. After the init exits, output is read regardless and a
 * client whose unsent output passes CLIENT_OUT_MAX is disconnected.
 * The log is written as output is read, up to an aligned offset (log.c); the tail past it goes out as soon as a
 * poll finds no more output, or after LOG_COMMIT_MS of steady output, so `docker logs` lags by no more than that. */
#include "server.h"

#include "client.h"
#include "exitrec.h"
#include "sync.h"
#include "util.h"

#include <dirent.h>
#include <sched.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define DIRECT_SNDBUF (1024 * 1024)
#define STDIN_MAX (1024 * 1024)
#define DRAIN_MS 5000
#define FLUSH_MS 2000

static struct client_set cl;
static char *stdin_buf;
static size_t stdin_len;
static int stdin_close_pending;
static int started, exited, exit_status;
static char exit_error[1100];
static int have_error;
static int sigfd = -1;

int server_listen(const char *path)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r < 0 || listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static const char *state_name(void)
{
	return exited ? "exited" : started ? "running" : "created";
}

static void exit_record_of(struct supervisor *s, struct exit_record *r)
{
	int code = WIFEXITED(exit_status) ? WEXITSTATUS(exit_status) : 128 + WTERMSIG(exit_status);
	int sig = WIFSIGNALED(exit_status) ? WTERMSIG(exit_status) : 0;
	exit_record_build(r, code, sig, s->init_pid, have_error ? exit_error : NULL);
}

static void kill_all(struct supervisor *s, int sig)
{
	char mine[128], path[64], other[128];
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)s->init_pid);
	ssize_t ml = readlink(path, mine, sizeof(mine) - 1);
	if (ml <= 0 || !(s->p->clone_flags & CLONE_NEWPID)) {
		kill(s->init_pid, sig);
		return;
	}
	mine[ml] = '\0';
	DIR *d = opendir("/proc");
	if (!d) {
		kill(s->init_pid, sig);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		int pid = atoi(e->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
		ssize_t ol = readlink(path, other, sizeof(other) - 1);
		if (ol == ml && memcmp(other, mine, (size_t)ml) == 0)
			kill(pid, sig);
	}
	closedir(d);
}

static void do_start(struct supervisor *s, struct client *c)
{
	if (exited) {
		client_reply(c, "err container has already exited%s%s", have_error ? ": " : "", have_error ? exit_error : "");
		return;
	}
	if (started) {
		client_reply(c, "ok {\"pid\":%d}", (int)s->init_pid);
		return;
	}
	c->want_start = 1;
	static int sent;
	if (!sent) {
		if (sync_send(s->sync_fd, SYNC_START) < 0)
			shim_log("send start: %s", strerror(errno));
		sent = 1;
	}
}

static void handle_frame(void *ctx, struct client *c, char type, char *pl, size_t n)
{
	struct supervisor *s = ctx;
	char buf[64];
	switch (type) {
	case 'S':
		do_start(s, c);
		break;
	case 'A': {
		int o = 0, e = 0, direct = 0;
		snprintf(buf, sizeof(buf), "%.*s", (int)(n < 63 ? n : 63), pl);
		if (sscanf(buf, "%d %d %d", &o, &e, &direct) < 2 || direct < 0 || direct > 2) {
			client_reply(c, "err bad attach request");
			break;
		}
		if (direct) {
			if (c->passed_fd < 0 || c->dfd >= 0) {
				client_reply(c, "err direct attach without a descriptor");
				break;
			}
			c->dfd = c->passed_fd;
			c->passed_fd = -1;
			/* room in the API client's socket for a burst of output, so that it goes there rather than into the
			 * client's queue (a copy, and a send more) while the client catches up */
			int sb = DIRECT_SNDBUF;
			if (setsockopt(c->dfd, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof(sb)) < 0 &&
			    setsockopt(c->dfd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb)) < 0)
				shim_log("attach: socket buffer: %s", strerror(errno));
			c->dframed = direct == 1;
		}
		c->att_out = o, c->att_err = e;
		client_reply(c, direct ? "ok direct" : "ok");
		break;
	}
	case 'I':
		if (s->in_fd < 0 || stdin_close_pending)
			break;
		if (stdin_len + n > STDIN_MAX * 4) {
			shim_log("stdin backlog full: dropping %zu bytes", n);
			break;
		}
		stdin_buf = xrealloc(stdin_buf, stdin_len + n);
		memcpy(stdin_buf + stdin_len, pl, n);
		stdin_len += n;
		break;
	case 'C':
		if (s->in_fd >= 0 && s->pty_master < 0)
			stdin_close_pending = 1;
		client_reply(c, "ok");
		break;
	case 'W': {
		unsigned h, w;
		snprintf(buf, sizeof(buf), "%.*s", (int)(n < 63 ? n : 63), pl);
		if (sscanf(buf, "%u %u", &h, &w) != 2) {
			client_reply(c, "err bad resize request");
			break;
		}
		if (s->pty_master < 0) {
			client_reply(c, "err the container has no TTY");
			break;
		}
		struct winsize ws = {.ws_row = (unsigned short)h, .ws_col = (unsigned short)w};
		if (ioctl(s->pty_master, TIOCSWINSZ, &ws) < 0)
			client_reply(c, "err resize: %s", strerror(errno));
		else
			client_reply(c, "ok");
		break;
	}
	case 'K': {
		int sig = 0, all = 0;
		snprintf(buf, sizeof(buf), "%.*s", (int)(n < 63 ? n : 63), pl);
		if (sscanf(buf, "%d %d", &sig, &all) != 2 || sig < 0 || sig >= NSIG) {
			client_reply(c, "err bad kill request");
			break;
		}
		if (exited) {
			client_reply(c, "err process already finished");
			break;
		}
		if (all)
			kill_all(s, sig);
		else if (kill(s->init_pid, sig) < 0) {
			client_reply(c, "err kill: %s", strerror(errno));
			break;
		}
		client_reply(c, "ok");
		break;
	}
	case 'L':
		if (logw_reopen(s->log) < 0)
			client_reply(c, "err reopen log: %s", strerror(errno));
		else
			client_reply(c, "ok");
		break;
	case 'Q':
		client_reply(c, "ok {\"state\":\"%s\",\"pid\":%d}", state_name(), (int)s->init_pid);
		break;
	default:
		client_reply(c, "err unknown request %c", type);
	}
}

static void reply_start_waiters(struct supervisor *s)
{
	for (int i = 0; i < cl.n; i++) {
		if (!cl.c[i].want_start)
			continue;
		cl.c[i].want_start = 0;
		if (have_error)
			client_reply(&cl.c[i], "err %s", exit_error);
		else
			client_reply(&cl.c[i], "ok {\"pid\":%d}", (int)s->init_pid);
	}
}

static void read_sync(struct supervisor *s)
{
	struct sync_error e;
	int passed = -1;
	int r = sync_recv(s->sync_fd, &e, &passed);
	if (passed >= 0)
		close(passed);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r > 0 && e.tag == SYNC_ERROR) {
		snprintf(exit_error, sizeof(exit_error), "%s", e.msg);
		have_error = 1;
		shim_log("container init failed: %s", exit_error);
	} else if (r > 0) {
		return;
	} else if (!have_error) {
		started = 1; /* EOF: the close-on-exec sync socket went away in execve */
	}
	close(s->sync_fd);
	s->sync_fd = -1;
	reply_start_waiters(s);
}

static void reap(struct supervisor *s)
{
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) == sizeof(si))
		;
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		if (pid == s->init_pid) {
			exited = 1;
			exit_status = st;
		}
	}
}

static void read_output(struct supervisor *s, int *fdp, int stream)
{
	static char *buf;
	if (!buf)
		buf = xmalloc(READ_BUF);
	ssize_t r = read(*fdp, buf, READ_BUF);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) { /* EOF, or EIO on a pty master once the slave is gone */
		if (*fdp != s->pty_master)
			close(*fdp);
		*fdp = -1;
		return;
	}
	logw_data(s->log, stream, buf, (size_t)r);
	clients_broadcast(&cl, stream, buf, (size_t)r);
}

static void write_stdin(struct supervisor *s)
{
	if (stdin_len) {
		ssize_t w = write(s->in_fd, stdin_buf, stdin_len);
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			stdin_len = 0; /* reader gone */
		} else if (w > 0) {
			memmove(stdin_buf, stdin_buf + w, stdin_len - (size_t)w);
			stdin_len -= (size_t)w;
		}
	}
	if (!stdin_len && stdin_close_pending && s->in_fd >= 0 && s->in_fd != s->pty_master) {
		close(s->in_fd);
		s->in_fd = -1;
	}
}

static void finish(struct supervisor *s, int listen_fd)
{
	logw_flush(s->log);
	static struct exit_record rec;
	exit_record_of(s, &rec);
	if (exit_record_save(&rec, s->p->exit_file) < 0)
		shim_log("write exit file %s: %s", s->p->exit_file, strerror(errno));
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(s->p->socket);
	}
	reply_start_waiters(s);
	long long deadline = now_ms() + FLUSH_MS;
	clients_flush_direct(&cl, deadline);
	for (int i = 0; i < cl.n; i++)
		client_queue(&cl.c[i], 'x', rec.json, rec.len);
	clients_flush(&cl, deadline);
}

int supervise(struct supervisor *s, int listen_fd)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0) {
		shim_log("fatal: signalfd: %s", strerror(errno));
		return 1;
	}
	reap(s); /* a child may have exited before the signalfd existed */
	long long drain_deadline = 0, log_since = 0;
	for (;;) {
		if (exited && !drain_deadline)
			drain_deadline = now_ms() + DRAIN_MS;
		if (exited && ((s->out_fd < 0 && s->err_fd < 0) || now_ms() >= drain_deadline))
			break;
		struct pollfd pf[2 * MAX_CLIENTS + 8];
		int n = 0;
		int i_listen = -1, i_sync = -1, i_out = -1, i_err = -1, i_in = -1, i_sig;
		pf[n] = (struct pollfd){sigfd, POLLIN, 0};
		i_sig = n++;
		if (cl.n < MAX_CLIENTS) {
			pf[n] = (struct pollfd){listen_fd, POLLIN, 0};
			i_listen = n++;
		}
		if (s->sync_fd >= 0) {
			pf[n] = (struct pollfd){s->sync_fd, POLLIN, 0};
			i_sync = n++;
		}
		int stall_wait = -1;
		int blocked = !exited && clients_output_blocked(&cl, now_ms(), &stall_wait);
		if (s->out_fd >= 0 && started && !blocked) {
			pf[n] = (struct pollfd){s->out_fd, POLLIN, 0};
			i_out = n++;
		}
		if (s->err_fd >= 0 && started && !blocked) {
			pf[n] = (struct pollfd){s->err_fd, POLLIN, 0};
			i_err = n++;
		}
		if (s->in_fd >= 0 && (stdin_len || stdin_close_pending)) {
			pf[n] = (struct pollfd){s->in_fd, POLLOUT, 0};
			i_in = n++;
		}
		int cbase = n;
		int ncl = cl.n;
		for (int i = 0; i < ncl; i++) {
			short ev = stdin_len > STDIN_MAX ? 0 : POLLIN;
			if (cl.c[i].outoff < cl.c[i].outlen)
				ev |= POLLOUT;
			pf[n++] = (struct pollfd){cl.c[i].fd, ev, 0};
		}
		/* direct clients' API sockets, while output waits for them (fd -1: not polled) */
		int dbase = n;
		for (int i = 0; i < ncl; i++)
			pf[n++] = (struct pollfd){client_direct_pending(&cl.c[i]) ? cl.c[i].dfd : -1, POLLOUT, 0};
		int timeout = exited ? (int)(drain_deadline - now_ms()) : -1;
		if (exited && timeout < 0)
			timeout = 0;
		if (!exited && stall_wait >= 0)
			timeout = stall_wait;
		if (!logw_pending(s->log)) {
			log_since = 0;
		} else { /* the log's unaligned tail waits for more output, LOG_COMMIT_MS at most */
			long long now = now_ms();
			if (!log_since)
				log_since = now;
			int left = (int)(log_since + LOG_COMMIT_MS - now);
			if (left <= 0) {
				logw_commit(s->log);
				log_since = 0;
			} else if (timeout < 0 || left < timeout)
				timeout = left;
		}
		int ready = poll(pf, (nfds_t)n, timeout);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			shim_log("fatal: poll: %s", strerror(errno));
			return 1;
		}
		if (i_sync >= 0 && pf[i_sync].revents)
			read_sync(s);
		if (i_out >= 0 && pf[i_out].revents)
			read_output(s, &s->out_fd, 0);
		if (i_err >= 0 && pf[i_err].revents)
			read_output(s, &s->err_fd, 1);
		if (ready == 0 && logw_pending(s->log))
			logw_commit(s->log); /* no more output came: the log's tail goes out */
		if (pf[i_sig].revents)
			reap(s);
		if (i_in >= 0 && pf[i_in].revents)
			write_stdin(s);
		/* clients, highest index first: client_drop moves the last one into the hole */
		for (int i = ncl - 1; i >= 0; i--) {
			short re = pf[cbase + i].revents;
			if (i >= cl.n || cl.c[i].fd != pf[cbase + i].fd)
				continue;
			if (pf[dbase + i].revents && pf[dbase + i].fd == cl.c[i].dfd) {
				if (client_write_direct(&cl, i) < 0)
					continue;
			}
			if (!re)
				continue;
			if (re & POLLOUT) {
				if (client_write(&cl, i) < 0)
					continue;
			}
			if (re & (POLLIN | POLLHUP | POLLERR))
				client_read(&cl, i, handle_frame, s);
		}
		if (i_listen >= 0 && (pf[i_listen].revents & POLLIN)) {
			int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd >= 0)
				client_add(&cl, fd);
		}
		if (stdin_len || stdin_close_pending)
			if (s->in_fd >= 0)
				write_stdin(s);
	}
	if (s->sync_fd >= 0)
		read_sync(s);
	finish(s, listen_fd);
	return 0;
}
