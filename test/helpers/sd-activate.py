#!/usr/bin/env python3
"""Starts a command the way systemd starts a socket-activated Type=notify service, for tests.

usage: sd-activate.py LISTEN_SOCKET_PATH|tcp:HOST:PORT NOTIFY_SOCKET_PATH COMMAND [ARGS...]

Binds and listens on a unix (or TCP) stream socket (the berth.socket), binds a unix datagram socket (systemd's
notify socket), then forks: the child gets the listening socket as fd 3 with LISTEN_FDS=1,
LISTEN_PID=<its pid>, LISTEN_FDNAMES=berth.socket and NOTIFY_SOCKET, and execs COMMAND. The parent prints
one JSON line per notification on stdout (the command's output goes to stderr) ({"pid": sender pid, "message": text}) and exits with the child's status.
SIGTERM and SIGHUP are passed on to the child.
"""
import json, os, select, signal, socket, struct, sys

listen_path, notify_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if os.path.exists(notify_path):
    os.unlink(notify_path)
if listen_path.startswith("tcp:"):
    # tcp:HOST:PORT, a ListenStream=HOST:PORT socket
    host, port = listen_path[4:].rsplit(":", 1)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, int(port)))
else:
    if os.path.exists(listen_path):
        os.unlink(listen_path)
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(listen_path)
    os.chmod(listen_path, 0o660)
lsock.listen(128)
nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
nsock.bind(notify_path)
nsock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

pid = os.fork()
if pid == 0:
    nsock.close()
    os.dup2(2, 1)  # the daemon's log goes to stderr; stdout carries the notifications
    os.dup2(lsock.fileno(), 3)
    os.set_inheritable(3, True)
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="berth.socket", NOTIFY_SOCKET=notify_path)
    os.execvpe(argv[0], argv, env)

lsock.close()
for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(sig, lambda s, _f: os.kill(pid, s))
print(json.dumps({"started": pid}), flush=True)
status = None
while status is None:
    try:
        ready, _, _ = select.select([nsock], [], [], 0.2)
    except InterruptedError:
        ready = []
    if ready:
        msg, anc, _flags, _addr = nsock.recvmsg(4096, socket.CMSG_SPACE(12))
        sender = None
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                sender = struct.unpack("iII", data[:12])[0]
        print(json.dumps({"pid": sender, "message": msg.decode()}), flush=True)
        continue
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = os.waitstatus_to_exitcode(st)
nsock.setblocking(False)
while True:
    try:
        msg = nsock.recv(4096)
    except BlockingIOError:
        break
    print(json.dumps({"pid": None, "message": msg.decode()}), flush=True)
nsock.close()
os.unlink(notify_path)
sys.exit(status if status >= 0 else 128 - status)
