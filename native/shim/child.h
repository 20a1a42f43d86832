/* The container init before exec (runs in the clone()d child). */
#ifndef BERTH_CHILD_H
#define BERTH_CHILD_H

#include "ns.h"
#include "plan.h"

struct child_fds {
	int sync;       /* SOCK_SEQPACKET to the shim */
	int stdin_r;    /* -1: /dev/null */
	int stdout_w, stderr_w;
	/* cgroup v1 `tasks` files the child joins itself (writing "0") once it has the go */
	char **cg_tasks;
	int ncg_tasks;
	struct ns_proc *nsp; /* exec: the container's init, pinned (ns_proc.flags says what to join) */
	int unshare_cgroupns; /* make the private cgroup namespace after joining the cgroups */
	int userns_fd; /* create in a user namespace (userns.c): it, else -1 */
	unsigned long late_flags; /* the CLONE_NEW* unshared once the user namespace is joined */
};

/* Never returns: execs the container's command, or reports the failed step to the shim and exits. */
__attribute__((noreturn)) void child_main(struct plan *p, struct child_fds *fds);

#endif
