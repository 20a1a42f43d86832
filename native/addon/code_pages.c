/*
 * The pages of code that berthd's start touched stay mapped in its page
 * tables long after they are used: ~40 MB of /usr/bin/node's text and
 * read-only data (V8's parser and compilers, ICU, OpenSSL) and ~5 MB of the
 * shared libraries' (libstdc++, libc, better-sqlite3's sqlite), most of it
 * mapped by fault-around 64 KiB at a time, counted in berthd's RSS while idle
 * though an idle daemon runs a fraction of it. They are clean page-cache
 * pages: dropping the mappings (MADV_DONTNEED) leaves them in the page cache,
 * and what runs next maps them again with a minor fault, as after the
 * kernel's own reclaim. Only mappings of the loaded ELF objects (the
 * executable and what dl_iterate_phdr lists), not writable, and without a
 * copy-on-write page (smaps' Anonymous: 0, so relocated RELRO data is never
 * thrown away) are dropped.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "malloc_trim.h"

#define MAX_OBJECTS 64
#define MAX_RANGES 256

struct objects {
	int n;
	char *paths[MAX_OBJECTS];
};

struct range {
	unsigned long start, end, rss_kb;
};

static void add_object(struct objects *o, const char *path)
{
	if (o->n >= MAX_OBJECTS || path == NULL || path[0] != '/') return;
	char *real = realpath(path, NULL);
	if (real != NULL) o->paths[o->n++] = real;
}

static int add_loaded(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	add_object(data, info->dlpi_name);
	return 0;
}

static bool is_object(const struct objects *o, const char *path)
{
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->paths[i], path) == 0) return true;
	return false;
}

/* Finds the droppable mappings of the objects `o`; returns how many (at most MAX_RANGES). */
static int code_ranges(const struct objects *o, struct range *out)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	if (f == NULL) return 0;
	char line[PATH_MAX + 128];
	int n = 0;
	bool candidate = false;
	struct range cur = {0, 0, 0};
	while (fgets(line, sizeof line, f) != NULL) {
		char c = line[0];
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
			/* a mapping's header: start-end perms offset dev inode [path] */
			char perms[8] = "";
			int path_at = 0;
			candidate = false;
			if (sscanf(line, "%lx-%lx %7s %*x %*x:%*x %*u %n", &cur.start, &cur.end, perms, &path_at) < 3 || path_at == 0) continue;
			char *path = line + path_at;
			path[strcspn(path, "\n")] = '\0';
			candidate = perms[1] != 'w' && perms[3] == 'p' && is_object(o, path);
			cur.rss_kb = 0;
		} else if (candidate) {
			unsigned long kb;
			if (sscanf(line, "Rss: %lu kB", &kb) == 1) {
				cur.rss_kb = kb;
			} else if (sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
				candidate = false;
				if (kb == 0 && cur.rss_kb > 0 && n < MAX_RANGES) out[n++] = cur;
			}
		}
	}
	fclose(f);
	return n;
}

napi_value js_release_code_pages(napi_env env, napi_callback_info info)
{
	(void)info;
	double released_kb = 0;
	struct objects o = {0, {NULL}};
	add_object(&o, "/proc/self/exe");
	dl_iterate_phdr(add_loaded, &o);
	struct range ranges[MAX_RANGES];
	int n = code_ranges(&o, ranges);
	for (int i = 0; i < n; i++)
		if (madvise((void *)ranges[i].start, ranges[i].end - ranges[i].start, MADV_DONTNEED) == 0) released_kb += (double)ranges[i].rss_kb;
	for (int i = 0; i < o.n; i++) free(o.paths[i]);
	napi_value ret;
	napi_create_double(env, released_kb, &ret);
	return ret;
}
