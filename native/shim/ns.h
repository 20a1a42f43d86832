/* Joining namespaces: by path (the spec's joins) or from a pinned process (exec). */
#ifndef BERTH_NS_H
#define BERTH_NS_H

#include <sys/types.h>

#include "err.h"
#include "plan.h"

/* The process an exec joins, pinned before its start time is checked: a pidfd where the kernel has them,
 * and its /proc directory. Neither can come to name another process that takes the pid later. */
struct ns_proc {
	pid_t pid;
	int pidfd, procfd;
};

int ns_proc_open(const struct ns_proc_ref *ref, struct ns_proc *h, struct berth_err *err);
void ns_proc_close(struct ns_proc *h);
/* Joins the namespaces in flags (CLONE_NEW*) of the pinned process; user first, mount last. */
int ns_proc_join(struct ns_proc *h, int flags, struct berth_err *err);
/* Joins the plan's ns_join paths: only the pid namespace (pid_only, in the shim before clone), or all others. */
int ns_join_paths(struct plan *p, int pid_only, struct berth_err *err);

#endif
