/* The shim's life after the container init is ready: the control socket and the event loop. */
#ifndef BERTH_SERVER_H
#define BERTH_SERVER_H

#include <sys/types.h>

#include "log.h"
#include "plan.h"

struct supervisor {
	struct plan *p;
	pid_t init_pid;
	int sync_fd;       /* -1 once exec'd or failed */
	int out_fd, err_fd; /* pipes or pty master (out_fd) */
	int in_fd;         /* stdin pipe write end, or pty master, or -1 */
	int pty_master;
	struct logw *log;
};

int server_listen(const char *path);
/* Runs until the init has exited and its output is drained; returns the shim's exit code. */
int supervise(struct supervisor *s, int listen_fd);

#endif
