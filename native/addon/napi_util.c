/* The addon's argument readers and its errors shaped as Node's system errors (errno, code, syscall, path). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "napi_util.h"
const char *errno_code(int e) {
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
napi_value errno_error(napi_env env, int e, const char *msg) {
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
napi_value syscall_error(napi_env env, int e, const char *syscall, const char *path) {
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
napi_value throw_errno(napi_env env, int e, const char *syscall, const char *path) {
  napi_throw(env, syscall_error(env, e, syscall, path));
  return NULL;
}

int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "wrong number of arguments");
    return -1;
  }
  return 0;
}

/* Copies a JS string argument into a fresh malloc'd buffer (NULL + pending exception on error). */
char *get_string(napi_env env, napi_value v, size_t max) {
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
int get_path_and_name(napi_env env, napi_value argv[2], char **path, char **name) {
  *path = get_string(env, argv[0], MAX_PATH_ARG);
  if (!*path) return -1;
  *name = get_string(env, argv[1], 256);
  if (!*name) {
    free(*path);
    return -1;
  }
  return 0;
}

int get_u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number argument");
    return -1;
  }
  return 0;
}
