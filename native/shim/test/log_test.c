/* log.c's json-file writer: whatever sizes the output arrives in and wherever the event loop commits it, the files
 * hold exactly the entries a plain reference writes (split after '\n' and at 16 KiB, escaped by json_escape, in
 * order, an unterminated last line written at the end), rotated files included; and the blocks reserved ahead of
 * a bulk log are given back at rotation and at the end, so no file keeps more blocks than its bytes need. Times
 * are compared blanked. */
#include "../log.h"
#include "../util.h"
#include "check.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384

struct buf {
	char *p;
	size_t n, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void ref_entry(struct buf *b, const char *s, size_t n)
{
	char *esc = xmalloc(n * 6 + 1);
	size_t e = json_escape(esc, s, n);
	put(b, "{\"log\":\"", 8);
	put(b, esc, e);
	put(b, "\",\"stream\":\"stdout\",\"time\":\"\"}\n", 31);
	free(esc);
}

/* The entries of one stream: a line ends after '\n' or at LINE_MAX_BYTES. */
static void reference(struct buf *out, const char *in, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n' || i + 1 - start == LINE_MAX_BYTES) {
			ref_entry(out, in + start, i + 1 - start);
			start = i + 1;
		}
	}
	if (start < n)
		ref_entry(out, in + start, n - start);
}

/* The log's files oldest first (<log>.N .. <log>.1, <log>), with every time blanked; checks each file's blocks. */
static void read_log(struct buf *out, const char *path, int max_file)
{
	char name[600];
	for (int i = max_file; i >= 0; i--) {
		if (i)
			snprintf(name, sizeof(name), "%s.%d", path, i);
		else
			snprintf(name, sizeof(name), "%s", path);
		FILE *f = fopen(name, "rb");
		if (!f)
			continue;
		struct stat st;
		CHECK(fstat(fileno(f), &st) == 0);
		/* nothing reserved past the end: the blocks of the bytes, rounded to 4 KiB */
		CHECK((long long)st.st_blocks * 512 <= (st.st_size + 4095) / 4096 * 4096);
		char *data = xmalloc((size_t)st.st_size + 1);
		size_t n = fread(data, 1, (size_t)st.st_size, f);
		fclose(f);
		CHECK(n == (size_t)st.st_size);
		for (size_t i2 = 0; i2 < n;) {
			const char *t = memmem(data + i2, n - i2, "\"time\":\"", 8);
			if (!t) {
				put(out, data + i2, n - i2);
				break;
			}
			size_t at = (size_t)(t - data) + 8;
			put(out, data + i2, at - i2);
			const char *q = memchr(data + at, '"', n - at);
			CHECK(q != NULL);
			if (!q)
				break;
			i2 = (size_t)(q - data);
		}
		free(data);
	}
}

static unsigned long long rng = 88172645463325252ULL;
static unsigned rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)rng;
}

/* Text lines of every length (some over 16 KiB), long runs of zero bytes, and random bytes. */
static char *make_input(size_t n)
{
	char *in = xmalloc(n);
	size_t i = 0;
	while (i < n) {
		size_t len = rnd() % 3 == 0 ? rnd() % 40000 : rnd() % 200;
		if (len > n - i)
			len = n - i;
		unsigned kind = rnd() % 4;
		for (size_t k = 0; k < len; k++)
			in[i + k] = kind == 0 ? 0 : kind == 1 ? (char)rnd() : (char)('a' + rnd() % 26);
		i += len;
		if (i < n && kind != 1)
			in[i++] = '\n';
	}
	return in;
}

static void clear_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char name[600];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "%s/%s", dir, e->d_name);
		unlink(name);
	}
	if (d)
		closedir(d);
}

/* Writes in through a log of max_size bytes per file in pieces of at most chunk bytes (0: all at once) and
 * compares the files with the reference. */
static void run(const char *dir, const char *in, size_t n, const struct buf *want, long long max_size, size_t chunk)
{
	char path[64];
	snprintf(path, sizeof(path), "%s/c-json.log", dir);
	int max_file = 400;
	struct logw *l = logw_open(path, max_size, max_file, 0, 0, NULL);
	for (size_t i = 0; i < n;) {
		size_t k = chunk ? 1 + rnd() % chunk : n;
		if (k > n - i)
			k = n - i;
		logw_data(l, 0, in + i, k);
		if (rnd() % 4 == 0)
			logw_commit(l); /* the event loop's: output paused */
		i += k;
	}
	logw_flush(l);
	struct buf got = {0};
	read_log(&got, path, max_file);
	CHECK(got.n == want->n);
	CHECK(got.n == want->n && memcmp(got.p, want->p, got.n) == 0);
	if (got.n != want->n || memcmp(got.p, want->p, got.n) != 0)
		fprintf(stderr, "max_size %lld chunk %zu: %zu bytes, want %zu\n", max_size, chunk, got.n, want->n);
	free(got.p);
	clear_dir(dir);
}

int main(void)
{
	char dir[] = "/tmp/berth-log-test-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	size_t n = 6 << 20;
	char *in = make_input(n);
	struct buf want = {0};
	reference(&want, in, n);

	run(dir, in, n, &want, 0, 0);                 /* one file, one call */
	run(dir, in, n, &want, 0, 300 * 1024);        /* one file, reads of every size */
	run(dir, in, n, &want, 0, 4096);              /* small reads */
	run(dir, in, n, &want, 3 << 20, 300 * 1024);  /* rotation past the reserved blocks */
	run(dir, in, n, &want, 1 << 20, 64 * 1024);   /* rotation before any block is reserved */
	run(dir, in, n, &want, 200 * 1024, 1000);     /* a rotation every few entries */

	free(want.p);
	free(in);
	rmdir(dir);
	return check_report("log_test");
}
