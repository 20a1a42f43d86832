/* Joining namespaces: by path for the spec's joins (create), and for exec from the container's init,
 * pinned by a pidfd (and its /proc directory) opened before its start time is checked, so an init that
 * exited and left its pid to another process is refused instead of joined. */
#include "ns.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* user first (the others may need its capabilities), mount last (the others are opened in /proc) */
static const struct {
	int type;
	const char *name;
} ns_order[] = {
	{CLONE_NEWUSER, "user"}, {CLONE_NEWIPC, "ipc"}, {CLONE_NEWUTS, "uts"}, {CLONE_NEWNET, "net"},
	{CLONE_NEWCGROUP, "cgroup"}, {CLONE_NEWPID, "pid"}, {CLONE_NEWNS, "mnt"},
};
#define NS_COUNT (sizeof(ns_order) / sizeof(ns_order[0]))

/* After joining a user namespace the process has no mapped ids until it becomes root in it. */
static int become_ns_root(struct berth_err *err)
{
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		return berth_fail(err, errno, "become root in the joined user namespace");
	return 0;
}

int ns_proc_open(const struct ns_proc_ref *ref, struct ns_proc *h, struct berth_err *err)
{
	h->pid = ref->pid;
	h->pidfd = (int)syscall(SYS_pidfd_open, ref->pid, 0);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d", (int)ref->pid);
	h->procfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int statfd = h->procfd < 0 ? -1 : openat(h->procfd, "stat", O_RDONLY | O_CLOEXEC);
	unsigned long long start = statfd < 0 ? 0 : stat_start_time(statfd);
	if (statfd >= 0)
		close(statfd);
	/* both handles were opened before this check: if the start time is the init's, so is the process */
	if (start == 0 || start != ref->start) {
		ns_proc_close(h);
		return berth_fail(err, ESRCH, "join the namespaces of process %d: it is not the container's process any more",
				  (int)ref->pid);
	}
	return 0;
}

void ns_proc_close(struct ns_proc *h)
{
	if (h->pidfd >= 0)
		close(h->pidfd);
	if (h->procfd >= 0)
		close(h->procfd);
	h->pidfd = h->procfd = -1;
}

int ns_proc_join(struct ns_proc *h, int flags, struct berth_err *err)
{
	if (!flags)
		return 0;
	/* Linux 5.8+: every namespace at once, through the pidfd */
	if (h->pidfd >= 0) {
		if (setns(h->pidfd, flags) == 0)
			return (flags & CLONE_NEWUSER) ? become_ns_root(err) : 0;
		if (errno != EINVAL)
			return berth_fail(err, errno, "join the namespaces of process %d", (int)h->pid);
	}
	/* older kernels: the namespace files of the /proc directory opened with the pidfd, all opened first */
	int fds[NS_COUNT];
	for (size_t i = 0; i < NS_COUNT; i++) {
		fds[i] = -1;
		if (!(flags & ns_order[i].type))
			continue;
		char rel[32];
		snprintf(rel, sizeof(rel), "ns/%s", ns_order[i].name);
		fds[i] = openat(h->procfd, rel, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			int e = errno;
			for (size_t j = 0; j < i; j++)
				if (fds[j] >= 0)
					close(fds[j]);
			return berth_fail(err, e, "open namespace %s of process %d", ns_order[i].name, (int)h->pid);
		}
	}
	int r = 0;
	for (size_t i = 0; i < NS_COUNT; i++) {
		if (fds[i] < 0)
			continue;
		if (r == 0 && setns(fds[i], ns_order[i].type) < 0)
			r = berth_fail(err, errno, "join namespace %s of process %d", ns_order[i].name, (int)h->pid);
		else if (r == 0 && ns_order[i].type == CLONE_NEWUSER)
			r = become_ns_root(err);
		close(fds[i]);
	}
	return r;
}

int ns_join_paths(struct plan *p, int pid_only, struct berth_err *err)
{
	/* every path is opened first: after joining the mount namespace, /proc/<pid> paths would resolve in
	 * the container's /proc */
	int fds[8];
	int r = 0;
	for (int i = 0; i < p->njoins; i++) {
		fds[i] = -1;
		if (r < 0 || !p->joins[i].nstype || (p->joins[i].nstype == CLONE_NEWPID) != !!pid_only)
			continue;
		fds[i] = open(p->joins[i].path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			r = berth_fail(err, errno, "open namespace %s", p->joins[i].path);
	}
	for (size_t k = 0; k < NS_COUNT && r == 0; k++) {
		for (int i = 0; i < p->njoins && r == 0; i++) {
			if (fds[i] < 0 || p->joins[i].nstype != ns_order[k].type)
				continue;
			if (setns(fds[i], ns_order[k].type) < 0)
				r = berth_fail(err, errno, "join namespace %s", p->joins[i].path);
			else if (ns_order[k].type == CLONE_NEWUSER)
				r = become_ns_root(err);
		}
	}
	for (int i = 0; i < p->njoins; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}
