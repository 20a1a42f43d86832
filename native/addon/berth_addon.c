/*
 * berth_addon: the few syscalls berthd needs that Node does not offer:
 * mknod, the l*xattr family, mount and umount2, a bind mount onto an open
 * descriptor (the new mount API), and attaching a cgroup v2 device filter
 * (eBPF program bytes built by berthd; device_filter.c), and a network
 * namespace with its veth endpoints over rtnetlink (netns.c; asynchronous).
 * Each function throws a JS Error carrying errno/code/syscall on failure, like
 * Node's fs does (napi_util.c).
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
#include "napi_util.h"
#include "device_filter.h"

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
