/* Launch plan parser. Format: a sequence of records `<key> <decimal length>\n<bytes>\n`.
 * Values are binary-safe; compound values separate fields with NUL bytes. The first record
 * is `berth-plan 1`. Unknown keys are errors: the daemon and the shim ship together. */
#include "plan.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PLAN_MAX (16 * 1024 * 1024)

static void strv_push(struct strv *s, char *v)
{
	if (s->n + 1 >= s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = xrealloc(s->v, sizeof(char *) * (size_t)s->cap);
	}
	s->v[s->n++] = v;
	s->v[s->n] = NULL;
}

/* Splits val (len bytes, NUL-separated) into exactly n fields. */
static int fields(char *val, size_t len, char **out, int n)
{
	int k = 0;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || val[i] == '\0') {
			if (k >= n)
				return -1;
			out[k++] = val + start;
			start = i + 1;
		}
	}
	return k == n ? 0 : -1;
}

static int parse_ull(const char *s, unsigned long long *out, int base)
{
	char *end;
	if (*s == '\0' || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_ll(const char *s, long long *out)
{
	char *end;
	if (*s == '\0')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* "<a> <b>": two decimal numbers separated by one space. */
static int fields_sp(char *val, unsigned long long *a, unsigned long long *b)
{
	char *sp = strchr(val, ' ');
	if (!sp)
		return -1;
	*sp = '\0';
	int r = parse_ull(val, a, 10) || parse_ull(sp + 1, b, 10) ? -1 : 0;
	*sp = ' ';
	return r;
}

static int nstype(const char *name)
{
	static const struct { const char *n; int t; } tab[] = {
		{"mnt", CLONE_NEWNS}, {"uts", CLONE_NEWUTS}, {"ipc", CLONE_NEWIPC}, {"net", CLONE_NEWNET},
		{"pid", CLONE_NEWPID}, {"cgroup", CLONE_NEWCGROUP}, {"user", CLONE_NEWUSER},
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(tab[i].n, name) == 0)
			return tab[i].t;
	return -1;
}

#define NUM(field, base)                                                \
	do {                                                            \
		unsigned long long v_;                                  \
		if (parse_ull(val, &v_, base))                          \
			goto bad;                                       \
		field = v_;                                             \
	} while (0)

int plan_load(const char *path, struct plan *p, struct berth_err *err)
{
	memset(p, 0, sizeof(*p));
	p->rootfs_mnt = -1;
	p->umask = 022;
	p->log_max_size = -1;
	p->log_max_file = 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		berth_fail(err, errno, "open plan %s", path);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size > PLAN_MAX) {
		berth_fail(err, 0, "plan %s: too large or unreadable", path);
		close(fd);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	char *buf = xmalloc(size + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got != size) {
		berth_fail(err, 0, "plan %s: short read", path);
		return -1;
	}
	buf[size] = '\0';

	size_t pos = 0;
	int first = 1;
	char *key = NULL;
	while (pos < size) {
		key = buf + pos;
		char *sp = memchr(key, ' ', size - pos);
		if (!sp)
			goto bad;
		*sp = '\0';
		char *nl = memchr(sp + 1, '\n', size - (size_t)(sp + 1 - buf));
		if (!nl)
			goto bad;
		*nl = '\0';
		unsigned long long len;
		if (parse_ull(sp + 1, &len, 10))
			goto bad;
		size_t vstart = (size_t)(nl + 1 - buf);
		if (len > size - vstart || vstart + len >= size || buf[vstart + len] != '\n')
			goto bad;
		char *val = buf + vstart;
		val[len] = '\0';
		pos = vstart + len + 1;

		if (first) {
			if (strcmp(key, "berth-plan") || strcmp(val, "1"))
				goto bad;
			first = 0;
			continue;
		}
		char *f[8];
		if (!strcmp(key, "mode")) {
			if (!strcmp(val, "create"))
				p->mode = MODE_CREATE;
			else if (!strcmp(val, "exec"))
				p->mode = MODE_EXEC;
			else
				goto bad;
		} else if (!strcmp(key, "id")) p->id = val;
		else if (!strcmp(key, "socket")) p->socket = val;
		else if (!strcmp(key, "exit_file")) p->exit_file = val;
		else if (!strcmp(key, "state_file")) p->state_file = val;
		else if (!strcmp(key, "log_path")) p->log_path = val;
		else if (!strcmp(key, "log_max_size")) { long long v; if (parse_ll(val, &v)) goto bad; p->log_max_size = v; }
		else if (!strcmp(key, "log_max_file")) NUM(p->log_max_file, 10);
		else if (!strcmp(key, "log_format")) p->log_cri = !strcmp(val, "cri");
		else if (!strcmp(key, "log_compress")) NUM(p->log_compress, 10);
		else if (!strcmp(key, "log_attrs")) p->log_attrs = val;
		else if (!strcmp(key, "tty")) NUM(p->tty, 10);
		else if (!strcmp(key, "stdin")) NUM(p->open_stdin, 10);
		else if (!strcmp(key, "console")) {
			unsigned h, w;
			if (sscanf(val, "%u %u", &h, &w) != 2 || h > 65535 || w > 65535)
				goto bad;
			p->cons_h = (unsigned short)h;
			p->cons_w = (unsigned short)w;
		} else if (!strcmp(key, "clone_flags")) NUM(p->clone_flags, 10);
		else if (!strcmp(key, "ns_join")) {
			char *c = strchr(val, ':');
			if (!c || p->njoins >= 8)
				goto bad;
			*c = '\0';
			int t = nstype(val);
			if (t < 0)
				goto bad;
			p->joins[p->njoins].nstype = t;
			p->joins[p->njoins++].path = c + 1;
		} else if (!strcmp(key, "ns_proc")) {
			unsigned long long pid, start;
			if (fields_sp(val, &pid, &start) || pid == 0 || pid > 0x7fffffff)
				goto bad;
			p->ns_proc.pid = (pid_t)pid;
			p->ns_proc.start = start;
		} else if (!strcmp(key, "ns_join_proc")) {
			int t = nstype(val);
			if (t < 0)
				goto bad;
			p->ns_proc.flags |= t;
		} else if (!strcmp(key, "cgroup_procs")) strv_push(&p->cgroup_procs, val);
		else if (!strcmp(key, "uid_map")) p->uid_map = val;
		else if (!strcmp(key, "gid_map")) p->gid_map = val;
		else if (!strcmp(key, "rootfs_kind")) {
			if (!strcmp(val, "overlay"))
				p->rootfs_kind = ROOTFS_OVERLAY;
			else if (!strcmp(val, "bind"))
				p->rootfs_kind = ROOTFS_BIND;
			else
				goto bad;
		} else if (!strcmp(key, "rootfs")) p->rootfs = val;
		else if (!strcmp(key, "lower")) strv_push(&p->lowers, val);
		else if (!strcmp(key, "upper")) p->upper = val;
		else if (!strcmp(key, "work")) p->work = val;
		else if (!strcmp(key, "mount_cwd")) p->mount_cwd = val;
		else if (!strcmp(key, "overlay_opts")) p->overlay_opts = val;
		else if (!strcmp(key, "bind_src")) p->bind_src = val;
		else if (!strcmp(key, "rootfs_ro")) NUM(p->rootfs_ro, 10);
		else if (!strcmp(key, "root_propagation")) NUM(p->root_prop, 10);
		else if (!strcmp(key, "mount")) {
			unsigned long long fl, pf;
			if (fields(val, len, f, 6) || parse_ull(f[3], &fl, 10) || parse_ull(f[4], &pf, 10) || f[2][0] != '/')
				goto bad;
			p->mounts = xrealloc(p->mounts, sizeof(*p->mounts) * (size_t)(p->nmounts + 1));
			p->mounts[p->nmounts++] = (struct mount_ent){f[0], f[1], f[2], f[5], (unsigned long)fl, (unsigned long)pf, 0, 0, -1};
		} else if (!strcmp(key, "mount_rro")) {
			if (p->nmounts == 0)
				goto bad;
			p->mounts[p->nmounts - 1].rro = 1;
		} else if (!strcmp(key, "mount_idmap")) {
			if (p->nmounts == 0)
				goto bad;
			NUM(p->mounts[p->nmounts - 1].idmap, 10);
			if (p->mounts[p->nmounts - 1].idmap < 1 || p->mounts[p->nmounts - 1].idmap > 2)
				goto bad;
		} else if (!strcmp(key, "device")) {
			unsigned long long ma, mi, mo, u, g;
			if (fields(val, len, f, 7) || f[0][0] != '/' || strlen(f[1]) != 1 || !strchr("cbp", f[1][0]) ||
			    parse_ull(f[2], &ma, 10) || parse_ull(f[3], &mi, 10) || parse_ull(f[4], &mo, 10) ||
			    parse_ull(f[5], &u, 10) || parse_ull(f[6], &g, 10))
				goto bad;
			p->devs = xrealloc(p->devs, sizeof(*p->devs) * (size_t)(p->ndevs + 1));
			p->devs[p->ndevs++] = (struct dev_ent){f[0], f[1][0], (unsigned)ma, (unsigned)mi, (mode_t)mo, (uid_t)u, (gid_t)g};
		} else if (!strcmp(key, "symlink")) {
			if (fields(val, len, f, 2) || f[1][0] != '/')
				goto bad;
			p->links = xrealloc(p->links, sizeof(*p->links) * (size_t)(p->nlinks + 1));
			p->links[p->nlinks++] = (struct link_ent){f[0], f[1]};
		} else if (!strcmp(key, "masked")) strv_push(&p->masked, val);
		else if (!strcmp(key, "readonly")) strv_push(&p->ro_paths, val);
		else if (!strcmp(key, "hostname")) p->hostname = val;
		else if (!strcmp(key, "domainname")) p->domainname = val;
		else if (!strcmp(key, "sysctl")) {
			if (fields(val, len, f, 2) || strstr(f[0], ".."))
				goto bad;
			p->sysctls = xrealloc(p->sysctls, sizeof(*p->sysctls) * (size_t)(p->nsysctls + 1));
			p->sysctls[p->nsysctls++] = (struct kv){f[0], f[1]};
		} else if (!strcmp(key, "rlimit")) {
			unsigned long long r, s, h;
			if (fields(val, len, f, 3) || parse_ull(f[0], &r, 10))
				goto bad;
			if (!strcmp(f[1], "inf")) s = ~0ULL; else if (parse_ull(f[1], &s, 10)) goto bad;
			if (!strcmp(f[2], "inf")) h = ~0ULL; else if (parse_ull(f[2], &h, 10)) goto bad;
			p->rlimits = xrealloc(p->rlimits, sizeof(*p->rlimits) * (size_t)(p->nrlimits + 1));
			p->rlimits[p->nrlimits++] = (struct rlim_ent){(int)r, s, h};
		} else if (!strcmp(key, "oom_score_adj")) {
			long long v;
			if (parse_ll(val, &v) || v < -1000 || v > 1000)
				goto bad;
			p->has_oom = 1;
			p->oom = (int)v;
		} else if (!strcmp(key, "uid")) NUM(p->uid, 10);
		else if (!strcmp(key, "gid")) NUM(p->gid, 10);
		else if (!strcmp(key, "group")) strv_push(&p->groups_s, val);
		else if (!strcmp(key, "umask")) NUM(p->umask, 8);
		else if (!strcmp(key, "cwd")) p->cwd = val;
		else if (!strcmp(key, "cwd_owner")) {
			unsigned u, g;
			if (sscanf(val, "%u:%u", &u, &g) != 2)
				goto bad;
			p->cwd_uid = u;
			p->cwd_gid = g;
		} else if (!strcmp(key, "env")) strv_push(&p->env, val);
		else if (!strcmp(key, "arg")) strv_push(&p->args, val);
		else if (!strcmp(key, "caps")) {
			unsigned long long c[5];
			if (fields(val, len, f, 5))
				goto bad;
			for (int i = 0; i < 5; i++)
				if (parse_ull(f[i], &c[i], 16))
					goto bad;
			p->has_caps = 1;
			p->cap_bnd = c[0], p->cap_eff = c[1], p->cap_prm = c[2], p->cap_inh = c[3], p->cap_amb = c[4];
		} else if (!strcmp(key, "no_new_privs")) NUM(p->nnp, 10);
		else if (!strcmp(key, "seccomp")) {
			if (len == 0 || len % 8 || len / 8 > 4096)
				goto bad;
			p->seccomp = (unsigned char *)val;
			p->seccomp_len = len;
		} else if (!strcmp(key, "seccomp_flags")) NUM(p->seccomp_flags, 10);
		else
			goto bad;
	}
	if (first || !p->mode || !p->socket || !p->exit_file || p->args.n == 0) {
		berth_fail(err, 0, "plan %s: missing mode, socket, exit_file or arg", path);
		return -1;
	}
	if (p->ns_proc.flags && !p->ns_proc.pid) {
		berth_fail(err, 0, "plan %s: ns_join_proc without ns_proc", path);
		return -1;
	}
	if (p->mode == MODE_CREATE && (!p->rootfs || !p->rootfs_kind)) {
		berth_fail(err, 0, "plan %s: create needs rootfs and rootfs_kind", path);
		return -1;
	}
	p->ngroups = p->groups_s.n;
	p->groups = xmalloc(sizeof(gid_t) * (size_t)(p->ngroups + 1));
	for (int i = 0; i < p->ngroups; i++) {
		unsigned long long g;
		if (parse_ull(p->groups_s.v[i], &g, 10)) {
			berth_fail(err, 0, "plan %s: bad group", path);
			return -1;
		}
		p->groups[i] = (gid_t)g;
	}
	return 0;
bad:
	berth_fail(err, 0, "plan %s: malformed record near offset %zu (key %s)", path, pos, key ? key : "?");
	return -1;
}
