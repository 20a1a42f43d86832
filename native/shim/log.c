/* The container log in Docker's json-file format, written by the shim so a container never
 * blocks on a dead daemon. Lines split at '\n'; a line longer than 16 KiB becomes partial
 * entries without '\n' (Docker's copier); rotation by size into <log>.1 .. <log>.(max_file-1). */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384

struct logw {
	int fd;
	char *path;
	long long max_size, size;
	int max_file;
	struct linebuf {
		char buf[LINE_MAX_BYTES];
		size_t len;
	} s[2];
	char *out; /* encode buffer */
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
	return 0;
}

struct logw *logw_open(const char *path, long long max_size, int max_file)
{
	struct logw *l = xmalloc(sizeof(*l));
	memset(l, 0, sizeof(*l));
	l->path = xstrdup(path);
	l->max_size = max_size;
	l->max_file = max_file < 1 ? 1 : max_file;
	l->out = xmalloc(LINE_MAX_BYTES * 6 + 128);
	log_open(l);
	return l;
}

static void rotate(struct logw *l)
{
	size_t pl = strlen(l->path) + 16;
	char *a = xmalloc(pl), *b = xmalloc(pl);
	if (l->fd >= 0)
		close(l->fd);
	if (l->max_file > 1) {
		for (int i = l->max_file - 1; i > 1; i--) {
			snprintf(a, pl, "%s.%d", l->path, i - 1);
			snprintf(b, pl, "%s.%d", l->path, i);
			if (rename(a, b) < 0 && errno != ENOENT)
				shim_log("rotate %s: %s", a, strerror(errno));
		}
		snprintf(b, pl, "%s.1", l->path);
		if (rename(l->path, b) < 0)
			shim_log("rotate %s: %s", l->path, strerror(errno));
	} else if (truncate(l->path, 0) < 0) {
		shim_log("truncate %s: %s", l->path, strerror(errno));
	}
	free(a);
	free(b);
	log_open(l);
}

static void emit(struct logw *l, int stream, const char *data, size_t n)
{
	char ts[64];
	format_time_now(ts, sizeof(ts));
	size_t o = 0;
	memcpy(l->out, "{\"log\":\"", 8);
	o = 8;
	o += json_escape(l->out + o, data, n);
	o += (size_t)sprintf(l->out + o, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream ? "stderr" : "stdout", ts);
	if (l->max_size > 0 && l->size >= l->max_size)
		rotate(l);
	if (l->fd < 0)
		return;
	if (write_all(l->fd, l->out, o) < 0) {
		shim_log("write log: %s", strerror(errno));
		return;
	}
	l->size += (long long)o;
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
		memcpy(s->buf + s->len, data, take);
		s->len += take;
		data += take;
		n -= take;
		if (nl || s->len == LINE_MAX_BYTES) {
			emit(l, stream, s->buf, s->len);
			s->len = 0;
		}
	}
}

void logw_flush(struct logw *l)
{
	if (!l)
		return;
	for (int i = 0; i < 2; i++) {
		if (l->s[i].len) {
			emit(l, i, l->s[i].buf, l->s[i].len);
			l->s[i].len = 0;
		}
	}
}
