/* Process confinement in the container init: rlimits, OOM score, capabilities with the
 * user switch, no_new_privs and the seccomp filter compiled by berthd. */
#include "security.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *rlimit_name(int r)
{
	static const char *names[] = {"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
				      "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
				      "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
				      "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};
	return r >= 0 && r < 16 ? names[r] : "RLIMIT_?";
}

int sec_rlimits(struct plan *p, struct berth_err *err)
{
	for (int i = 0; i < p->nrlimits; i++) {
		struct rlim_ent *r = &p->rlimits[i];
		struct rlimit rl = {.rlim_cur = r->soft == ~0ULL ? RLIM_INFINITY : r->soft,
				    .rlim_max = r->hard == ~0ULL ? RLIM_INFINITY : r->hard};
		if (setrlimit(r->res, &rl) < 0) {
			int e = errno;
			struct rlimit cur;
			if (e == EPERM && getrlimit(r->res, &cur) == 0)
				return berth_fail(err, e, "setrlimit %s: cannot raise the hard limit above the host's %llu",
					   rlimit_name(r->res), (unsigned long long)cur.rlim_max);
			return berth_fail(err, e, "setrlimit %s", rlimit_name(r->res));
		}
	}
	return 0;
}

int sec_oom(struct plan *p, struct berth_err *err)
{
	if (!p->has_oom)
		return 0;
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%d", p->oom);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_all(fd, buf, (size_t)n) < 0)
		return berth_fail(err, errno, "set oom_score_adj to %d", p->oom);
	close(fd);
	return 0;
}

int sec_seccomp(struct plan *p, struct berth_err *err)
{
	if (!p->seccomp)
		return 0;
	/* the plan buffer has no alignment guarantee */
	struct sock_filter *f = xmalloc(p->seccomp_len);
	memcpy(f, p->seccomp, p->seccomp_len);
	struct sock_fprog prog = {.len = (unsigned short)(p->seccomp_len / 8), .filter = f};
	int r;
	if (p->seccomp_flags)
		r = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog);
	else
		r = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
	/* f is not freed: nothing may run between the filter and execve that the filter could refuse */
	if (r < 0)
		return berth_fail(err, errno, "install seccomp filter");
	return 0;
}

int sec_nnp(struct plan *p, struct berth_err *err)
{
	if (p->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return berth_fail(err, errno, "set no_new_privs");
	return 0;
}

int sec_user_caps(struct plan *p, struct berth_err *err)
{
	if (p->has_caps) {
		for (int c = 0; c <= p->last_cap && c < 64; c++) {
			if (p->cap_bnd & (1ULL << c))
				continue;
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				return berth_fail(err, errno, "drop capability %d from the bounding set", c);
		}
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return berth_fail(err, errno, "set keepcaps");
	if (setgroups((size_t)p->ngroups, p->groups) < 0)
		return berth_fail(err, errno, "setgroups");
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		return berth_fail(err, errno, "setgid %u", (unsigned)p->gid);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		return berth_fail(err, errno, "setuid %u", (unsigned)p->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return berth_fail(err, errno, "clear keepcaps");
	if (!p->has_caps)
		return 0;
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	data[0].effective = (uint32_t)p->cap_eff;
	data[1].effective = (uint32_t)(p->cap_eff >> 32);
	data[0].permitted = (uint32_t)p->cap_prm;
	data[1].permitted = (uint32_t)(p->cap_prm >> 32);
	data[0].inheritable = (uint32_t)p->cap_inh;
	data[1].inheritable = (uint32_t)(p->cap_inh >> 32);
	if (syscall(SYS_capset, &hdr, data) < 0)
		return berth_fail(err, errno, "capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return berth_fail(err, errno, "clear ambient capabilities");
	for (int c = 0; c <= p->last_cap && c < 64; c++)
		if ((p->cap_amb & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			return berth_fail(err, errno, "raise ambient capability %d", c);
	return 0;
}
