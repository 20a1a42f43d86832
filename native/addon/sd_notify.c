/*
 * sd_notify without libsystemd: systemd's notification protocol is one
 * datagram of "KEY=VALUE\n" lines sent to the AF_UNIX SOCK_DGRAM socket named
 * by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). The kernel
 * attaches the sender's credentials, which is how systemd knows the main PID
 * is speaking; Node has no unix datagram sockets, hence this file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "sd_notify.h"

static napi_value throw_notify(napi_env env, int e, const char *step)
{
	char msg[256];
	snprintf(msg, sizeof msg, "sd_notify: %s: %s", step, strerror(e));
	napi_throw_error(env, NULL, msg);
	return NULL;
}

napi_value js_sd_notify(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2)
		return throw_notify(env, EINVAL, "expected (socketPath, message)");

	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t plen = 0;
	if (napi_get_value_string_utf8(env, argv[0], sa.sun_path, sizeof sa.sun_path, &plen) != napi_ok)
		return throw_notify(env, EINVAL, "socket path must be a string");
	if (plen == 0 || plen >= sizeof sa.sun_path - 1)
		return throw_notify(env, ENAMETOOLONG, "socket path");
	if (sa.sun_path[0] != '/' && sa.sun_path[0] != '@')
		return throw_notify(env, EINVAL, "socket path must be absolute or start with @");
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';

	char buf[4096];
	size_t mlen = 0;
	if (napi_get_value_string_utf8(env, argv[1], buf, sizeof buf, &mlen) != napi_ok)
		return throw_notify(env, EINVAL, "message must be a string");
	if (mlen >= sizeof buf - 1)
		return throw_notify(env, E2BIG, "message");

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return throw_notify(env, errno, "socket");
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	ssize_t n = sendto(fd, buf, mlen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	int e = errno;
	close(fd);
	if (n < 0)
		return throw_notify(env, e, "sendto");
	napi_value ok;
	napi_get_boolean(env, true, &ok);
	return ok;
}
