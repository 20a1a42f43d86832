/* ns.c on its own (needs root): a process in a uts namespace of its own stands for a container's init;
 * ns_proc_join must join it through the pidfd and through the /proc/<pid> fallback of kernels whose
 * setns does not take pidfds, and ns_proc_open must refuse a start time that is not the process's (a
 * recycled pid) and a process that is gone. Built and run by `make -C native test-ns`. */
#include "check.h"
#include "../ns.h"
#include "../util.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* In a child process (so the test itself stays in its namespaces): join the uts namespace of ref, with
 * or without the pidfd, and report the hostname seen through a pipe. */
static int join_and_read_hostname(const struct ns_proc_ref *ref, int use_pidfd, char *out, size_t outlen, struct berth_err *err)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		return -1;
	pid_t c = fork();
	if (c == 0) {
		close(pfd[0]);
		struct ns_proc h;
		struct berth_err e;
		char buf[1100];
		if (ns_proc_open(ref, &h, &e) < 0) {
			snprintf(buf, sizeof(buf), "E%s", e.msg);
		} else {
			if (!use_pidfd && h.pidfd >= 0) {
				close(h.pidfd);
				h.pidfd = -1;
			}
			if (ns_proc_join(&h, CLONE_NEWUTS, &e) < 0) {
				snprintf(buf, sizeof(buf), "E%s", e.msg);
			} else {
				buf[0] = 'H';
				gethostname(buf + 1, sizeof(buf) - 1);
			}
		}
		(void)!write(pfd[1], buf, strlen(buf));
		_exit(0);
	}
	close(pfd[1]);
	ssize_t n = read(pfd[0], out, outlen - 1);
	close(pfd[0]);
	waitpid(c, NULL, 0);
	out[n > 0 ? n : 0] = '\0';
	if (out[0] == 'E') {
		snprintf(err->msg, sizeof(err->msg), "%s", out + 1);
		return -1;
	}
	memmove(out, out + 1, strlen(out));
	return 0;
}

int main(void)
{
	if (geteuid() != 0) {
		printf("ns_test: skipped (needs root)\n");
		return 0;
	}
	int ready[2];
	if (pipe(ready) < 0)
		return 2;
	pid_t init = fork();
	if (init == 0) {
		close(ready[0]);
		if (unshare(CLONE_NEWUTS) < 0 || sethostname("ns-test-init", 12) < 0)
			_exit(1);
		(void)!write(ready[1], "r", 1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char r;
	if (read(ready[0], &r, 1) != 1) {
		fprintf(stderr, "ns_test: the stand-in init did not start\n");
		return 2;
	}
	struct ns_proc_ref ref = {.pid = init, .start = proc_start_time(init), .flags = CLONE_NEWUTS};
	char host[1100];
	struct berth_err err;

	CHECK(join_and_read_hostname(&ref, 1, host, sizeof(host), &err) == 0 && !strcmp(host, "ns-test-init"));
	CHECK(join_and_read_hostname(&ref, 0, host, sizeof(host), &err) == 0 && !strcmp(host, "ns-test-init"));

	struct ns_proc_ref recycled = ref;
	recycled.start = ref.start + 1;
	CHECK(join_and_read_hostname(&recycled, 1, host, sizeof(host), &err) < 0 && strstr(err.msg, "not the container's process any more"));

	kill(init, SIGKILL);
	waitpid(init, NULL, 0);
	CHECK(join_and_read_hostname(&ref, 1, host, sizeof(host), &err) < 0 && strstr(err.msg, "not the container's process any more"));

	return check_report("ns_test");
}
