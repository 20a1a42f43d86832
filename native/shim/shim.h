/* berth-shim: shared declarations. Mechanism only: every decision arrives in the launch plan. */
#ifndef BERTH_SHIM_H
#define BERTH_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- plan.c ---- */

struct strv {
	char **v;
	int n, cap;
};

struct mount_ent {
	char *type, *src, *dest, *data;
	unsigned long flags, pflags;
};

struct dev_ent {
	char *path;
	char type; /* 'c', 'b', 'p' */
	unsigned major, minor;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

struct link_ent {
	char *target, *path;
};

struct kv {
	char *key, *val;
};

struct rlim_ent {
	int res;
	unsigned long long soft, hard;
};

struct ns_join {
	int nstype; /* CLONE_NEW* */
	char *path;
};

/* ns_proc: the process whose namespaces an exec joins (ns_join_proc), named with its start time */
struct ns_proc_ref {
	pid_t pid;
	unsigned long long start;
	int flags; /* CLONE_NEW* of the namespaces to join */
};

enum { MODE_CREATE = 1, MODE_EXEC = 2 };
enum { ROOTFS_NONE = 0, ROOTFS_OVERLAY = 1, ROOTFS_BIND = 2 };

struct plan {
	int mode;
	char *id;
	char *socket, *exit_file, *state_file;
	char *log_path;
	long long log_max_size;
	int log_max_file;
	int log_cri; /* 1: the CRI format ("<time> <stream> <F|P> <line>") instead of json-file */
	int tty, open_stdin;
	unsigned short cons_h, cons_w;
	unsigned long clone_flags;
	struct ns_join joins[8];
	int njoins;
	struct ns_proc_ref ns_proc; /* pid 0: none */
	struct strv cgroup_procs;
	char *uid_map, *gid_map;
	/* rootfs */
	int rootfs_kind;
	char *rootfs; /* mount target (bundle/rootfs) */
	struct strv lowers;
	char *upper, *work, *mount_cwd, *overlay_opts, *bind_src;
	int rootfs_ro;
	unsigned long root_prop;
	struct mount_ent *mounts;
	int nmounts;
	struct dev_ent *devs;
	int ndevs;
	struct link_ent *links;
	int nlinks;
	struct strv masked, ro_paths;
	char *hostname, *domainname;
	struct kv *sysctls;
	int nsysctls;
	struct rlim_ent *rlimits;
	int nrlimits;
	int has_oom;
	int oom;
	uid_t uid;
	gid_t gid;
	struct strv groups_s;
	gid_t *groups;
	int ngroups;
	mode_t umask;
	char *cwd;
	uid_t cwd_uid;
	gid_t cwd_gid;
	struct strv env, args;
	int has_caps;
	uint64_t cap_bnd, cap_eff, cap_prm, cap_inh, cap_amb;
	int nnp;
	unsigned char *seccomp;
	size_t seccomp_len;
	unsigned seccomp_flags;
	int last_cap; /* filled by the shim from /proc/sys/kernel/cap_last_cap */
};

/* Parses the plan file; on error returns -1 and fills err. */
int plan_load(const char *path, struct plan *p, char *err, size_t errlen);

/* ---- util.c ---- */

void die_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int write_all(int fd, const void *buf, size_t n);
/* RFC3339Nano in UTC with trailing zeros trimmed (Go's time.RFC3339Nano). */
size_t format_time_now(char *out, size_t outlen);
/* Appends s (n bytes) JSON-escaped the way Docker's jsonlog does (<>& escaped, invalid UTF-8 -> U+FFFD). */
size_t json_escape(char *out, const char *s, size_t n);
/* tmp file + rename; durable: fsync first (exit records: they outlive a host crash; the state file
 * names processes that a crash ends, so it skips the flush that delays every container start). */
int write_file_atomic(const char *path, const char *data, size_t n, mode_t mode, int durable);
unsigned long long proc_start_time(pid_t pid);
unsigned long long stat_start_time(int statfd);
char *xstrdup(const char *s);
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);

/* ---- ns.c: joining namespaces ---- */

#include "err.h"

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

/* ---- child.c: the container init before exec (runs in the clone()d child) ---- */

struct child_fds {
	int sync;       /* SOCK_SEQPACKET to the shim */
	int stdin_r;    /* -1: /dev/null */
	int stdout_w, stderr_w;
	/* cgroup v1 `tasks` files the child joins itself (writing "0") once it has the go */
	char **cg_tasks;
	int ncg_tasks;
	struct ns_proc *nsp; /* exec: the container's init, pinned (ns_proc.flags says what to join) */
};

/* Messages on the sync socket. */
enum {
	SYNC_GO = 'G',     /* shim -> child: cgroups joined, maps written: continue */
	SYNC_PTY = 'T',    /* child -> shim: pty master attached (SCM_RIGHTS) */
	SYNC_READY = 'R',  /* child -> shim: everything done, waiting for start */
	SYNC_START = 'S',  /* shim -> child: exec now */
	SYNC_ERROR = 'E',  /* child -> shim: "E" + errno(int) + code(int) + message */
};

struct sync_error {
	char tag;
	int err;
	int exit_code;
	char msg[1024];
};

__attribute__((noreturn)) void child_main(struct plan *p, struct child_fds *fds);

/* Reports a failure to the shim and exits; step names the operation. */
__attribute__((noreturn)) void child_fail(int code, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
extern int child_sync_fd;

/* ---- rootfs.c ---- */

/* Both run in the child; they call child_fail on error. */
void rootfs_prepare(struct plan *p);          /* mounts, devices, pivot_root */
void rootfs_console(struct plan *p, int *slave_out); /* pty inside the container; sends master to shim */
void rootfs_finish(struct plan *p);           /* sysctls, readonly/masked paths, ro root */
int open_in_root(int rootfd, const char *path, int flags);
int mkdir_all_in_root(int rootfd, const char *path, mode_t mode, uid_t uid, gid_t gid);

/* ---- security.c ---- */

void sec_rlimits(struct plan *p);
void sec_oom(struct plan *p);
void sec_seccomp(struct plan *p);
void sec_user_caps(struct plan *p);
void sec_nnp(struct plan *p);

/* ---- log.c ---- */

struct logw;
struct logw *logw_open(const char *path, long long max_size, int max_file, int cri);
/* Closes and opens the log path again (the kubelet renamed the file away: CRI ReopenContainerLog). */
int logw_reopen(struct logw *l);
void logw_data(struct logw *l, int stream, const char *data, size_t n); /* stream 0 stdout, 1 stderr */
void logw_flush(struct logw *l);

/* ---- server.c: socket + event loop ---- */

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

/* ---- spawner.c: forks shims for berthd from a small process ---- */

typedef int (*shim_run_fn)(const char *mode, const char *plan_path);
int spawner_main(shim_run_fn run);

#endif
