/* Small helpers: diagnostics, I/O, time, JSON string escaping, atomic files, process start times. */
#ifndef BERTH_UTIL_H
#define BERTH_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* A line on the shim's stderr (berthd points it at shim.log in the bundle). */
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int write_all(int fd, const void *buf, size_t n);
/* Writes s to an existing file (cgroup, proc files); -1 with errno. */
int write_str(const char *path, const char *s);
/* RFC3339Nano in UTC with trailing zeros trimmed (Go's time.RFC3339Nano). */
size_t format_time_now(char *out, size_t outlen);
/* Appends s (n bytes) JSON-escaped the way Docker's jsonlog does (<>& escaped, invalid UTF-8 -> U+FFFD).
 * out must hold 6*n bytes. */
size_t json_escape(char *out, const char *s, size_t n);
/* tmp file + rename; durable: fsync first. The shim's own files (state, exit record) describe processes a
 * host crash ends and skip the flush, which delayed every container start and exit. */
int write_file_atomic(const char *path, const char *data, size_t n, mode_t mode, int durable);
/* Field 22 of /proc/<pid>/stat (clock ticks since boot); 0 if unreadable. */
unsigned long long proc_start_time(pid_t pid);
/* The same from a /proc/<pid>/stat already open. */
unsigned long long stat_start_time(int statfd);
/* Allocation that cannot fail: out of memory is no error path but an abort (crun's OOM()). */
char *xstrdup(const char *s);
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);

#endif
