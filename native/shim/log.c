/* The container log in Docker's json-file format, written by the shim so a container never
 * blocks on a dead daemon. Lines split at '\n'; a line longer than 16 KiB becomes partial
 * entries without '\n' (Docker's copier); rotation by size into <log>.1 .. <log>.(max_file-1),
 * or with compress into <log>.1.gz .. (gzip'd by a background thread, as dockerd does); the
 * json-file "attrs" (labels, env, tag) go into every entry between "stream" and "time".
 * CRI containers get the kubelet's format instead: "<RFC3339Nano> <stdout|stderr> <F|P> <line>\n",
 * P for a partial line (no '\n' in the output yet), F for the line's last part; the kubelet rotates
 * those files itself and asks for a reopen. */
#include "log.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define LINE_MAX_BYTES 16384
/* Encoded entries are gathered and written once per logw_data call (one read of container output),
 * so a burst of short lines costs one write(2), not one per line. */
#define OUT_BUF (512 * 1024)
#define WRITE_ALIGN (256 * 1024)
#define ENTRY_MAX (LINE_MAX_BYTES * 6 + 128)
#define PREALLOC_MIN (1 << 20)
#define PREALLOC_STEP (8 << 20)

struct logw {
	int fd;
	char *path;
	long long max_size, size;
	long long written, alloc_end; /* bytes in the file, and how far its blocks are reserved (fallocate) */
	int max_file;
	int cri;
	int final; /* set while the last output is flushed: an unterminated last line counts as full (F) */
	int compress;
	char *attrs; /* ",\"attrs\":{...}" ready to copy, or NULL */
	size_t attrs_len;
	pthread_t gz_thread; /* the compression of the last rotated file */
	int gz_running;
	struct linebuf {
		char buf[LINE_MAX_BYTES];
		size_t len;
	} s[2];
	char *out; /* encoded entries not yet written */
	size_t outlen;
	/* the time stamp's "YYYY-MM-DDTHH:MM:SS" part, kept while the second does not change */
	time_t ts_sec;
	char ts_base[32];
	size_t ts_base_len;
};

static int log_open(struct logw *l)
{
	l->fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (l->fd < 0) {
		shim_log("open log %s: %s", l->path, strerror(errno));
		return -1;
	}
	struct stat st;
	l->size = fstat(l->fd, &st) == 0 ? st.st_size : 0;
	l->written = l->alloc_end = l->size;
	/* blocks a shim that was killed left reserved past the end */
	if (l->size && (long long)st.st_blocks * 512 > (l->size + 4095) / 4096 * 4096 && ftruncate(l->fd, l->size) < 0)
		shim_log("trim log: %s", strerror(errno));
	return 0;
}

/* Gives back the blocks reserved past the end of the file before it is closed or rotated. */
static void log_trim(struct logw *l)
{
	struct stat st;
	if (l->fd < 0 || l->alloc_end <= l->written)
		return;
	if (fstat(l->fd, &st) < 0 || ftruncate(l->fd, st.st_size) < 0)
		shim_log("trim log: %s", strerror(errno));
	l->alloc_end = l->written;
}

/* Reserves the blocks of a fast-growing log ahead of its writes (fallocate, size unchanged): an append then fills
 * reserved blocks instead of making ext4 account delayed allocation for every page, a quarter of the cost of
 * writing a bulk log. Only past PREALLOC_MIN, so a quiet container's log takes no more disk than its bytes, and
 * never past max-size, where rotation closes the file (trimmed then, and when the shim ends). */
static void log_reserve(struct logw *l, size_t n)
{
	long long end = l->written + (long long)n;
	if (end <= l->alloc_end || end < PREALLOC_MIN)
		return;
	long long to = end + PREALLOC_STEP;
	if (l->max_size > 0 && to > l->max_size + OUT_BUF + ENTRY_MAX)
		to = l->max_size + OUT_BUF + ENTRY_MAX;
	if (to <= end || fallocate(l->fd, FALLOC_FL_KEEP_SIZE, l->alloc_end, to - l->alloc_end) < 0)
		to = end; /* nothing to reserve, or the file system cannot: written as before */
	l->alloc_end = to;
}

struct logw *logw_open(const char *path, long long max_size, int max_file, int cri, int compress, const char *attrs)
{
	struct logw *l = xmalloc(sizeof(*l));
	memset(l, 0, sizeof(*l));
	l->path = xstrdup(path);
	l->max_size = max_size;
	l->max_file = max_file < 1 ? 1 : max_file;
	l->cri = cri;
	l->compress = compress && l->max_file > 1 && !cri;
	if (attrs && *attrs && !cri) {
		size_t n = strlen(attrs);
		l->attrs = xmalloc(n + 16);
		l->attrs_len = (size_t)snprintf(l->attrs, n + 16, "\"attrs\":%s,", attrs);
	}
	l->out = xmalloc(OUT_BUF + ENTRY_MAX + l->attrs_len);
	l->ts_sec = (time_t)-1;
	log_open(l);
	return l;
}

static void *close_fd_thread(void *arg)
{
	close((int)(intptr_t)arg);
	return NULL;
}

/* Closes fd in a short-lived thread: when it is the last reference to a log file that rotation
 * replaced, the close frees the file's page cache and blocks (tens of MB: 5% of the CPU of a bulk
 * attach), which would otherwise stall the loop that moves container output. */
static void close_in_background(int fd)
{
	if (fd < 0)
		return;
	pthread_attr_t a;
	pthread_t t;
	if (pthread_attr_init(&a) == 0) {
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&a, 64 * 1024);
		int r = pthread_create(&t, &a, close_fd_thread, (void *)(intptr_t)fd);
		pthread_attr_destroy(&a);
		if (r == 0)
			return;
	}
	close(fd);
}

/* gzip <src> into <src>.gz (through a temporary name), then remove <src>. */
static void *gzip_thread(void *arg)
{
	char *src = arg;
	size_t n = strlen(src) + 16;
	char *tmp = xmalloc(n), *dst = xmalloc(n);
	snprintf(tmp, n, "%s.gz.tmp", src);
	snprintf(dst, n, "%s.gz", src);
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	gzFile gz = out >= 0 ? gzdopen(out, "wb") : NULL;
	int ok = in >= 0 && gz != NULL;
	if (ok) {
		char buf[65536];
		ssize_t r;
		while ((r = read(in, buf, sizeof(buf))) > 0) {
			if (gzwrite(gz, buf, (unsigned)r) != (int)r) {
				ok = 0;
				break;
			}
		}
		if (r < 0)
			ok = 0;
	}
	if (gz) {
		if (gzclose(gz) != Z_OK)
			ok = 0;
	} else if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	if (ok && rename(tmp, dst) == 0)
		unlink(src);
	else {
		shim_log("compress %s: %s", src, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	free(dst);
	free(src);
	return NULL;
}

static void gz_wait(struct logw *l)
{
	if (l->gz_running) {
		pthread_join(l->gz_thread, NULL);
		l->gz_running = 0;
	}
}

/* Shifts <log>.N<suffix> to <log>.N+1<suffix> (the oldest is dropped) and <log> to <log>.1. The dropped file
 * is kept open until then so that close_in_background frees it off the output loop. It is unlinked first, so
 * that no rename replaces an existing file: ext4 writes out the renamed file's pending data at once when a
 * rename replaces one (auto_da_alloc), which costs a bulk writer the I/O of every rotated file. */
static void shift_files(struct logw *l, const char *suffix)
{
	size_t pl = strlen(l->path) + strlen(suffix) + 16;
	char *a = xmalloc(pl), *b = xmalloc(pl);
	snprintf(a, pl, "%s.%d%s", l->path, l->max_file - 1, suffix);
	int victim = open(a, O_RDONLY | O_CLOEXEC);
	if (unlink(a) < 0 && errno != ENOENT)
		shim_log("rotate %s: %s", a, strerror(errno));
	for (int i = l->max_file - 1; i > 1; i--) {
		snprintf(a, pl, "%s.%d%s", l->path, i - 1, suffix);
		snprintf(b, pl, "%s.%d%s", l->path, i, suffix);
		if (rename(a, b) < 0 && errno != ENOENT)
			shim_log("rotate %s: %s", a, strerror(errno));
	}
	snprintf(b, pl, "%s.1", l->path);
	if (rename(l->path, b) < 0)
		shim_log("rotate %s: %s", l->path, strerror(errno));
	close_in_background(victim);
	free(a);
	free(b);
}

/* Rotation with compression: <log>.N.gz shift up, <log> becomes <log>.1 and is compressed in the background;
 * the previous compression is finished first. */
static void rotate_compressed(struct logw *l)
{
	log_trim(l);
	if (l->fd >= 0)
		close(l->fd);
	gz_wait(l);
	shift_files(l, ".gz");
	size_t pl = strlen(l->path) + 8;
	char *first = xmalloc(pl);
	snprintf(first, pl, "%s.1", l->path);
	/* the thread owns (and frees) its copy of the name */
	if (pthread_create(&l->gz_thread, NULL, gzip_thread, first) == 0)
		l->gz_running = 1;
	else {
		shim_log("compress %s: cannot start a thread", first);
		free(first);
	}
	log_open(l);
}

static void rotate(struct logw *l)
{
	if (l->compress) {
		rotate_compressed(l);
		return;
	}
	log_trim(l);
	if (l->fd >= 0)
		close(l->fd);
	if (l->max_file > 1)
		shift_files(l, "");
	else if (truncate(l->path, 0) < 0)
		shim_log("truncate %s: %s", l->path, strerror(errno));
	log_open(l);
}

/* Writes out the first n gathered bytes; the rest moves to the front. */
static void out_write(struct logw *l, size_t n)
{
	if (!n)
		return;
	if (l->fd >= 0) {
		log_reserve(l, n);
		if (write_all(l->fd, l->out, n) < 0)
			shim_log("write log: %s", strerror(errno));
		else
			l->written += (long long)n;
	}
	memmove(l->out, l->out + n, l->outlen - n);
	l->outlen -= n;
}

/* Writes out the gathered entries. */
static void out_flush(struct logw *l)
{
	out_write(l, l->outlen);
}

/* Writes out the gathered entries up to the last multiple of WRITE_ALIGN in the file, keeping the bytes past it
 * for the next write (logw_commit writes them when no more output follows): page cache folios are as large as
 * the alignment of a write allows, and a bulk log written in aligned pieces takes large folios instead of a run
 * of 4 KiB ones after every unaligned start (a fifth less CPU). */
static void out_flush_aligned(struct logw *l)
{
	size_t past = (size_t)((l->written + (long long)l->outlen) % WRITE_ALIGN);
	if (past < l->outlen)
		out_write(l, l->outlen - past);
}

/* RFC3339Nano (Go's: UTC, trailing zeros of the fraction trimmed); the date part is formatted once a second. */
static size_t log_time(struct logw *l, char *out)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != l->ts_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		l->ts_base_len = strftime(l->ts_base, sizeof(l->ts_base), "%Y-%m-%dT%H:%M:%S", &tm);
		l->ts_sec = ts.tv_sec;
	}
	size_t n = l->ts_base_len;
	memcpy(out, l->ts_base, n);
	if (ts.tv_nsec) {
		char frac[10];
		long v = ts.tv_nsec;
		for (int i = 8; i >= 0; i--) {
			frac[i] = (char)('0' + v % 10);
			v /= 10;
		}
		int fl = 9;
		while (fl > 1 && frac[fl - 1] == '0')
			fl--;
		out[n++] = '.';
		memcpy(out + n, frac, (size_t)fl);
		n += (size_t)fl;
	}
	out[n++] = 'Z';
	return n;
}

static void emit(struct logw *l, int stream, const char *data, size_t n)
{
	if (l->max_size > 0 && l->size >= l->max_size) {
		out_flush(l);
		rotate(l);
	}
	if (l->fd < 0)
		return;
	char *o = l->out + l->outlen, *start = o;
	if (l->cri) {
		o += log_time(l, o);
		int nl = n > 0 && data[n - 1] == '\n', full = nl || l->final;
		const char *tag = stream ? (full ? " stderr F " : " stderr P ") : (full ? " stdout F " : " stdout P ");
		memcpy(o, tag, 10);
		o += 10;
		memcpy(o, data, nl ? n - 1 : n);
		o += nl ? n - 1 : n;
		*o++ = '\n';
		l->outlen += (size_t)(o - start);
		l->size += (long long)(o - start);
		if (l->outlen >= OUT_BUF)
			out_flush_aligned(l);
		return;
	}
	memcpy(o, "{\"log\":\"", 8);
	o += 8;
	o += json_escape(o, data, n);
	const char *mid = stream ? "\",\"stream\":\"stderr\"," : "\",\"stream\":\"stdout\",";
	memcpy(o, mid, 20);
	o += 20;
	if (l->attrs) {
		memcpy(o, l->attrs, l->attrs_len);
		o += l->attrs_len;
	}
	memcpy(o, "\"time\":\"", 8);
	o += 8;
	o += log_time(l, o);
	memcpy(o, "\"}\n", 3);
	o += 3;
	l->outlen += (size_t)(o - start);
	l->size += (long long)(o - start);
	if (l->outlen >= OUT_BUF)
		out_flush_aligned(l);
}

void logw_data(struct logw *l, int stream, const char *data, size_t n)
{
	if (!l)
		return;
	struct linebuf *s = &l->s[stream ? 1 : 0];
	while (n > 0) {
		size_t take = LINE_MAX_BYTES - s->len;
		if (take > n)
			take = n;
		const char *nl = memchr(data, '\n', take);
		if (nl)
			take = (size_t)(nl - data) + 1;
		if (s->len == 0 && (nl || take == LINE_MAX_BYTES)) {
			emit(l, stream, data, take); /* a whole entry in this read: no copy */
		} else {
			memcpy(s->buf + s->len, data, take);
			s->len += take;
			if (nl || s->len == LINE_MAX_BYTES) {
				emit(l, stream, s->buf, s->len);
				s->len = 0;
			}
		}
		data += take;
		n -= take;
	}
	out_flush_aligned(l);
}

int logw_pending(const struct logw *l)
{
	return l && l->outlen > 0;
}

void logw_commit(struct logw *l)
{
	if (l)
		out_flush(l);
}

int logw_reopen(struct logw *l)
{
	if (!l)
		return 0;
	out_flush(l);
	log_trim(l);
	if (l->fd >= 0)
		close(l->fd);
	return log_open(l);
}

void logw_flush(struct logw *l)
{
	if (!l)
		return;
	l->final = 1;
	gz_wait(l);
	for (int i = 0; i < 2; i++) {
		if (l->s[i].len) {
			emit(l, i, l->s[i].buf, l->s[i].len);
			l->s[i].len = 0;
		}
	}
	l->final = 0;
	out_flush(l);
	log_trim(l);
}
