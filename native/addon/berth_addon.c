/*
 * berth_addon: the few syscalls berthd needs that Node does not offer:
 * mknod, the l*xattr family, mount and umount2, a bind mount onto an open
 * descriptor (the new mount API), and attaching a cgroup v2 device filter
 * (eBPF program bytes built by berthd), and a network namespace with its veth
 * endpoints over rtnetlink (netns.c; asynchronous). Each function throws a
 * JS Error carrying errno/code/syscall on failure, like Node's fs does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <node_api.h>
#include "netns.h"
#include "sd_notify.h"
#include "malloc_trim.h"

#define MAX_PATH_ARG 4096
#define MAX_DATA_ARG 65536

static const char *errno_code(int e) {
  switch (e) {
  case EPERM: return "EPERM";
  case ENOENT: return "ENOENT";
  case EIO: return "EIO";
  case EACCES: return "EACCES";
  case EEXIST: return "EEXIST";
  case ENOTDIR: return "ENOTDIR";
  case EISDIR: return "EISDIR";
  case EINVAL: return "EINVAL";
  case ENOSPC: return "ENOSPC";
  case EROFS: return "EROFS";
  case EBUSY: return "EBUSY";
  case ENODEV: return "ENODEV";
  case ENOTSUP: return "ENOTSUP";
  case ENODATA: return "ENODATA";
  case ERANGE: return "ERANGE";
  case E2BIG: return "E2BIG";
  case ENAMETOOLONG: return "ENAMETOOLONG";
  case ELOOP: return "ELOOP";
  case ENOSYS: return "ENOSYS";
  case EBADF: return "EBADF";
  case EFAULT: return "EFAULT";
  case ENOMEM: return "ENOMEM";
  case EAGAIN: return "EAGAIN";
  case EPIPE: return "EPIPE";
  case ENOTSOCK: return "ENOTSOCK";
  case ECONNRESET: return "ECONNRESET";
  default: return "EUNKNOWN";
  }
}

/* Error(msg) with .errno (negative, as Node's) and .code, as Node's own system errors carry them. */
static napi_value errno_error(napi_env env, int e, const char *msg) {
  napi_value jmsg, err, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_error(env, NULL, jmsg, &err);
  napi_create_int32(env, -e, &v);
  napi_set_named_property(env, err, "errno", v);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "code", v);
  return err;
}

/* Error("<CODE>: <strerror>, <syscall> '<path>'") with .errno, .code, .syscall, .path. */
static napi_value syscall_error(napi_env env, int e, const char *syscall, const char *path) {
  char msg[MAX_PATH_ARG + 256];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", errno_code(e), strerror(e), syscall, path ? path : "");
  napi_value err = errno_error(env, e, msg), v;
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "syscall", v);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "path", v);
  }
  return err;
}

/* Throws syscall_error's Error. */
static napi_value throw_errno(napi_env env, int e, const char *syscall, const char *path) {
  napi_throw(env, syscall_error(env, e, syscall, path));
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "wrong number of arguments");
    return -1;
  }
  return 0;
}

/* Copies a JS string argument into a fresh malloc'd buffer (NULL + pending exception on error). */
static char *get_string(napi_env env, napi_value v, size_t max) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string argument");
    return NULL;
  }
  if (len >= max) {
    napi_throw_range_error(env, NULL, "string argument too long");
    return NULL;
  }
  char *buf = malloc(len + 1);
  if (!buf) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, v, buf, len + 1, &len);
  return buf;
}

/* An xattr call's (path, name) arguments; -1 with a JS exception pending when either is bad. */
static int get_path_and_name(napi_env env, napi_value argv[2], char **path, char **name) {
  *path = get_string(env, argv[0], MAX_PATH_ARG);
  if (!*path) return -1;
  *name = get_string(env, argv[1], 256);
  if (!*name) {
    free(*path);
    return -1;
  }
  return 0;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number argument");
    return -1;
  }
  return 0;
}

/* sendWithFd(socketFd, data: Buffer, fd) -> bytes sent: one sendmsg on a unix stream socket (non-blocking, no
 * SIGPIPE) with `fd` passed along (SCM_RIGHTS) on the first byte; the caller sends what is left, if any. */
static napi_value js_send_with_fd(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint32_t sock, fd;
  void *data;
  size_t len;
  if (get_args(env, info, 3, argv) || get_u32(env, argv[0], &sock) || get_u32(env, argv[2], &fd)) return NULL;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || len == 0) {
    napi_throw_type_error(env, NULL, "data must be a non-empty Buffer");
    return NULL;
  }
  struct iovec iov = {data, len};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } cbuf;
  memset(&cbuf, 0, sizeof cbuf);
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf, .msg_controllen = sizeof cbuf.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  int ifd = (int)fd;
  memcpy(CMSG_DATA(c), &ifd, sizeof ifd);
  ssize_t n;
  do
    n = sendmsg((int)sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "sendmsg", NULL);
  napi_value ret;
  napi_create_int64(env, (int64_t)n, &ret);
  return ret;
}

/* mknod(path, mode, major, minor): mode includes the file type bits (S_IFCHR, S_IFBLK, S_IFIFO). */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint32_t mode, maj, min;
  if (get_args(env, info, 4, argv) || get_u32(env, argv[1], &mode) || get_u32(env, argv[2], &maj) ||
      get_u32(env, argv[3], &min))
    return NULL;
  char *path = get_string(env, argv[0], MAX_PATH_ARG);
  if (!path) return NULL;
  napi_value ret = NULL;
  if (mknod(path, (mode_t)mode, makedev(maj, min)) != 0) ret = throw_errno(env, errno, "mknod", path);
  free(path);
  return ret;
}

/* lsetxattr(path, name, value: Buffer, flags) */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint32_t flags;
  void *data;
  size_t len;
  if (get_args(env, info, 4, argv) || get_u32(env, argv[3], &flags)) return NULL;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "value must be a Buffer");
    return NULL;
  }
  char *path, *name;
  if (get_path_and_name(env, argv, &path, &name)) return NULL;
  napi_value ret = NULL;
  if (lsetxattr(path, name, data, len, (int)flags) != 0) ret = throw_errno(env, errno, "lsetxattr", path);
  free(name);
  free(path);
  return ret;
}

/* lgetxattr(path, name) -> Buffer, or undefined when the attribute does not exist. */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  char *path, *name;
  if (get_path_and_name(env, argv, &path, &name)) return NULL;
  napi_value ret = NULL;
  for (;;) {
    ssize_t n = lgetxattr(path, name, NULL, 0);
    if (n < 0) {
      if (errno == ENODATA) napi_get_undefined(env, &ret);
      else ret = throw_errno(env, errno, "lgetxattr", path);
      break;
    }
    void *out;
    napi_value buf;
    if (napi_create_buffer(env, (size_t)n, &out, &buf) != napi_ok) break;
    ssize_t m = n == 0 ? 0 : lgetxattr(path, name, out, (size_t)n);
    if (m < 0 && errno == ERANGE) continue; /* grew in between */
    if (m < 0) {
      ret = throw_errno(env, errno, "lgetxattr", path);
      break;
    }
    if (m < n) napi_create_buffer_copy(env, (size_t)m, out, NULL, &buf);
    ret = buf;
    break;
  }
  free(name);
  free(path);
  return ret;
}

/* llistxattr(path) -> string[] */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  char *path = get_string(env, argv[0], MAX_PATH_ARG);
  if (!path) return NULL;
  napi_value ret = NULL;
  for (;;) {
    ssize_t n = llistxattr(path, NULL, 0);
    if (n < 0) {
      ret = throw_errno(env, errno, "llistxattr", path);
      break;
    }
    char *list = malloc((size_t)n + 1);
    if (!list) {
      napi_throw_error(env, NULL, "out of memory");
      break;
    }
    ssize_t m = n == 0 ? 0 : llistxattr(path, list, (size_t)n);
    if (m < 0) {
      int e = errno;
      free(list);
      if (e == ERANGE) continue;
      ret = throw_errno(env, e, "llistxattr", path);
      break;
    }
    napi_value arr;
    napi_create_array(env, &arr);
    uint32_t idx = 0;
    for (ssize_t off = 0; off < m;) {
      size_t l = strnlen(list + off, (size_t)(m - off));
      napi_value s;
      napi_create_string_utf8(env, list + off, l, &s);
      napi_set_element(env, arr, idx++, s);
      off += (ssize_t)l + 1;
    }
    free(list);
    ret = arr;
    break;
  }
  free(path);
  return ret;
}

/* mount(source, target, fstype, flags, data) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint32_t flags;
  if (get_args(env, info, 5, argv) || get_u32(env, argv[3], &flags)) return NULL;
  char *source = get_string(env, argv[0], MAX_PATH_ARG);
  char *target = source ? get_string(env, argv[1], MAX_PATH_ARG) : NULL;
  char *fstype = target ? get_string(env, argv[2], 256) : NULL;
  char *data = fstype ? get_string(env, argv[4], MAX_DATA_ARG) : NULL;
  napi_value ret = NULL;
  if (data && mount(source, target, fstype, (unsigned long)flags, data[0] ? data : NULL) != 0)
    ret = throw_errno(env, errno, "mount", target);
  free(data);
  free(fstype);
  free(target);
  free(source);
  return ret;
}

/* umount2(target, flags) */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint32_t flags;
  if (get_args(env, info, 2, argv) || get_u32(env, argv[1], &flags)) return NULL;
  char *target = get_string(env, argv[0], MAX_PATH_ARG);
  if (!target) return NULL;
  napi_value ret = NULL;
  if (umount2(target, (int)flags) != 0) ret = throw_errno(env, errno, "umount2", target);
  free(target);
  return ret;
}

/* umount2Async(target, flags): Promise<void>, the umount2 on the thread pool. A lazy unmount waits for an RCU
 * grace period (0.1-10 ms measured, per container removal): the event loop does not. */
struct umount_work {
  napi_async_work work;
  napi_deferred deferred;
  char *target;
  int flags;
  int err;
};

static void umount_execute(napi_env env, void *data) {
  (void)env;
  struct umount_work *w = data;
  w->err = umount2(w->target, w->flags) != 0 ? errno : 0;
}

static void umount_complete(napi_env env, napi_status status, void *data) {
  struct umount_work *w = data;
  napi_value v;
  if (status == napi_ok && w->err == 0) {
    napi_get_undefined(env, &v);
    napi_resolve_deferred(env, w->deferred, v);
  } else {
    napi_reject_deferred(env, w->deferred, syscall_error(env, w->err ? w->err : EIO, "umount2", w->target));
  }
  napi_delete_async_work(env, w->work);
  free(w->target);
  free(w);
}

static napi_value js_umount2_async(napi_env env, napi_callback_info info) {
  napi_value argv[2], promise = NULL, name;
  uint32_t flags;
  if (get_args(env, info, 2, argv) || get_u32(env, argv[1], &flags)) return NULL;
  struct umount_work *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  w->flags = (int)flags;
  if (!(w->target = get_string(env, argv[0], MAX_PATH_ARG)) || napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    free(w->target);
    free(w);
    return NULL;
  }
  napi_create_string_utf8(env, "berth.umount2", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, umount_execute, umount_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    napi_throw_error(env, NULL, "cannot queue the umount2 work");
    return NULL; /* the deferred is dropped with its promise */
  }
  return promise;
}

/* ---- bind mount onto a descriptor ------------------------------------------------------------------------- */

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
/* The generic syscall numbers (the same on x86_64 and aarch64). */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct berth_mount_attr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};

/*
 * bindMountAt(source, targetFd, recursive, attrs): clones the mount tree at `source` (open_tree), sets the
 * MOUNT_ATTR_* bits `attrs` on the detached copy (mount_setattr, recursively with `recursive`), then attaches it
 * onto the inode `targetFd` holds (move_mount with MOVE_MOUNT_T_EMPTY_PATH). The target is never looked up by
 * name again, so a symlink swapped in after the caller opened it (O_PATH|O_NOFOLLOW) cannot redirect the mount,
 * and the read-only/nosuid/nodev bits are in force before the mount is visible.
 */
static napi_value js_bind_mount_at(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint32_t target_fd, attrs;
  bool recursive;
  if (get_args(env, info, 4, argv) || get_u32(env, argv[1], &target_fd) || get_u32(env, argv[3], &attrs)) return NULL;
  if (napi_get_value_bool(env, argv[2], &recursive) != napi_ok) {
    napi_throw_type_error(env, NULL, "recursive must be a boolean");
    return NULL;
  }
  char *source = get_string(env, argv[0], MAX_PATH_ARG);
  if (!source) return NULL;
  napi_value ret = NULL;
  unsigned int rec = recursive ? AT_RECURSIVE : 0;
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
  if (tree < 0) {
    ret = throw_errno(env, errno, "open_tree", source);
    goto out;
  }
  if (attrs != 0) {
    struct berth_mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = attrs;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | rec, &a, sizeof a) != 0) {
      ret = throw_errno(env, errno, "mount_setattr", source);
      goto out;
    }
  }
  if (syscall(SYS_move_mount, tree, "", (int)target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    ret = throw_errno(env, errno, "move_mount", source);
    goto out;
  }
out:
  if (tree >= 0) close(tree);
  free(source);
  return ret;
}

/* ---- cgroup v2 device filter ------------------------------------------------------------------------------- */

/* Name given to Berth's programs so a later attach finds and replaces only its own. */
#define BERTH_DEVICE_PROG_NAME "berth_devices"
#define MAX_INSNS 4096

static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

/* Ids of the BPF_CGROUP_DEVICE programs attached directly to the cgroup (*ids malloc'd; -1 + errno on failure). */
static int query_device_progs(int dirfd, uint32_t **ids, uint32_t *count) {
  uint32_t cap = 64;
  for (int tries = 0; tries < 8; tries++) {
    uint32_t *buf = calloc(cap ? cap : 1, sizeof *buf);
    if (!buf) {
      errno = ENOMEM;
      return -1;
    }
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.query.target_fd = (uint32_t)dirfd;
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = (uint64_t)(uintptr_t)buf;
    attr.query.prog_cnt = cap;
    if (sys_bpf(BPF_PROG_QUERY, &attr) == 0) {
      *ids = buf;
      *count = attr.query.prog_cnt;
      return 0;
    }
    int e = errno;
    free(buf);
    if (e != ENOSPC) {
      errno = e;
      return -1;
    }
    cap = attr.query.prog_cnt; /* the kernel reports how many there are */
  }
  errno = ENOSPC;
  return -1;
}

/* fd of program `id` if it is a Berth device program, -1 if not (or not accessible); -2 + errno on failure. */
static int open_if_berth_prog(uint32_t id) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_id = id;
  int fd = (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
  if (fd < 0) return (errno == ENOENT || errno == EPERM || errno == EACCES) ? -1 : -2;
  struct bpf_prog_info info;
  memset(&info, 0, sizeof info);
  memset(&attr, 0, sizeof attr);
  attr.info.bpf_fd = (uint32_t)fd;
  attr.info.info_len = sizeof info;
  attr.info.info = (uint64_t)(uintptr_t)&info;
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -2;
  }
  if (strncmp(info.name, BERTH_DEVICE_PROG_NAME, sizeof info.name) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/*
 * attachDeviceFilter(cgroupDir, insns: Buffer) -> number of earlier Berth programs replaced.
 * Loads the BPF_PROG_TYPE_CGROUP_DEVICE program, attaches it with BPF_F_ALLOW_MULTI, then detaches the Berth
 * programs that were there before (the new one is in force first: in between, both must allow).
 * Errors name the step in .syscall ("bpf(BPF_PROG_LOAD)"...); a verifier refusal carries .verifierLog.
 */
static napi_value js_attach_device_filter(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  void *insns;
  size_t len;
  if (napi_get_buffer_info(env, argv[1], &insns, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "insns must be a Buffer");
    return NULL;
  }
  if (len == 0 || len % sizeof(struct bpf_insn) != 0 || len / sizeof(struct bpf_insn) > MAX_INSNS) {
    napi_throw_range_error(env, NULL, "insns must hold 1 to 4096 struct bpf_insn");
    return NULL;
  }
  char *path = get_string(env, argv[0], MAX_PATH_ARG);
  if (!path) return NULL;

  napi_value ret = NULL;
  int progfd = -1;
  uint32_t *ids = NULL, count = 0, replaced = 0;
  int *old = NULL;
  uint32_t nold = 0;
  int dirfd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (dirfd < 0) {
    ret = throw_errno(env, errno, "open", path);
    goto out;
  }

  /* Earlier Berth programs, found before the new one joins the list. */
  if (query_device_progs(dirfd, &ids, &count) != 0) {
    ret = throw_errno(env, errno, "bpf(BPF_PROG_QUERY)", path);
    goto out;
  }
  old = calloc(count ? count : 1, sizeof *old);
  if (!old) {
    napi_throw_error(env, NULL, "out of memory");
    goto out;
  }
  for (uint32_t i = 0; i < count; i++) {
    int fd = open_if_berth_prog(ids[i]);
    if (fd == -2) {
      ret = throw_errno(env, errno, "bpf(BPF_PROG_GET_FD_BY_ID)", path);
      goto out;
    }
    if (fd >= 0) old[nold++] = fd;
  }

  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (uint64_t)(uintptr_t)insns;
  attr.insn_cnt = (uint32_t)(len / sizeof(struct bpf_insn));
  attr.license = (uint64_t)(uintptr_t) "Apache-2.0";
  memcpy(attr.prog_name, BERTH_DEVICE_PROG_NAME, sizeof BERTH_DEVICE_PROG_NAME);
  progfd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
  if (progfd < 0) {
    int e = errno;
    char log[2048] = "";
    if (e == EACCES || e == EINVAL) { /* ask again with the verifier's log for the error */
      attr.log_buf = (uint64_t)(uintptr_t)log;
      attr.log_size = sizeof log;
      attr.log_level = 1;
      int fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
      if (fd >= 0) close(fd);
      log[sizeof log - 1] = '\0';
    }
    ret = throw_errno(env, e, "bpf(BPF_PROG_LOAD)", path);
    napi_value err, v;
    if (log[0] && napi_get_and_clear_last_exception(env, &err) == napi_ok) {
      napi_create_string_utf8(env, log, NAPI_AUTO_LENGTH, &v);
      napi_set_named_property(env, err, "verifierLog", v);
      napi_throw(env, err);
    }
    goto out;
  }

  memset(&attr, 0, sizeof attr);
  attr.target_fd = (uint32_t)dirfd;
  attr.attach_bpf_fd = (uint32_t)progfd;
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (sys_bpf(BPF_PROG_ATTACH, &attr) != 0) {
    ret = throw_errno(env, errno, "bpf(BPF_PROG_ATTACH)", path);
    goto out;
  }

  for (uint32_t i = 0; i < nold; i++) {
    memset(&attr, 0, sizeof attr);
    attr.target_fd = (uint32_t)dirfd;
    attr.attach_bpf_fd = (uint32_t)old[i];
    attr.attach_type = BPF_CGROUP_DEVICE;
    if (sys_bpf(BPF_PROG_DETACH, &attr) != 0) {
      if (errno == ENOENT) continue; /* detached meanwhile */
      ret = throw_errno(env, errno, "bpf(BPF_PROG_DETACH)", path);
      goto out;
    }
    replaced++;
  }
  napi_create_uint32(env, replaced, &ret);

out:
  for (uint32_t i = 0; i < nold; i++) close(old[i]);
  free(old);
  free(ids);
  if (progfd >= 0) close(progfd);
  if (dirfd >= 0) close(dirfd);
  free(path);
  return ret;
}

/* ---- network namespace (netns.c), off the event loop ------------------------------------------------------ */

struct netns_work {
  napi_async_work work;
  napi_deferred deferred;
  char *path;
  char *spec;
  int rc;
  char err[512];
};

static void netns_execute(napi_env env, void *data) {
  (void)env;
  struct netns_work *w = data;
  w->rc = berth_netns_create(w->path, w->spec, w->err, sizeof w->err);
}

static void netns_complete(napi_env env, napi_status status, void *data) {
  struct netns_work *w = data;
  napi_value v;
  if (status == napi_ok && w->rc == 0) {
    napi_get_undefined(env, &v);
    napi_resolve_deferred(env, w->deferred, v);
  } else {
    int e = w->rc < 0 ? -w->rc : EIO;
    char msg[700];
    snprintf(msg, sizeof msg, "%s: network namespace %s: %s", errno_code(e), w->path, w->err);
    napi_reject_deferred(env, w->deferred, errno_error(env, e, msg));
  }
  napi_delete_async_work(env, w->work);
  free(w->spec);
  free(w->path);
  free(w);
}

/* createNetns(path, spec): Promise<void>; see netns.h for the spec. */
static napi_value js_create_netns(napi_env env, napi_callback_info info) {
  napi_value argv[2], promise = NULL, name;
  if (get_args(env, info, 2, argv)) return NULL;
  struct netns_work *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (!(w->path = get_string(env, argv[0], MAX_PATH_ARG)) || !(w->spec = get_string(env, argv[1], MAX_DATA_ARG))) goto fail;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) goto fail;
  napi_create_string_utf8(env, "berth.createNetns", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, netns_execute, netns_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    napi_throw_error(env, NULL, "cannot queue the network namespace work");
    return NULL; /* the deferred is dropped with its promise */
  }
  return promise;
fail:
  free(w->spec);
  free(w->path);
  free(w);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
    {"umount2", NULL, js_umount2, NULL, NULL, NULL, napi_enumerable, NULL},
    {"umount2Async", NULL, js_umount2_async, NULL, NULL, NULL, napi_enumerable, NULL},
    {"bindMountAt", NULL, js_bind_mount_at, NULL, NULL, NULL, napi_enumerable, NULL},
    {"attachDeviceFilter", NULL, js_attach_device_filter, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sdNotify", NULL, js_sd_notify, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sendWithFd", NULL, js_send_with_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    {"createNetns", NULL, js_create_netns, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mallocTrim", NULL, js_malloc_trim, NULL, NULL, NULL, napi_enumerable, NULL},
    {"reduceHeap", NULL, js_reduce_heap, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
