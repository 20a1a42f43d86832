/*
 * berth_addon: the few syscalls berthd needs that Node does not offer:
 * mknod, the l*xattr family, mount and umount2. Each function throws a
 * JS Error carrying errno/code/syscall on failure, like Node's fs does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <node_api.h>

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
  default: return "EUNKNOWN";
  }
}

/* Throws Error("<syscall> <path>: <strerror>") with .errno, .code, .syscall, .path. */
static napi_value throw_errno(napi_env env, int e, const char *syscall, const char *path) {
  char msg[MAX_PATH_ARG + 256];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", errno_code(e), strerror(e), syscall, path ? path : "");
  napi_value jmsg, err, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_error(env, NULL, jmsg, &err);
  napi_create_int32(env, -e, &v);
  napi_set_named_property(env, err, "errno", v);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "code", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "syscall", v);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "path", v);
  }
  napi_throw(env, err);
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

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number argument");
    return -1;
  }
  return 0;
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
  char *path = get_string(env, argv[0], MAX_PATH_ARG);
  if (!path) return NULL;
  char *name = get_string(env, argv[1], 256);
  if (!name) {
    free(path);
    return NULL;
  }
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
  char *path = get_string(env, argv[0], MAX_PATH_ARG);
  if (!path) return NULL;
  char *name = get_string(env, argv[1], 256);
  if (!name) {
    free(path);
    return NULL;
  }
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
    {"umount2", NULL, js_umount2, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
