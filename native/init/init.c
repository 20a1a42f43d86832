/* berth-init: the --init PID 1 (Docker installs tini as /sbin/docker-init; Berth mounts this there).
 *   berth-init [--] command [args...]
 * Runs the command as its child in a new process group (foreground on the tty if there is one),
 * forwards every signal except SIGCHLD to that group, reaps every zombie, and exits with the
 * child's status (128 + signal if it was killed).
 *   berth-init --pause
 * The CRI pod sandbox's holder process: sleeps as PID 1 of the pod's namespaces, reaps orphans (a
 * pod sharing its PID namespace), exits 0 on SIGTERM/SIGINT/SIGHUP. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int pause_forever(void)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
			return 0;
		if (sig == SIGCHLD)
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
	}
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--pause") == 0)
		return pause_forever();
	int first = 1;
	if (argc > 1 && strcmp(argv[1], "--") == 0)
		first = 2;
	if (first >= argc) {
		fprintf(stderr, "usage: berth-init [--] command [args...]\n");
		return 2;
	}
	if (getpid() != 1)
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	/* SIGTTIN/SIGTTOU would stop us when we hand the terminal to the child */
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);

	pid_t child = fork();
	if (child < 0) {
		perror("berth-init: fork");
		return 1;
	}
	if (child == 0) {
		setpgid(0, 0);
		if (isatty(0))
			tcsetpgrp(0, getpid());
		signal(SIGTTIN, SIG_DFL);
		signal(SIGTTOU, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[first], argv + first);
		fprintf(stderr, "berth-init: exec %s: %s\n", argv[first], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	setpgid(child, child);

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			perror("berth-init: sigwaitinfo");
			return 1;
		}
		if (sig != SIGCHLD) {
			/* the group first; the child alone if it left its group */
			if (kill(-child, sig) < 0)
				kill(child, sig);
			continue;
		}
		for (;;) {
			int st;
			pid_t p = waitpid(-1, &st, WNOHANG);
			if (p <= 0)
				break;
			if (p == child)
				return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
	}
}
