/* Small helpers: diagnostics, I/O, time, JSON string escaping, atomic files. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Diagnostics go to the shim's stderr (berthd points it at a file in the bundle). */
void shim_log(const char *fmt, ...)
{
	char buf[1024];
	char ts[64];
	format_time_now(ts, sizeof(ts));
	int n = snprintf(buf, sizeof(buf), "%s berth-shim[%d]: ", ts, (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m > sizeof(buf) - (size_t)n - 2 ? sizeof(buf) - (size_t)n - 2 : (size_t)m));
	buf[len++] = '\n';
	(void)!write(2, buf, len);
}

/* Out of memory is not an error path: the shim cannot report or clean up without memory either. */
__attribute__((noreturn)) static void oom(void)
{
	shim_log("out of memory");
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = xmalloc(n);
	memcpy(d, s, n);
	return d;
}

int write_all(int fd, const void *buf, size_t n)
{
	const char *b = buf;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

size_t format_time_now(char *out, size_t outlen)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ts.tv_nsec) {
		char frac[16];
		snprintf(frac, sizeof(frac), ".%09ld", ts.tv_nsec);
		size_t fl = strlen(frac);
		while (fl > 1 && frac[fl - 1] == '0')
			frac[--fl] = '\0';
		if (n + fl + 2 < outlen) {
			memcpy(out + n, frac, fl);
			n += fl;
		}
	}
	if (n + 2 <= outlen) {
		out[n++] = 'Z';
		out[n] = '\0';
	}
	return n;
}

/* Length of a valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	unsigned cp = c & (0xff >> (len + 1));
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* 0: copied as is; 1: needs escaping or is not ASCII (the slow path below decides). */
static const unsigned char esc_class[256] = {
	[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, ['<'] = 1, ['>'] = 1, ['&'] = 1, [0x80 ... 0xff] = 1,
};

/* The escaped form of each ASCII byte that needs one (Go's encoding/json: \" \\ \n \r \t, else \u00XX). */
static char esc_seq[0x80][6];
static unsigned char esc_len[0x80];

static void esc_init(void)
{
	static const char hex[] = "0123456789abcdef";
	for (unsigned c = 0; c < 0x80; c++) {
		char *e = esc_seq[c];
		esc_len[c] = 2;
		e[0] = '\\';
		if (c == '"' || c == '\\')
			e[1] = (char)c;
		else if (c == '\n')
			e[1] = 'n';
		else if (c == '\r')
			e[1] = 'r';
		else if (c == '\t')
			e[1] = 't';
		else {
			memcpy(e, "\\u00", 4);
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			esc_len[c] = 6;
		}
	}
}

/* The length of the run of plain bytes (esc_class 0) at s, at most n (json_escape checks the first bytes itself:
 * most runs in text end within a word). */
__attribute__((noinline)) static size_t plain_run(const unsigned char *s, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	/* 16 bytes at a time: a signed compare below 0x20 also catches 0x80..0xff */
	const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
		      lt = _mm_set1_epi8('<'), gt = _mm_set1_epi8('>'), amp = _mm_set1_epi8('&');
	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(s + i));
		__m128i m = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, quote)),
					 _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, bslash), _mm_cmpeq_epi8(v, lt)),
						      _mm_or_si128(_mm_cmpeq_epi8(v, gt), _mm_cmpeq_epi8(v, amp))));
		unsigned bits = (unsigned)_mm_movemask_epi8(m);
		if (bits)
			return i + (size_t)__builtin_ctz(bits);
	}
#endif
	while (i < n && !esc_class[s[i]])
		i++;
	return i;
}

/* How many times the byte c repeats from s (at most n). */
__attribute__((noinline)) static size_t same_run(const unsigned char *s, size_t n, unsigned char c)
{
	size_t i = 0;
#ifdef __SSE2__
	const __m128i b = _mm_set1_epi8((char)c);
	for (; i + 16 <= n; i += 16) {
		unsigned bits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(s + i)), b)) ^ 0xffffu;
		if (bits)
			return i + (size_t)__builtin_ctz(bits);
	}
#endif
	while (i < n && s[i] == c)
		i++;
	return i;
}

/* Repeats the len bytes at out `count` times in all (the first copy is there), doubling what is written:
 * a run of zero bytes (\u0000 each) costs a few large copies, not one per byte. */
__attribute__((noinline)) static void repeat_seq(char *out, size_t len, size_t count)
{
	size_t have = len, total = len * count;
	while (have < total) {
		size_t m = have < total - have ? have : total - have;
		memcpy(out + have, out, m);
		have += m;
	}
}

/* out must hold 6*n bytes. */
size_t json_escape(char *out, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i, first = n - i < 8 ? n : i + 8;
		while (j < first && !esc_class[u[j]])
			j++;
		if (j == first && j < n)
			j += plain_run(u + j, n - j);
		if (j > i) {
			memcpy(out + o, u + i, j - i);
			o += j - i;
			i = j;
			if (i == n)
				break;
		}
		unsigned c = u[i];
		if (c < 0x80) {
			/* every escape is written as 6 bytes (the longest form), then only its length counts */
			if (!esc_len[0])
				esc_init();
			do {
				memcpy(out + o, esc_seq[c], 6);
				size_t k = 1;
				if (i + 1 < n && u[i + 1] == c) {
					k += same_run(u + i + 1, n - i - 1, (unsigned char)c);
					repeat_seq(out + o, esc_len[c], k);
				}
				o += esc_len[c] * k;
				i += k;
			} while (i < n && (c = u[i]) < 0x80 && esc_class[c]);
			continue;
		}
		size_t l = utf8_len(u + i, n - i);
		if (l == 0) {
			memcpy(out + o, "\\ufffd", 6);
			o += 6;
			i++;
			continue;
		}
		if (l == 3 && u[i] == 0xe2 && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9)) {
			memcpy(out + o, u[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
			o += 6;
		} else {
			memcpy(out + o, u + i, l);
			o += l;
		}
		i += l;
	}
	return o;
}

int write_file_atomic(const char *path, const char *data, size_t n, mode_t mode, int durable)
{
	size_t pl = strlen(path);
	char *tmp = xmalloc(pl + 32);
	snprintf(tmp, pl + 32, "%s.tmp%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		free(tmp);
		return -1;
	}
	if (write_all(fd, data, n) < 0 || (durable && fsync(fd) < 0)) {
		int e = errno;
		close(fd);
		unlink(tmp);
		free(tmp);
		errno = e;
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		free(tmp);
		errno = e;
		return -1;
	}
	free(tmp);
	return 0;
}

/* Field 22 of a /proc/<pid>/stat opened as fd (clock ticks since boot), 0 if unreadable. */
unsigned long long stat_start_time(int fd)
{
	char buf[1024];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* after ") " comes field 3 (state); field 22 is 19 fields further */
	p += 2;
	for (int f = 3; f < 22 && p; f++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

unsigned long long proc_start_time(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	unsigned long long t = stat_start_time(fd);
	close(fd);
	return t;
}

/* Writes s to an existing file (cgroup, proc files); -1 with errno on failure. */
int write_str(const char *path, const char *s)
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
