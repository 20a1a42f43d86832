/* The control socket's clients: framing, queued output with backpressure, attached output, and the
 * frames they send (handed to the server's handler). See server.c for the protocol. */
#include "client.h"

#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void client_add(struct client_set *cs, int fd)
{
	struct client *c = &cs->c[cs->n++];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->passed_fd = -1;
	c->dfd = -1;
}

void client_drop(struct client_set *cs, int i)
{
	struct client *c = &cs->c[i];
	close(c->fd);
	if (c->passed_fd >= 0)
		close(c->passed_fd);
	if (c->dfd >= 0)
		close(c->dfd);
	free(c->in);
	free(c->out);
	free(c->dout);
	cs->c[i] = cs->c[--cs->n];
}

int client_queue(struct client *c, char type, const void *data, size_t n)
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

void client_reply(struct client *c, const char *fmt, ...)
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

int client_pending(const struct client *c)
{
	return c->outoff < c->outlen;
}

int client_direct_pending(const struct client *c)
{
	return c->doutoff < c->doutlen;
}

/* Appends to the direct queue the bytes of (a, b) after the first `skip`; -1 when over CLIENT_OUT_MAX. */
static int direct_queue(struct client *c, const void *a, size_t an, const void *b, size_t bn, size_t skip)
{
	size_t n = an + bn - skip;
	if (c->doutlen - c->doutoff + n > CLIENT_OUT_MAX)
		return -1;
	if (c->doutoff == c->doutlen) {
		c->doutoff = c->doutlen = 0;
		c->progress_ms = now_ms();
	}
	if (c->doutlen + n > c->doutcap) {
		if (c->doutoff) {
			memmove(c->dout, c->dout + c->doutoff, c->doutlen - c->doutoff);
			c->doutlen -= c->doutoff;
			c->doutoff = 0;
		}
		if (c->doutlen + n > c->doutcap) {
			c->doutcap = (c->doutlen + n) * 2;
			c->dout = xrealloc(c->dout, c->doutcap);
		}
	}
	if (skip < an) {
		memcpy(c->dout + c->doutlen, (const char *)a + skip, an - skip);
		c->doutlen += an - skip;
		skip = 0;
	} else
		skip -= an;
	memcpy(c->dout + c->doutlen, (const char *)b + skip, bn - skip);
	c->doutlen += bn - skip;
	return 0;
}

/* Output to a direct client: straight to its API client's socket (a stdcopy header first unless raw), queued
 * behind what is still waiting. -1 when the client has to be dropped. */
static int direct_output(struct client *c, int stream, const char *data, size_t n)
{
	unsigned char h[8] = {(unsigned char)(stream ? 2 : 1), 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
			      (unsigned char)(n >> 8), (unsigned char)n};
	size_t hl = c->dframed ? 8 : 0;
	if (client_direct_pending(c))
		return direct_queue(c, h, hl, data, n, 0);
	struct iovec iov[2] = {{h, hl}, {(void *)data, n}};
	struct msghdr m = {.msg_iov = hl ? iov : iov + 1, .msg_iovlen = hl ? 2 : 1};
	ssize_t w = sendmsg(c->dfd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN && errno != EINTR)
		return -1;
	if (w == (ssize_t)(hl + n))
		return 0;
	if (w > 0)
		c->progress_ms = now_ms();
	return direct_queue(c, h, hl, data, n, w > 0 ? (size_t)w : 0);
}

void clients_broadcast(struct client_set *cs, int stream, const char *data, size_t n)
{
	for (int i = 0; i < cs->n; i++) {
		struct client *c = &cs->c[i];
		if (!(stream ? c->att_err : c->att_out))
			continue;
		if (c->dfd >= 0) {
			if (direct_output(c, stream, data, n) < 0)
				client_drop(cs, i--);
			continue;
		}
		if (!client_pending(c)) {
			/* nothing queued: hand the frame to the socket directly, queue only what it does not take */
			unsigned char h[5] = {(unsigned char)(stream ? 'e' : 'o'), (unsigned char)(n >> 24), (unsigned char)(n >> 16),
					      (unsigned char)(n >> 8), (unsigned char)n};
			struct iovec iov[2] = {{h, 5}, {(void *)data, n}};
			ssize_t w = writev(c->fd, iov, 2);
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				client_drop(cs, i--);
				continue;
			}
			if (w == (ssize_t)(n + 5))
				continue;
			if (w > 0)
				c->progress_ms = now_ms();
			size_t done = w > 0 ? (size_t)w : 0;
			if (done < 5) {
				if (client_queue(c, stream ? 'e' : 'o', data, n) < 0) {
					client_drop(cs, i--);
					continue;
				}
				c->outoff = done; /* the queue starts with the whole frame; skip what went out */
			} else if (client_queue_raw(c, data + (done - 5), n - (done - 5)) < 0) {
				client_drop(cs, i--);
				continue;
			}
			continue;
		}
		if (client_queue(c, stream ? 'e' : 'o', data, n) < 0) {
			shim_log("attach client too slow: disconnected");
			client_drop(cs, i--);
		}
	}
}

void client_read(struct client_set *cs, int i, client_frame_fn fn, void *ctx)
{
	struct client *c = &cs->c[i];
	if (!c->in)
		c->in = xmalloc(FRAME_MAX + 5);
	/* recvmsg, not read: berthd may pass the API client's socket with an attach request (SCM_RIGHTS). */
	struct iovec iov = {c->in + c->inlen, FRAME_MAX + 5 - c->inlen};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cbuf;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf)};
	ssize_t r = recvmsg(c->fd, &m, MSG_CMSG_CLOEXEC);
	if (r >= 0) {
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			int nfd = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int k = 0; k < nfd; k++) {
				int fd;
				memcpy(&fd, CMSG_DATA(h) + k * sizeof(int), sizeof(int));
				if (c->passed_fd >= 0)
					close(c->passed_fd); /* one at a time: a newer one replaces an unclaimed one */
				c->passed_fd = fd;
			}
		}
	}
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		client_drop(cs, i);
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
			client_drop(cs, i);
			return;
		}
		if (c->inlen - off < n + 5)
			break;
		fn(ctx, c, (char)h[0], (char *)h + 5, n);
		off += n + 5;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
}

int client_write(struct client_set *cs, int i)
{
	struct client *c = &cs->c[i];
	while (c->outoff < c->outlen) {
		ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			client_drop(cs, i);
			return -1;
		}
		c->outoff += (size_t)w;
		c->progress_ms = now_ms();
	}
	return 0;
}

int client_write_direct(struct client_set *cs, int i)
{
	struct client *c = &cs->c[i];
	while (client_direct_pending(c)) {
		ssize_t w = send(c->dfd, c->dout + c->doutoff, c->doutlen - c->doutoff, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			client_drop(cs, i);
			return -1;
		}
		c->doutoff += (size_t)w;
		c->progress_ms = now_ms();
	}
	return 0;
}

/* Whether an attached client is too far behind for more output to be read now; drops clients that
 * have been stuck over the mark for CLIENT_STALL_MS. Returns the ms until the next stall check, or -1. */
int clients_output_blocked(struct client_set *cs, long long now, int *wait_ms)
{
	int blocked = 0;
	*wait_ms = -1;
	for (int i = cs->n - 1; i >= 0; i--) {
		struct client *c = &cs->c[i];
		if (c->outlen - c->outoff + (c->doutlen - c->doutoff) <= CLIENT_OUT_HWM)
			continue;
		if (now - c->progress_ms >= CLIENT_STALL_MS) {
			shim_log("attach client made no progress for %d s: disconnected", CLIENT_STALL_MS / 1000);
			client_drop(cs, i);
			continue;
		}
		int left = (int)(c->progress_ms + CLIENT_STALL_MS - now);
		if (*wait_ms < 0 || left < *wait_ms)
			*wait_ms = left;
		blocked = 1;
	}
	return blocked;
}

void clients_flush_direct(struct client_set *cs, long long deadline)
{
	while (now_ms() < deadline) {
		struct pollfd pf[MAX_CLIENTS];
		int idx[MAX_CLIENTS];
		int n = 0;
		for (int i = 0; i < cs->n; i++) {
			if (!client_direct_pending(&cs->c[i]))
				continue;
			pf[n] = (struct pollfd){cs->c[i].dfd, POLLOUT, 0};
			idx[n++] = i;
		}
		long long left = deadline - now_ms();
		if (!n || left <= 0)
			break;
		if (poll(pf, (nfds_t)n, (int)left) < 0 && errno != EINTR)
			break;
		for (int k = n - 1; k >= 0; k--) /* highest index first: a drop moves the last client */
			if (pf[k].revents)
				client_write_direct(cs, idx[k]);
	}
	for (int i = cs->n - 1; i >= 0; i--)
		if (client_direct_pending(&cs->c[i]))
			client_drop(cs, i);
}

/* Sends what the clients still have queued (the exit record last), then closes each connection the way
 * HTTP servers do (a lingering close): shutdown(SHUT_WR), so the client reads everything and then EOF, and the
 * socket kept open, what arrives read and dropped, until the client closes its end or the deadline passes.
 * Closed at once, a frame the client sends meanwhile (a resize, stdin) fails with EPIPE, and Node destroys a
 * socket on a write error with the output not yet read in it: a TTY exec that ended at once lost all it printed. */
void clients_flush(struct client_set *cs, long long deadline)
{
	while (cs->n > 0) {
		struct pollfd pf[MAX_CLIENTS];
		for (int i = 0; i < cs->n; i++) {
			struct client *c = &cs->c[i];
			if (!c->shut && c->outoff == c->outlen) {
				shutdown(c->fd, SHUT_WR);
				c->shut = 1;
			}
			pf[i] = (struct pollfd){c->fd, c->shut ? POLLIN : POLLOUT, 0};
		}
		int n = cs->n;
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		int r = poll(pf, (nfds_t)n, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (int i = n - 1; i >= 0; i--) { /* highest index first: a drop moves the last client */
			if (!pf[i].revents)
				continue;
			if (!cs->c[i].shut) {
				client_write(cs, i);
				continue;
			}
			char sink[4096];
			ssize_t got = read(cs->c[i].fd, sink, sizeof(sink));
			if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
				client_drop(cs, i);
		}
	}
	while (cs->n > 0)
		client_drop(cs, cs->n - 1);
}

