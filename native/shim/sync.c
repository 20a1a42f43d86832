/* The shim <-> container init sync protocol: see sync.h. */
#include "sync.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int sync_send_pid(int fd, pid_t pid)
{
	struct sync_error m;
	memset(&m, 0, sizeof(m));
	m.tag = SYNC_PID;
	m.exit_code = (int)pid;
	ssize_t w;
	do
		w = send(fd, &m, sizeof(m), MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)sizeof(m) ? 0 : -1;
}

int sync_send(int fd, char tag)
{
	ssize_t w;
	do
		w = write(fd, &tag, 1);
	while (w < 0 && errno == EINTR);
	return w == 1 ? 0 : -1;
}

int sync_expect(int fd, char want)
{
	char got;
	ssize_t r;
	do
		r = read(fd, &got, 1);
	while (r < 0 && errno == EINTR);
	return r == 1 && got == want ? 0 : -1;
}

int sync_send_fd(int fd, int passfd, struct berth_err *err)
{
	char tag = SYNC_PTY;
	struct iovec iov = {.iov_base = &tag, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &passfd, sizeof(int));
	if (sendmsg(fd, &msg, 0) < 0)
		return berth_fail(err, errno, "send pty master to shim");
	return 0;
}

void sync_send_error(int fd, const struct berth_err *err)
{
	struct sync_error m;
	memset(&m, 0, sizeof(m));
	m.tag = SYNC_ERROR;
	m.err = err->errnum;
	m.exit_code = err->code;
	memcpy(m.msg, err->msg, sizeof(m.msg) < sizeof(err->msg) ? sizeof(m.msg) : sizeof(err->msg));
	m.msg[sizeof(m.msg) - 1] = '\0';
	(void)!send(fd, &m, sizeof(m), MSG_NOSIGNAL);
}

int sync_recv(int fd, struct sync_error *m, int *passed)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t r;
	do
		r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return (int)r;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(passed, CMSG_DATA(c), sizeof(int));
	if (m->tag == SYNC_ERROR)
		m->msg[sizeof(m->msg) - 1] = '\0';
	return (int)r;
}
