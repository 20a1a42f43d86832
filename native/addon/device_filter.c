/* attachDeviceFilter: a cgroup v2 device filter (eBPF program bytes built by berthd) loaded and attached to a
 * cgroup, replacing only Berth's own earlier program. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include "device_filter.h"
#include "napi_util.h"

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
napi_value js_attach_device_filter(napi_env env, napi_callback_info info) {
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
