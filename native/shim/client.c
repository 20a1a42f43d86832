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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void client_drop(struct client_set *cs, int i)
{
	close(cs->c[i].fd);
	free(cs->c[i].in);
	free(cs->c[i].out);
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

void clients_broadcast(struct client_set *cs, int stream, const char *data, size_t n)
{
	for (int i = 0; i < cs->n; i++) {
		struct client *c = &cs->c[i];
		if (!(stream ? c->att_err : c->att_out))
			continue;
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
	ssize_t r = read(c->fd, c->in + c->inlen, FRAME_MAX + 5 - c->inlen);
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

/* Whether an attached client is too far behind for more output to be read now; drops clients that
 * have been stuck over the mark for CLIENT_STALL_MS. Returns the ms until the next stall check, or -1. */
int clients_output_blocked(struct client_set *cs, long long now, int *wait_ms)
{
	int blocked = 0;
	*wait_ms = -1;
	for (int i = cs->n - 1; i >= 0; i--) {
		struct client *c = &cs->c[i];
		if (c->outlen - c->outoff <= CLIENT_OUT_HWM)
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

/* Sends what the clients still have queued (the exit record last), for ms at most, then closes them. */
void clients_flush(struct client_set *cs, int ms)
{
	long long deadline = now_ms() + ms;
	while (cs->n > 0 && now_ms() < deadline) {
		struct pollfd pf[MAX_CLIENTS];
		int n = 0;
		for (int i = 0; i < cs->n; i++) {
			if (cs->c[i].outoff == cs->c[i].outlen) {
				client_drop(cs, i--);
				continue;
			}
			pf[n].fd = cs->c[i].fd;
			pf[n].events = POLLOUT;
			n++;
		}
		if (!n)
			break;
		if (poll(pf, (nfds_t)n, (int)(deadline - now_ms())) <= 0)
			break;
		for (int i = cs->n - 1; i >= 0; i--)
			client_write(cs, i);
	}
}

