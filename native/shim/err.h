/* The shim's one error convention (crun's): a fallible function takes a `struct berth_err *` last, fills it
 * and returns a negative value; it never exits. Only a process's top level (shim main, the container child,
 * the spawner) decides what to report and when to exit. */
#ifndef BERTH_ERR_H
#define BERTH_ERR_H

#include <stddef.h>

struct berth_err {
	int code;       /* exit status to report: 128 for setup failures, 126/127 for exec failures */
	int errnum;     /* errno of the failed call, 0 when none */
	char msg[1024]; /* the step that failed with its details, then ": <strerror(errnum)>" when errnum */
};

/* Fills err with exit code 128; returns -1. */
int berth_fail(struct berth_err *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Fills err with the given exit code; returns -1. */
int berth_fail_code(struct berth_err *err, int code, int errnum, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
