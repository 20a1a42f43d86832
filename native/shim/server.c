/* The shim's event loop: container output (log + attached clients), stdin, the control
 * socket, child reaping, and the exit record.
 *
 * Socket protocol (SOCK_STREAM, both directions): frames of 1 type byte + 4-byte big-endian
 * length + payload. Client -> shim requests, each answered by one 'r' frame ("ok[ <json>]" or
 * "err <message>") except 'I':
 *   'S' start            'A' attach "<stdout 0|1> <stderr 0|1>"   'I' stdin bytes (no reply)
 *   'C' close stdin      'W' resize "<rows> <cols>"                'K' kill "<signal> <all 0|1>"
 *   'Q' state -> ok {"state":"created|running|exited","pid":N}      'L' reopen the log file
 * Shim -> client: 'o' stdout bytes, 'e' stderr bytes (attached clients only; a TTY is all 'o'),
 * 'x' exit record (the exit file's JSON) to every client once the output is drained.
 * Backpressure: while an attached client has more than CLIENT_OUT_HWM unsent, the shim stops reading the
 * container's output (the container blocks in write(2), as with dockerd's attach), so nothing is lost and
 * nothing grows; a client that makes no progress for CLIENT_STALL_MS while over the mark is disconnected,
 * so a hung daemon cannot hold a container forever. After the init exits, output is read regardless and a
 * client whose unsent output passes CLIENT_OUT_MAX is disconnected. */
#include "server.h"
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

#define MAX_CLIENTS 64
#define FRAME_MAX (1024 * 1024)
#define CLIENT_OUT_MAX (8 * 1024 * 1024)
#define CLIENT_OUT_HWM (1024 * 1024)
#define CLIENT_STALL_MS 2000
#define READ_BUF (256 * 1024)
#define STDIN_MAX (1024 * 1024)
#define DRAIN_MS 5000
#define FLUSH_MS 2000

struct client {
	int fd;
	unsigned char *in;
	size_t inlen;
	char *out;
	size_t outlen, outoff, outcap;
	int att_out, att_err;
	int want_start;
	long long progress_ms; /* last time the client took bytes (or went over the mark) */
};

static struct client clients[MAX_CLIENTS];
static int nclients;
static char *stdin_buf;
static size_t stdin_len;
static int stdin_close_pending;
static int started, exited, exit_status;
static char exit_error[1100];
static int have_error;
static int sigfd = -1;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static void client_drop(int i)
{
	close(clients[i].fd);
	free(clients[i].in);
	free(clients[i].out);
	clients[i] = clients[--nclients];
}

static int client_queue(struct client *c, char type, const void *data, size_t n)
{
	if (c->outlen - c->outoff + n + 5 > CLIENT_OUT_MAX)
		return -1;
	if (c->outoff == c->outlen) {
		c->outoff = c->outlen = 0;
		c->progress_ms = now_ms(); /* the stall clock starts when output starts waiting */
	}
	if (c->outlen + n + 5 > c->outcap) {
		if (c->outoff) {
			memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
			c->outlen -= c->outoff;
			c->outoff = 0;
		}
		if (c->outlen + n + 5 > c->outcap) {
			c->outcap = (c->outlen + n + 5) * 2;
			c->out = xrealloc(c->out, c->outcap);
		}
	}
	unsigned char h[5] = {(unsigned char)type, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
			      (unsigned char)(n >> 8), (unsigned char)n};
	memcpy(c->out + c->outlen, h, 5);
	memcpy(c->out + c->outlen + 5, data, n);
	c->outlen += n + 5;
	return 0;
}

/* Queues bytes that continue a frame already partly sent. */
static int client_queue_raw(struct client *c, const void *data, size_t n)
{
	if (c->outlen - c->outoff + n > CLIENT_OUT_MAX)
		return -1;
	if (c->outoff == c->outlen) {
		c->outoff = c->outlen = 0;
		c->progress_ms = now_ms();
	}
	if (c->outlen + n > c->outcap) {
		c->outcap = (c->outlen + n) * 2;
		c->out = xrealloc(c->out, c->outcap);
	}
	memcpy(c->out + c->outlen, data, n);
	c->outlen += n;
	return 0;
}

static void reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct client *c, const char *fmt, ...)
{
	char buf[1400];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	client_queue(c, 'r', buf, (size_t)n);
}

static int client_pending(const struct client *c)
{
	return c->outoff < c->outlen;
}

static void broadcast_output(int stream, const char *data, size_t n)
{
	for (int i = 0; i < nclients; i++) {
		struct client *c = &clients[i];
		if (!(stream ? c->att_err : c->att_out))
			continue;
		if (!client_pending(c)) {
			/* nothing queued: hand the frame to the socket directly, queue only what it does not take */
			unsigned char h[5] = {(unsigned char)(stream ? 'e' : 'o'), (unsigned char)(n >> 24), (unsigned char)(n >> 16),
					      (unsigned char)(n >> 8), (unsigned char)n};
			struct iovec iov[2] = {{h, 5}, {(void *)data, n}};
			ssize_t w = writev(c->fd, iov, 2);
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				client_drop(i--);
				continue;
			}
			if (w == (ssize_t)(n + 5))
				continue;
			if (w > 0)
				c->progress_ms = now_ms();
			size_t done = w > 0 ? (size_t)w : 0;
			if (done < 5) {
				if (client_queue(c, stream ? 'e' : 'o', data, n) < 0) {
					client_drop(i--);
					continue;
				}
				c->outoff = done; /* the queue starts with the whole frame; skip what went out */
			} else if (client_queue_raw(c, data + (done - 5), n - (done - 5)) < 0) {
				client_drop(i--);
				continue;
			}
			continue;
		}
		if (client_queue(c, stream ? 'e' : 'o', data, n) < 0) {
			shim_log("attach client too slow: disconnected");
			client_drop(i--);
		}
	}
}

static const char *state_name(void)
{
	return exited ? "exited" : started ? "running" : "created";
}

static void exit_json(struct supervisor *s, char *out, size_t outlen)
{
	char ts[64];
	format_time_now(ts, sizeof(ts));
	int code = WIFEXITED(exit_status) ? WEXITSTATUS(exit_status) : 128 + WTERMSIG(exit_status);
	int sig = WIFSIGNALED(exit_status) ? WTERMSIG(exit_status) : 0;
	int n = snprintf(out, outlen, "{\"exitCode\":%d,\"signal\":%d,\"oomKilled\":null,\"finishedAt\":\"%s\",\"pid\":%d,\"error\":",
			 code, sig, ts, (int)s->init_pid);
	if (have_error) {
		char esc[sizeof(exit_error) * 6];
		size_t el = json_escape(esc, exit_error, strlen(exit_error));
		snprintf(out + n, outlen - (size_t)n, "\"%.*s\"}\n", (int)el, esc);
	} else {
		snprintf(out + n, outlen - (size_t)n, "null}\n");
	}
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
		reply(c, "err container has already exited%s%s", have_error ? ": " : "", have_error ? exit_error : "");
		return;
	}
	if (started) {
		reply(c, "ok {\"pid\":%d}", (int)s->init_pid);
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

static void handle_frame(struct supervisor *s, struct client *c, char type, char *pl, size_t n)
{
	char buf[64];
	switch (type) {
	case 'S':
		do_start(s, c);
		break;
	case 'A': {
		int o = 0, e = 0;
		snprintf(buf, sizeof(buf), "%.*s", (int)(n < 63 ? n : 63), pl);
		if (sscanf(buf, "%d %d", &o, &e) != 2) {
			reply(c, "err bad attach request");
			break;
		}
		c->att_out = o, c->att_err = e;
		reply(c, "ok");
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
		reply(c, "ok");
		break;
	case 'W': {
		unsigned h, w;
		snprintf(buf, sizeof(buf), "%.*s", (int)(n < 63 ? n : 63), pl);
		if (sscanf(buf, "%u %u", &h, &w) != 2) {
			reply(c, "err bad resize request");
			break;
		}
		if (s->pty_master < 0) {
			reply(c, "err the container has no TTY");
			break;
		}
		struct winsize ws = {.ws_row = (unsigned short)h, .ws_col = (unsigned short)w};
		if (ioctl(s->pty_master, TIOCSWINSZ, &ws) < 0)
			reply(c, "err resize: %s", strerror(errno));
		else
			reply(c, "ok");
		break;
	}
	case 'K': {
		int sig = 0, all = 0;
		snprintf(buf, sizeof(buf), "%.*s", (int)(n < 63 ? n : 63), pl);
		if (sscanf(buf, "%d %d", &sig, &all) != 2 || sig < 0 || sig >= NSIG) {
			reply(c, "err bad kill request");
			break;
		}
		if (exited) {
			reply(c, "err process already finished");
			break;
		}
		if (all)
			kill_all(s, sig);
		else if (kill(s->init_pid, sig) < 0) {
			reply(c, "err kill: %s", strerror(errno));
			break;
		}
		reply(c, "ok");
		break;
	}
	case 'L':
		if (logw_reopen(s->log) < 0)
			reply(c, "err reopen log: %s", strerror(errno));
		else
			reply(c, "ok");
		break;
	case 'Q':
		reply(c, "ok {\"state\":\"%s\",\"pid\":%d}", state_name(), (int)s->init_pid);
		break;
	default:
		reply(c, "err unknown request %c", type);
	}
}

static void client_read(struct supervisor *s, int i)
{
	struct client *c = &clients[i];
	if (!c->in)
		c->in = xmalloc(FRAME_MAX + 5);
	ssize_t r = read(c->fd, c->in + c->inlen, FRAME_MAX + 5 - c->inlen);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		client_drop(i);
		return;
	}
	if (r < 0)
		return;
	c->inlen += (size_t)r;
	size_t off = 0;
	while (c->inlen - off >= 5) {
		unsigned char *h = c->in + off;
		size_t n = ((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | h[4];
		if (n > FRAME_MAX) {
			client_drop(i);
			return;
		}
		if (c->inlen - off < n + 5)
			break;
		handle_frame(s, c, (char)h[0], (char *)h + 5, n);
		off += n + 5;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
}

static int client_write(int i)
{
	struct client *c = &clients[i];
	while (c->outoff < c->outlen) {
		ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			client_drop(i);
			return -1;
		}
		c->outoff += (size_t)w;
		c->progress_ms = now_ms();
	}
	return 0;
}

/* Whether an attached client is too far behind for more output to be read now; drops clients that
 * have been stuck over the mark for CLIENT_STALL_MS. Returns the ms until the next stall check, or -1. */
static int output_blocked(long long now, int *wait_ms)
{
	int blocked = 0;
	*wait_ms = -1;
	for (int i = nclients - 1; i >= 0; i--) {
		struct client *c = &clients[i];
		if (c->outlen - c->outoff <= CLIENT_OUT_HWM)
			continue;
		if (now - c->progress_ms >= CLIENT_STALL_MS) {
			shim_log("attach client made no progress for %d s: disconnected", CLIENT_STALL_MS / 1000);
			client_drop(i);
			continue;
		}
		int left = (int)(c->progress_ms + CLIENT_STALL_MS - now);
		if (*wait_ms < 0 || left < *wait_ms)
			*wait_ms = left;
		blocked = 1;
	}
	return blocked;
}

static void reply_start_waiters(struct supervisor *s)
{
	for (int i = 0; i < nclients; i++) {
		if (!clients[i].want_start)
			continue;
		clients[i].want_start = 0;
		if (have_error)
			reply(&clients[i], "err %s", exit_error);
		else
			reply(&clients[i], "ok {\"pid\":%d}", (int)s->init_pid);
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
	broadcast_output(stream, buf, (size_t)r);
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
	char js[8192];
	exit_json(s, js, sizeof(js));
	if (write_file_atomic(s->p->exit_file, js, strlen(js), 0644, 1) < 0)
		shim_log("write exit file %s: %s", s->p->exit_file, strerror(errno));
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(s->p->socket);
	}
	size_t jl = strlen(js);
	if (jl && js[jl - 1] == '\n')
		jl--;
	reply_start_waiters(s);
	for (int i = 0; i < nclients; i++)
		client_queue(&clients[i], 'x', js, jl);
	long long deadline = now_ms() + FLUSH_MS;
	while (nclients > 0 && now_ms() < deadline) {
		struct pollfd pf[MAX_CLIENTS];
		int n = 0;
		for (int i = 0; i < nclients; i++) {
			if (clients[i].outoff == clients[i].outlen) {
				client_drop(i--);
				continue;
			}
			pf[n].fd = clients[i].fd;
			pf[n].events = POLLOUT;
			n++;
		}
		if (!n)
			break;
		if (poll(pf, (nfds_t)n, (int)(deadline - now_ms())) <= 0)
			break;
		for (int i = nclients - 1; i >= 0; i--)
			client_write(i);
	}
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
	long long drain_deadline = 0;
	for (;;) {
		if (exited && !drain_deadline)
			drain_deadline = now_ms() + DRAIN_MS;
		if (exited && ((s->out_fd < 0 && s->err_fd < 0) || now_ms() >= drain_deadline))
			break;
		struct pollfd pf[MAX_CLIENTS + 8];
		int n = 0;
		int i_listen = -1, i_sync = -1, i_out = -1, i_err = -1, i_in = -1, i_sig;
		pf[n] = (struct pollfd){sigfd, POLLIN, 0};
		i_sig = n++;
		if (nclients < MAX_CLIENTS) {
			pf[n] = (struct pollfd){listen_fd, POLLIN, 0};
			i_listen = n++;
		}
		if (s->sync_fd >= 0) {
			pf[n] = (struct pollfd){s->sync_fd, POLLIN, 0};
			i_sync = n++;
		}
		int stall_wait = -1;
		int blocked = !exited && output_blocked(now_ms(), &stall_wait);
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
		int ncl = nclients;
		for (int i = 0; i < ncl; i++) {
			short ev = stdin_len > STDIN_MAX ? 0 : POLLIN;
			if (clients[i].outoff < clients[i].outlen)
				ev |= POLLOUT;
			pf[n++] = (struct pollfd){clients[i].fd, ev, 0};
		}
		int timeout = exited ? (int)(drain_deadline - now_ms()) : -1;
		if (exited && timeout < 0)
			timeout = 0;
		if (!exited && stall_wait >= 0)
			timeout = stall_wait;
		if (poll(pf, (nfds_t)n, timeout) < 0) {
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
		if (pf[i_sig].revents)
			reap(s);
		if (i_in >= 0 && pf[i_in].revents)
			write_stdin(s);
		/* clients, highest index first: client_drop moves the last one into the hole */
		for (int i = ncl - 1; i >= 0; i--) {
			short re = pf[cbase + i].revents;
			if (!re || i >= nclients || clients[i].fd != pf[cbase + i].fd)
				continue;
			if (re & POLLOUT) {
				if (client_write(i) < 0)
					continue;
			}
			if (re & (POLLIN | POLLHUP | POLLERR))
				client_read(s, i);
		}
		if (i_listen >= 0 && (pf[i_listen].revents & POLLIN)) {
			int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd >= 0) {
				memset(&clients[nclients], 0, sizeof(clients[0]));
				clients[nclients++].fd = fd;
			}
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
