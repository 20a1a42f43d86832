/* The addon's argument readers and its errors shaped as Node's system errors (napi_util.c). */
#ifndef BERTH_NAPI_UTIL_H
#define BERTH_NAPI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <node_api.h>

#define MAX_PATH_ARG 4096
#define MAX_DATA_ARG 65536

/* "EPERM", "ENOENT", ... ("EUNKNOWN" for the rest). */
const char *errno_code(int e);
/* Error(msg) with .errno (negative, as Node's) and .code. */
napi_value errno_error(napi_env env, int e, const char *msg);
/* Error("<CODE>: <strerror>, <syscall> '<path>'") with .errno, .code, .syscall, .path. */
napi_value syscall_error(napi_env env, int e, const char *syscall, const char *path);
/* Throws syscall_error's Error; returns NULL. */
napi_value throw_errno(napi_env env, int e, const char *syscall, const char *path);
/* The first `want` arguments (-1 with a TypeError pending when fewer came). */
int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
/* A JS string argument in a fresh malloc'd buffer (NULL + pending exception on error). */
char *get_string(napi_env env, napi_value v, size_t max);
/* An xattr call's (path, name) arguments; -1 with a JS exception pending when either is bad. */
int get_path_and_name(napi_env env, napi_value argv[2], char **path, char **name);
int get_u32(napi_env env, napi_value v, uint32_t *out);

#endif
