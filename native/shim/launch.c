/* Creating the container init: its stdio, the sync socket, the namespace and cgroup joins, clone, and the
 * handshake up to "ready". Cgroups are joined without moving the child by pid (cgroup.procs), which
 * waits for an RCU grace period: v1 hierarchies are joined by the child itself through `tasks` (not
 * possible from a new user namespace), a cgroup2 directory by clone3(CLONE_INTO_CGROUP); whatever is
 * left is written here before the child runs anything of the container. */
#include "launch.h"

#include "child.h"
#include "ns.h"
#include "sync.h"
#include "userns.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUTPUT_PIPE_SIZE (256 * 1024)
#define MAX_CGROUP_JOINS 32

/* struct clone_args of <linux/sched.h> (v2, with cgroup), spelled out: that header clashes with <sched.h> */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/* The user namespace a create runs in, as an fd (-1: none): a new one with the plan's maps, or the one it
 * joins (by path, or of the pinned process); the join is then left out of the plan's others. */
static int userns_open(struct plan *p, struct ns_proc *nsp, int *fd, struct berth_err *err)
{
	*fd = -1;
	if (p->clone_flags & CLONE_NEWUSER) {
		*fd = userns_create(p->uid_map, p->gid_map, err);
		return *fd < 0 ? -1 : 0;
	}
	for (int i = 0; i < p->njoins; i++) {
		if (p->joins[i].nstype != CLONE_NEWUSER)
			continue;
		*fd = open(p->joins[i].path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0)
			return berth_fail(err, errno, "open namespace %s", p->joins[i].path);
		p->joins[i].nstype = 0;
		return 0;
	}
	if (p->ns_proc.flags & CLONE_NEWUSER) {
		*fd = openat(nsp->procfd, "ns/user", O_RDONLY | O_CLOEXEC);
		if (*fd < 0)
			return berth_fail(err, errno, "open the user namespace of process %d", (int)nsp->pid);
		p->ns_proc.flags &= ~CLONE_NEWUSER;
	}
	return 0;
}

int launch_init(struct plan *p, int report_fd, struct launch *l, struct berth_err *err)
{
	l->pid = 0;
	/* stdio */
	int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
	if (!p->tty) {
		if ((p->open_stdin && pipe2(in_p, O_CLOEXEC) < 0) || pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0)
			return berth_fail(err, errno, "create stdio pipes");
		/* bigger output pipes: fewer wake-ups of the shim and the writer on bulk output (best effort) */
		fcntl(out_p[0], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
		fcntl(err_p[0], F_SETPIPE_SZ, OUTPUT_PIPE_SIZE);
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return berth_fail(err, errno, "create sync socket");

	/* exec: pin the container's init (checked by its start time) before anything is joined */
	struct ns_proc nsp = {.pid = 0, .pidfd = -1, .procfd = -1};
	if (p->ns_proc.pid && ns_proc_open(&p->ns_proc, &nsp, err) < 0)
		return -1;
	/* create in a user namespace: made or opened here, the init does the rest (userns.c) */
	int userns_fd = -1;
	unsigned long late_flags = 0;
	if (p->mode == MODE_CREATE && userns_open(p, &nsp, &userns_fd, err) < 0)
		return -1;
	if (userns_fd >= 0) {
		late_flags = p->clone_flags & ~(unsigned long)CLONE_NEWUSER;
		p->clone_flags = 0;
	} else if (ns_join_paths(p, 1, err) < 0 || ((p->ns_proc.flags & CLONE_NEWPID) && ns_proc_join(&nsp, CLONE_NEWPID, err) < 0)) {
		/* joining a pid namespace only affects children: do it here, before clone */
		return -1;
	}

	/* Cgroups, without moving the child by pid (cgroup.procs), which waits for an RCU grace period:
	 * v1 hierarchies are joined by the child itself through `tasks` (not possible from a new user
	 * namespace), a cgroup2 directory by clone3(CLONE_INTO_CGROUP). Whatever is left is written here. */
	static char *cg_tasks[MAX_CGROUP_JOINS], *cg_procs[MAX_CGROUP_JOINS];
	int ncg_tasks = 0, ncg_procs = 0, cg2_fd = -1;
	const char *cg2_procs = NULL;
	for (int i = 0; i < p->cgroup_procs.n; i++) {
		char *procs = p->cgroup_procs.v[i];
		size_t l = strlen(procs);
		const size_t sl = strlen("cgroup.procs");
		if (l > sl && !strcmp(procs + l - sl, "cgroup.procs") && ncg_tasks < MAX_CGROUP_JOINS) {
			char *tasks = xmalloc(l);
			memcpy(tasks, procs, l - sl);
			strcpy(tasks + l - sl, "tasks");
			if (access(tasks, F_OK) == 0) {
				if (!(p->clone_flags & CLONE_NEWUSER)) {
					cg_tasks[ncg_tasks++] = tasks;
					continue;
				}
			} else if (cg2_fd < 0) {
				tasks[l - sl] = '\0';
				cg2_fd = open(tasks, O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (cg2_fd >= 0) {
					cg2_procs = procs;
					free(tasks);
					continue;
				}
			}
			free(tasks);
		}
		if (ncg_procs < MAX_CGROUP_JOINS)
			cg_procs[ncg_procs++] = procs;
	}

	/* A cgroup namespace is rooted at the cgroups its creator is in. The child joins the v1 hierarchies itself,
	 * after the clone: one made at the clone would be rooted at the shim's cgroups there (/proc/self/cgroup showing
	 * /berth/<id> inside), so the child makes it once it has joined them (as runc on v1). */
	int late_cgroupns = 0;
	if ((p->clone_flags & CLONE_NEWCGROUP) && ncg_tasks > 0)
		late_cgroupns = 1;
	const unsigned long early_flags = late_cgroupns ? p->clone_flags & ~(unsigned long)CLONE_NEWCGROUP : p->clone_flags;

	pid_t pid = -1;
	if (cg2_fd >= 0) {
		struct clone3_args ca;
		memset(&ca, 0, sizeof(ca));
		ca.flags = (uint64_t)early_flags | CLONE_INTO_CGROUP;
		ca.exit_signal = SIGCHLD;
		ca.cgroup = (uint64_t)cg2_fd;
		pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
		if (pid < 0) {
			/* an older kernel or a filter without clone3: move the child the slow way */
			if (ncg_procs < MAX_CGROUP_JOINS)
				cg_procs[ncg_procs++] = (char *)cg2_procs;
		}
		if (pid != 0) {
			close(cg2_fd);
			cg2_fd = -1;
		}
	}
	/* Without CLONE_INTO_CGROUP the child reaches all its cgroups after the clone: the same, for every hierarchy. */
	if (pid < 0) {
		unsigned long flags = p->clone_flags;
		if (flags & CLONE_NEWCGROUP) {
			flags &= ~(unsigned long)CLONE_NEWCGROUP;
			late_cgroupns = 1;
		}
		pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
	}
	if (pid < 0)
		return berth_fail(err, errno, "clone");
	l->pid = pid;
	if (pid == 0) {
		if (report_fd >= 0)
			close(report_fd);
		close(sv[0]);
		if (in_p[1] >= 0)
			close(in_p[1]);
		if (out_p[0] >= 0)
			close(out_p[0]);
		if (err_p[0] >= 0)
			close(err_p[0]);
		if (cg2_fd >= 0)
			close(cg2_fd);
		struct child_fds fds = {.sync = sv[1], .stdin_r = in_p[0], .stdout_w = out_p[1], .stderr_w = err_p[1],
					.cg_tasks = cg_tasks, .ncg_tasks = ncg_tasks, .nsp = &nsp,
					.unshare_cgroupns = late_cgroupns, .userns_fd = userns_fd, .late_flags = late_flags};
		child_main(p, &fds);
	}
	close(sv[1]);
	ns_proc_close(&nsp);
	if (userns_fd >= 0)
		close(userns_fd);
	if (in_p[0] >= 0)
		close(in_p[0]);
	if (out_p[1] >= 0)
		close(out_p[1]);
	if (err_p[1] >= 0)
		close(err_p[1]);

	/* place the child in its cgroups before it runs anything of the container */
	char pidstr[32];
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	for (int i = 0; i < ncg_procs; i++) {
		if (write_str(cg_procs[i], pidstr) < 0)
			return berth_fail(err, errno, "join cgroup %s", cg_procs[i]);
	}
	if (p->clone_flags & CLONE_NEWUSER) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
		if (p->uid_map && write_str(path, p->uid_map) < 0)
			return berth_fail(err, errno, "write uid_map");
		snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
		if (p->gid_map && write_str(path, p->gid_map) < 0)
			return berth_fail(err, errno, "write gid_map");
	}
	if (sync_send(sv[0], SYNC_GO) < 0)
		return berth_fail(err, 0, "container init vanished before setup");

	l->pty_master = -1;
	for (;;) {
		struct sync_error m;
		memset(&m, 0, sizeof(m));
		int passed = -1;
		int r = sync_recv(sv[0], &m, &passed);
		if (r <= 0)
			return berth_fail(err, 0, "container init exited during setup");
		if (m.tag == SYNC_PID && m.exit_code > 0) {
			/* the init forked PID 1 and exits: reap it, then PID 1 is ours (subreaper) */
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			pid = l->pid = (pid_t)m.exit_code;
			if (sync_send(sv[0], SYNC_GO) < 0)
				return berth_fail(err, 0, "container init vanished before setup");
		} else if (m.tag == SYNC_PTY && passed >= 0) {
			l->pty_master = passed;
		} else if (m.tag == SYNC_READY) {
			break;
		} else if (m.tag == SYNC_ERROR) {
			return berth_fail_code(err, m.exit_code ? m.exit_code : 128, 0, "%s", m.msg);
		}
	}
	l->sync_fd = sv[0];
	l->in_w = in_p[1];
	l->out_r = out_p[0];
	l->err_r = err_p[0];
	return 0;
}
