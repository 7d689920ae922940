"""A custom runtime's start: the worker becomes the function's `bootstrap`.

A sandbox for provided.al2023 or provided.al2 starts like any other, with
this runtime's worker in it (forked from the zygote, or a spare that was
ready before the function was known), so a custom runtime gets the same
sandbox, spares and cold-start path as Python. On the Bootstrap message the
worker, still running only this trusted code:

1. finds the bootstrap (the first of the given paths that exists);
2. opens the Runtime API's listening socket on 127.0.0.1:9001 in the
   sandbox's own network namespace, and hands it to the gateway with its
   log memfd (SCM_RIGHTS): the gateway serves the API on that socket from
   its event loop, and nothing runs beside the function;
3. execs the bootstrap with Lambda's environment, stdout and stderr on the
   log memfd, and nothing else open: the control channel closes on exec.

The bootstrap cannot take the port over: the socket is bound and
listening, without SO_REUSEPORT, for the sandbox's whole life.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from . import errors
from .protocol import Bootstrap, InitError, Launched, encode

INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
LISTEN_BACKLOG = 64


def _entrypoint_error(detail: str, log: bytes) -> InitError:
    """AWS's words, in the payload and as the log's last lines."""
    text = f"RequestId:  Error: {detail}\n{INVALID_ENTRYPOINT}\n"
    return InitError(INVALID_ENTRYPOINT, errors.platform(INVALID_ENTRYPOINT, "", detail), log + text.encode())


def launch(msg: Bootstrap, sock: socket.socket, log_fd: int, take_log) -> InitError:
    """Execs the bootstrap; returns only when it cannot, with the error to
    send. take_log() returns what the worker's log holds so far."""
    path = next((p for p in msg.paths if os.path.exists(p)), None)
    if path is None:
        return _entrypoint_error(f"Couldn't find valid bootstrap(s): [{' '.join(msg.paths)}]", take_log())
    if msg.api_open:
        # Opened for the extensions already, and the gateway's since.
        port = msg.port
        frame = encode(Launched(path, port))
        sent = socket.send_fds(sock, [frame], [log_fd])
        if sent < len(frame):
            sock.sendall(frame[sent:])
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((msg.host, msg.port))
            listener.listen(LISTEN_BACKLOG)
            port = listener.getsockname()[1]
            frame = encode(Launched(path, port))
            sent = socket.send_fds(sock, [frame], [listener.fileno(), log_fd])
            if sent < len(frame):
                sock.sendall(frame[sent:])
        finally:
            listener.close()  # the gateway holds it now
    env = dict(msg.env)
    env["AWS_LAMBDA_RUNTIME_API"] = f"{msg.host}:{port}"
    sys.stdout.flush()
    sys.stderr.flush()
    # What the bootstrap inherits: fds 0-2 and nothing else (the control
    # channel closes on exec, unless it becomes fd 0 for a language
    # runtime's configuration), and default signal dispositions rather than
    # the interpreter's (Python ignores SIGPIPE and SIGXFSZ).
    os.set_inheritable(sock.fileno(), False)
    if msg.stdin:
        os.dup2(sock.fileno(), 0)
        os.set_blocking(0, True)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.chdir(msg.cwd)
        os.execve(path, [path, *msg.argv], env)
    except OSError as exc:
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_IGN)
        # Go's wording, which is what AWS's runtime side prints.
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        return _entrypoint_error(f"fork/exec {path}: {reason}", take_log())
    raise AssertionError("unreachable")  # pragma: no cover
