/* The sync socket between the shim and the container init it cloned (SOCK_SEQPACKET, close-on-exec, so
 * EOF after SYNC_START means the init exec'd):
 *   shim -> init  SYNC_GO     cgroups joined, id maps written: continue
 *   init -> shim  SYNC_PID    user namespace: the container's PID 1 forked by the init, which then exits
 *                             (struct sync_error, exit_code = the pid); the shim reaps the init, adopts
 *                             the pid (subreaper) and sends SYNC_GO to it
 *   init -> shim  SYNC_PTY    the pty master (SCM_RIGHTS)
 *   init -> shim  SYNC_READY  everything done, waiting for start
 *   shim -> init  SYNC_START  exec now
 *   init -> shim  SYNC_ERROR  struct sync_error: the failed step, then the init exits */
#ifndef BERTH_SYNC_H
#define BERTH_SYNC_H

#include "err.h"

#include <sys/types.h>

enum {
	SYNC_GO = 'G',
	SYNC_PID = 'P',
	SYNC_PTY = 'T',
	SYNC_READY = 'R',
	SYNC_START = 'S',
	SYNC_ERROR = 'E',
};

struct sync_error {
	char tag; /* SYNC_ERROR */
	int err;
	int exit_code;
	char msg[1024];
};

/* One tag byte; -1 on error (errno). */
int sync_send(int fd, char tag);
/* Reads one tag byte and checks it is `want`; -1 otherwise. */
int sync_expect(int fd, char want);
/* Sends pid as SYNC_PID. */
int sync_send_pid(int fd, pid_t pid);
/* Sends the pty master as SYNC_PTY. */
int sync_send_fd(int fd, int passfd, struct berth_err *err);
/* Sends err as SYNC_ERROR (best effort: the init exits after it either way). */
void sync_send_error(int fd, const struct berth_err *err);
/* Receives one message into m (a bare tag fills m->tag only) and a passed fd into *passed (else left alone).
 * Returns the bytes read, 0 at EOF, -1 on error (errno; EAGAIN on a non-blocking socket with nothing). */
int sync_recv(int fd, struct sync_error *m, int *passed);

#endif
