/* The shim's standalone C tests (test/<part>_test.c): CHECK counts a failed condition and goes on, so one run
 * names every failure; check_report prints the verdict and gives main's exit status. */
#ifndef BERTH_SHIM_TEST_CHECK_H
#define BERTH_SHIM_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                                   \
		}                                                                     \
	} while (0)

static inline int check_report(const char *name)
{
	if (failures) {
		fprintf(stderr, "%s: %d failure(s)\n", name, failures);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}

#endif
