"""External extensions: the programs in /opt/extensions, started in the
sandbox before the runtime, as Lambda starts them.

On StartExtensions the worker, still running only this trusted code:

1. opens the sandbox's API socket on 127.0.0.1:9001 (the Runtime,
   Extensions and Telemetry APIs share it; the gateway serves them all);
2. starts each executable file of /opt/extensions, in name order, with
   the function's environment and AWS_LAMBDA_RUNTIME_API, stdin on
   /dev/null, stdout and stderr on one log memfd of their own (so that
   their lines are told apart from the runtime's);
3. answers ExtensionsStarted with the socket, that memfd and a pidfd per
   extension attached (SCM_RIGHTS), and closes its own copies: nothing the
   function later runs in this process can accept on the API's socket.

The gateway then waits for every extension to register before it starts
the runtime (Init, or Bootstrap with the socket already open).
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import stat

from .protocol import ExtensionsStarted, StartExtensions, encode

DIRECTORY = "/opt/extensions"
LISTEN_BACKLOG = 64
MAX_EXTENSIONS = 10  # AWS's limit; more are not started


def _programs(directory: str) -> tuple[list[str], list[list[str]]]:
    """The executable regular files of directory, by name, and what is
    wrong with the entries that cannot be started."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return [], []
    found: list[str] = []
    failed: list[list[str]] = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.stat(path)
        except OSError as exc:
            failed.append([name, exc.strerror or str(exc)])
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            failed.append([name, "permission denied"])
            continue
        if len(found) >= MAX_EXTENSIONS:
            failed.append([name, f"more than {MAX_EXTENSIONS} extensions"])
            continue
        found.append(name)
    return found, failed


def start(msg: StartExtensions, sock: socket.socket) -> None:
    """Starts the extensions and answers; raises OSError only if the API's
    socket cannot be opened (the gateway then sees the worker gone)."""
    names, failed = _programs(msg.directory)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    log_fd = os.memfd_create("lambdalet-extensions", os.MFD_CLOEXEC)
    pidfds: list[int] = []
    started: list[str] = []
    try:
        listener.bind((msg.host, msg.port))
        listener.listen(LISTEN_BACKLOG)
        port = listener.getsockname()[1]
        fcntl.fcntl(log_fd, fcntl.F_SETFL, fcntl.fcntl(log_fd, fcntl.F_GETFL) | os.O_APPEND)
        env = dict(msg.env)
        env["AWS_LAMBDA_RUNTIME_API"] = f"{msg.host}:{port}"
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for name in names:
                path = os.path.join(msg.directory, name)
                try:
                    pid = os.posix_spawn(
                        path,
                        [path],
                        env,
                        file_actions=[
                            (os.POSIX_SPAWN_DUP2, devnull, 0),
                            (os.POSIX_SPAWN_DUP2, log_fd, 1),
                            (os.POSIX_SPAWN_DUP2, log_fd, 2),
                        ],
                        # Default dispositions, not the interpreter's (it
                        # ignores SIGPIPE and SIGXFSZ), and nothing blocked.
                        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                        setsigmask=(),
                    )
                except OSError as exc:
                    failed.append([name, (exc.strerror or str(exc)).lower()])
                    continue
                try:
                    pidfds.append(os.pidfd_open(pid))
                except OSError:
                    # Gone already (and reaped by nobody: it is a zombie, so
                    # this does not happen); counted as a failed start.
                    failed.append([name, "exited at once"])
                    continue
                started.append(name)
        finally:
            os.close(devnull)
        frame = encode(ExtensionsStarted(port, started, failed))
        sent = socket.send_fds(sock, [frame], [listener.fileno(), log_fd, *pidfds])
        if sent < len(frame):
            sock.sendall(frame[sent:])
    finally:
        listener.close()
        os.close(log_fd)
        for fd in pidfds:
            os.close(fd)
