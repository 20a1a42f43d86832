/* plan_load on its own: every record kind, binary-safe values, and the malformed plans it must refuse.
 * Built and run by `make -C native test-plan` (test/unit/native/shim-c.test.ts runs that). */
#include "check.h"
#include "../plan.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

struct buf {
	char d[65536];
	size_t n;
};

static void rec(struct buf *b, const char *key, const char *val, size_t len)
{
	b->n += (size_t)snprintf(b->d + b->n, sizeof(b->d) - b->n, "%s %zu\n", key, len);
	memcpy(b->d + b->n, val, len);
	b->n += len;
	b->d[b->n++] = '\n';
}

static void recs(struct buf *b, const char *key, const char *val)
{
	rec(b, key, val, strlen(val));
}

/* a record whose value is a string literal (NULs included) */
#define RECL(b, key, lit) rec(b, key, lit, sizeof(lit) - 1)

static char dir[] = "/tmp/berth-plan-test-XXXXXX";

/* Writes the plan and loads it; returns plan_load's result. */
static int load(const struct buf *b, struct plan *p, struct berth_err *err)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/plan", dir);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b->d, 1, b->n, f) != b->n || fclose(f) != 0) {
		perror("write plan");
		exit(2);
	}
	memset(err, 0, sizeof(*err));
	return plan_load(path, p, err);
}

static void minimal_exec(struct buf *b)
{
	b->n = 0;
	recs(b, "berth-plan", "1");
	recs(b, "mode", "exec");
	recs(b, "socket", "/run/s.sock");
	recs(b, "exit_file", "/run/exit.json");
	recs(b, "arg", "true");
}

static void test_full_create(void)
{
	struct buf b = {.n = 0};
	struct plan p;
	struct berth_err err;
	recs(&b, "berth-plan", "1");
	recs(&b, "mode", "create");
	recs(&b, "id", "abc");
	recs(&b, "socket", "/run/s.sock");
	recs(&b, "exit_file", "/run/exit.json");
	recs(&b, "log_path", "/var/log/c.log");
	recs(&b, "log_max_size", "1048576");
	recs(&b, "log_max_file", "3");
	recs(&b, "log_format", "cri");
	recs(&b, "tty", "1");
	recs(&b, "console", "24 80");
	recs(&b, "clone_flags", "1610612736"); /* CLONE_NEWPID | CLONE_NEWNET */
	recs(&b, "ns_join", "ipc:/proc/7/ns/ipc");
	recs(&b, "rootfs_kind", "overlay");
	recs(&b, "rootfs", "/b/rootfs");
	recs(&b, "lower", "l1");
	recs(&b, "lower", "l2");
	RECL(&b, "mount", "proc\0proc\0/proc\0" "14\0" "0\0");
	RECL(&b, "device", "/dev/null\0c\0" "1\0" "3\0" "438\0" "0\0" "0");
	RECL(&b, "symlink", "pts/ptmx\0/dev/ptmx");
	recs(&b, "masked", "/proc/kcore");
	recs(&b, "readonly", "/proc/sys");
	RECL(&b, "sysctl", "net/ipv4/ip_forward\0" "1");
	RECL(&b, "rlimit", "7\0" "1024\0inf");
	recs(&b, "oom_score_adj", "-5");
	recs(&b, "uid", "1000");
	recs(&b, "gid", "1001");
	recs(&b, "group", "10");
	recs(&b, "group", "20");
	recs(&b, "umask", "027");
	recs(&b, "cwd", "/work dir");
	recs(&b, "cwd_owner", "1000:1001");
	recs(&b, "env", "A=line1\nline2"); /* values are binary-safe: a newline inside */
	recs(&b, "arg", "sh");
	RECL(&b, "arg", "");
	RECL(&b, "caps", "a80425fb\0a80425fb\0a80425fb\0" "0\0" "0");
	recs(&b, "no_new_privs", "1");
	RECL(&b, "seccomp", "\x06\0\0\0\n\0\xff\x7f" "\x06\0\0\0\0\0\x05\0");
	recs(&b, "seccomp_flags", "1");
	if (load(&b, &p, &err) != 0) {
		fprintf(stderr, "full create plan refused: %s\n", err.msg);
		failures++;
		return;
	}
	CHECK(p.mode == MODE_CREATE);
	CHECK(!strcmp(p.id, "abc"));
	CHECK(p.log_max_size == 1048576 && p.log_max_file == 3 && p.log_cri == 1);
	CHECK(p.tty == 1 && p.cons_h == 24 && p.cons_w == 80);
	CHECK(p.clone_flags == (CLONE_NEWPID | CLONE_NEWNET));
	CHECK(p.njoins == 1 && p.joins[0].nstype == CLONE_NEWIPC && !strcmp(p.joins[0].path, "/proc/7/ns/ipc"));
	CHECK(p.rootfs_kind == ROOTFS_OVERLAY && p.lowers.n == 2 && !strcmp(p.lowers.v[1], "l2") && !p.lowers.v[2]);
	CHECK(p.nmounts == 1 && !strcmp(p.mounts[0].type, "proc") && !strcmp(p.mounts[0].dest, "/proc"));
	CHECK(p.mounts[0].flags == (MS_NOSUID | MS_NODEV | MS_NOEXEC) && p.mounts[0].pflags == 0 && !*p.mounts[0].data);
	CHECK(p.ndevs == 1 && p.devs[0].type == 'c' && p.devs[0].major == 1 && p.devs[0].minor == 3 && p.devs[0].mode == 0666);
	CHECK(p.nlinks == 1 && !strcmp(p.links[0].target, "pts/ptmx") && !strcmp(p.links[0].path, "/dev/ptmx"));
	CHECK(p.masked.n == 1 && p.ro_paths.n == 1);
	CHECK(p.nsysctls == 1 && !strcmp(p.sysctls[0].key, "net/ipv4/ip_forward") && !strcmp(p.sysctls[0].val, "1"));
	CHECK(p.nrlimits == 1 && p.rlimits[0].res == 7 && p.rlimits[0].soft == 1024 && p.rlimits[0].hard == ~0ULL);
	CHECK(p.has_oom && p.oom == -5);
	CHECK(p.uid == 1000 && p.gid == 1001 && p.ngroups == 2 && p.groups[1] == 20);
	CHECK(p.umask == 027);
	CHECK(!strcmp(p.cwd, "/work dir") && p.cwd_uid == 1000 && p.cwd_gid == 1001);
	CHECK(p.env.n == 1 && !strcmp(p.env.v[0], "A=line1\nline2"));
	CHECK(p.args.n == 2 && !strcmp(p.args.v[0], "sh") && !strcmp(p.args.v[1], "") && !p.args.v[2]);
	CHECK(p.has_caps && p.cap_bnd == 0xa80425fb && p.cap_inh == 0);
	CHECK(p.nnp == 1 && p.seccomp_len == 16 && p.seccomp[4] == '\n' && p.seccomp[7] == 0x7f && p.seccomp_flags == 1);
}

static void test_exec_ns_proc(void)
{
	struct buf b;
	struct plan p;
	struct berth_err err;
	minimal_exec(&b);
	recs(&b, "ns_proc", "4242 987654321");
	recs(&b, "ns_join_proc", "net");
	recs(&b, "ns_join_proc", "mnt");
	if (load(&b, &p, &err) != 0) {
		fprintf(stderr, "exec plan refused: %s\n", err.msg);
		failures++;
		return;
	}
	CHECK(p.mode == MODE_EXEC && p.ns_proc.pid == 4242 && p.ns_proc.start == 987654321ULL);
	CHECK(p.ns_proc.flags == (CLONE_NEWNET | CLONE_NEWNS));
	CHECK(p.umask == 022 && p.log_max_size == -1 && p.log_max_file == 1); /* defaults */
}

/* One malformed plan: plan_load refuses it with exit code 128 and a message containing want. */
static void refuse(const char *name, struct buf *b, const char *want)
{
	struct plan p;
	struct berth_err err;
	int r = load(b, &p, &err);
	if (r == 0 || err.code != 128 || !strstr(err.msg, want)) {
		fprintf(stderr, "%s: expected a refusal mentioning \"%s\", got %d \"%s\"\n", name, want, r, err.msg);
		failures++;
	}
}

static void test_refusals(void)
{
	struct buf b;

	b.n = 0;
	recs(&b, "berth-plan", "2");
	refuse("wrong version", &b, "malformed record");

	minimal_exec(&b);
	recs(&b, "bogus", "1");
	refuse("unknown key", &b, "(key bogus)");

	minimal_exec(&b);
	b.n += (size_t)snprintf(b.d + b.n, sizeof(b.d) - b.n, "env 100\nshort\n");
	refuse("length past the end", &b, "malformed record");

	minimal_exec(&b);
	recs(&b, "uid", "-1");
	refuse("negative number", &b, "(key uid)");

	minimal_exec(&b);
	RECL(&b, "seccomp", "1234567");
	refuse("seccomp not whole instructions", &b, "(key seccomp)");

	minimal_exec(&b);
	recs(&b, "oom_score_adj", "1001");
	refuse("oom_score_adj out of range", &b, "(key oom_score_adj)");

	minimal_exec(&b);
	recs(&b, "ns_join", "time:/proc/1/ns/time");
	refuse("unknown namespace", &b, "(key ns_join)");

	minimal_exec(&b);
	recs(&b, "ns_proc", "0 5");
	refuse("pid 0", &b, "(key ns_proc)");

	minimal_exec(&b);
	recs(&b, "ns_join_proc", "net");
	refuse("ns_join_proc without ns_proc", &b, "ns_join_proc without ns_proc");

	minimal_exec(&b);
	RECL(&b, "mount", "bind\0/a\0relative\0" "0\0" "0\0");
	refuse("relative mount destination", &b, "(key mount)");

	b.n = 0;
	recs(&b, "berth-plan", "1");
	recs(&b, "mode", "exec");
	recs(&b, "socket", "/s");
	recs(&b, "exit_file", "/e");
	refuse("no command", &b, "missing mode, socket, exit_file or arg");

	minimal_exec(&b);
	b.n = 0;
	recs(&b, "berth-plan", "1");
	recs(&b, "mode", "create");
	recs(&b, "socket", "/s");
	recs(&b, "exit_file", "/e");
	recs(&b, "arg", "true");
	refuse("create without a rootfs", &b, "create needs rootfs and rootfs_kind");

	struct plan p;
	struct berth_err err;
	memset(&err, 0, sizeof(err));
	CHECK(plan_load("/nonexistent/plan", &p, &err) < 0 && err.errnum != 0 && strstr(err.msg, "open plan /nonexistent/plan: "));
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_full_create();
	test_exec_ns_proc();
	test_refusals();
	char path[128];
	snprintf(path, sizeof(path), "%s/plan", dir);
	unlink(path);
	rmdir(dir);
	return check_report("plan_test");
}
