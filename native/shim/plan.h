/* The launch plan: everything berthd decided for one container or exec, parsed from the plan file. */
#ifndef BERTH_PLAN_H
#define BERTH_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct strv {
	char **v;
	int n, cap;
};

struct mount_ent {
	char *type, *src, *dest, *data;
	unsigned long flags, pflags;
	int rro; /* recursively read-only: mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) after the bind */
	int idmap; /* a bind idmapped to the container's user namespace (MOUNT_ATTR_IDMAP): 1 its top, 2 its whole tree */
	int prefd; /* user namespace: the bind's detached mount, made before the init joined it (-1: none) */
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
	int log_compress;
	char *log_attrs; /* a JSON object written as "attrs" in every entry, or NULL */
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
	/* user namespace (filled by the init before it joins one, see userns.c): the rootfs as a detached mount;
	 * -1 otherwise */
	int rootfs_mnt;
};

/* Parses the plan file at path into p (which points into one buffer the plan keeps). */
int plan_load(const char *path, struct plan *p, struct berth_err *err);

#endif
