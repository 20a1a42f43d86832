/* Creating the container init, up to "ready" (launch.c). */
#ifndef BERTH_LAUNCH_H
#define BERTH_LAUNCH_H

#include <sys/types.h>

#include "err.h"
#include "plan.h"

struct launch {
	pid_t pid;       /* the init, waiting for start; 0 until cloned (on failure the caller kills it) */
	int sync_fd;     /* the shim's end of the sync socket */
	int in_w;        /* stdin pipe write end, or -1 */
	int out_r, err_r; /* output pipes' read ends (-1 with a TTY) */
	int pty_master;  /* -1 without a TTY */
};

/* Clones the container init (the child never returns from here: it execs or exits) and drives it to
 * ready. report_fd is closed in the child. */
int launch_init(struct plan *p, int report_fd, struct launch *l, struct berth_err *err);

#endif
