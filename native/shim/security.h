/* Process confinement of the container init: rlimits, OOM score, capabilities and user, no_new_privs,
 * the seccomp filter compiled by berthd. */
#ifndef BERTH_SECURITY_H
#define BERTH_SECURITY_H

#include "err.h"
#include "plan.h"

int sec_rlimits(struct plan *p, struct berth_err *err);
int sec_oom(struct plan *p, struct berth_err *err);
int sec_seccomp(struct plan *p, struct berth_err *err);
int sec_user_caps(struct plan *p, struct berth_err *err);
int sec_nnp(struct plan *p, struct berth_err *err);

#endif
