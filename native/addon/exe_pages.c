/*
 * The node executable's pages that berthd's start touched stay mapped in its
 * page tables long after they are used: ~40 MB of /usr/bin/node's text and
 * read-only data (V8's parser and compilers, ICU, OpenSSL), most of it mapped
 * by fault-around 64 KiB at a time, counted in berthd's RSS while idle though
 * an idle daemon runs ~10 MB of it. They are clean page-cache pages: dropping
 * the mappings (MADV_DONTNEED) leaves them in the page cache, and what runs
 * next maps them again with a minor fault, as after the kernel's own reclaim.
 * Only mappings of the executable itself (the file cannot change while it
 * runs: ETXTBSY), not writable, and without a copy-on-write page (smaps'
 * Anonymous: 0, so relocated RELRO data is never thrown away) are dropped.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "malloc_trim.h"

#define MAX_RANGES 64

struct range {
	unsigned long start, end, rss_kb;
};

/* Finds the droppable mappings of the executable `exe`; returns how many (at most MAX_RANGES). */
static int exe_ranges(const char *exe, struct range *out)
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
			candidate = strcmp(path, exe) == 0 && perms[1] != 'w' && perms[3] == 'p';
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

napi_value js_release_exe_pages(napi_env env, napi_callback_info info)
{
	(void)info;
	double released_kb = 0;
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (len > 0) {
		exe[len] = '\0';
		struct range ranges[MAX_RANGES];
		int n = exe_ranges(exe, ranges);
		for (int i = 0; i < n; i++)
			if (madvise((void *)ranges[i].start, ranges[i].end - ranges[i].start, MADV_DONTNEED) == 0) released_kb += (double)ranges[i].rss_kb;
	}
	napi_value ret;
	napi_create_double(env, released_kb, &ret);
	return ret;
}
