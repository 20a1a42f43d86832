/* The exit record: one JSON line, written to the plan's exit_file (berthd reads it when the shim is gone)
 * and sent to attached clients in the 'x' frame. Built and written here only. */
#ifndef BERTH_EXITREC_H
#define BERTH_EXITREC_H

#include <stddef.h>
#include <sys/types.h>

#define EXIT_ERROR_MAX 1300 /* bytes of the error message kept */

struct exit_record {
	char json[EXIT_ERROR_MAX * 6 + 256];
	size_t len; /* without the trailing newline, which json has */
};

/* {"exitCode","signal","oomKilled":null,"finishedAt":now,"pid","error":error or null} */
void exit_record_build(struct exit_record *r, int code, int sig, pid_t pid, const char *error);
/* Writes the record atomically (tmp + rename, no fsync: see exitrec.c); -1 with errno on failure. */
int exit_record_save(const struct exit_record *r, const char *path);

#endif
