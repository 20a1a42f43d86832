/* User namespaces (a Kubernetes pod's): made or opened by the shim before the clone, joined by the init once it
 * has prepared, as root of the host, every mount that needs a host path or an idmapping (userns.c). */
#ifndef BERTH_USERNS_H
#define BERTH_USERNS_H

#include "err.h"
#include "plan.h"

/* A new user namespace with these maps (written from the shim, as root of the host), held by the returned fd. */
int userns_create(const char *uid_map, const char *gid_map, struct berth_err *err);
/* The rootfs (overlay over idmapped layers, or an idmapped bind) and every bind as detached mounts, made before
 * the init joins ufd: afterwards it can neither read the data root nor idmap anything. */
int userns_prepare_mounts(struct plan *p, int ufd, struct berth_err *err);

#endif
