/* The exit record: see exitrec.h. */
#include "exitrec.h"

#include "util.h"

#include <stdio.h>
#include <string.h>

void exit_record_build(struct exit_record *r, int code, int sig, pid_t pid, const char *error)
{
	char ts[64];
	format_time_now(ts, sizeof(ts));
	size_t cap = sizeof(r->json);
	int n = snprintf(r->json, cap, "{\"exitCode\":%d,\"signal\":%d,\"oomKilled\":null,\"finishedAt\":\"%s\",\"pid\":%d,\"error\":",
			 code, sig, ts, (int)pid);
	size_t o = (size_t)n;
	if (error) {
		size_t el = strlen(error);
		r->json[o++] = '"';
		o += json_escape(r->json + o, error, el > EXIT_ERROR_MAX ? EXIT_ERROR_MAX : el);
		r->json[o++] = '"';
	} else {
		memcpy(r->json + o, "null", 4);
		o += 4;
	}
	r->json[o++] = '}';
	r->len = o;
	r->json[o++] = '\n';
	r->json[o] = '\0';
}

int exit_record_save(const struct exit_record *r, const char *path)
{
	/* No fsync: it sat between the container's exit and the 'x' frame every waiter (docker run --rm, stop,
	 * rm -f) waits for, 2 ms median and 10-40 ms on a busy disk. A daemon restart reads the record from the
	 * page cache; a host crash ends every container anyway, and a record it cut short reads as a lost exit,
	 * as the daemon's own state written in the last moments before it does (SQLite WAL, synchronous=NORMAL). */
	return write_file_atomic(path, r->json, r->len + 1, 0644, 0);
}
