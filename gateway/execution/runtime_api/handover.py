"""What a worker hands the gateway over its control channel when it
starts a runtime or the extensions: its answer, and the fds that came with
it (SCM_RIGHTS), each checked to be what it claims before the gateway
relies on it. A worker that sends anything else is gone (WorkerGone), and
no fd it sent is left open.
"""

from __future__ import annotations

import os
import socket
import sys

import trio

from lambdalet.gateway.execution.instance import Instance, WorkerGone
from lambdalet.gateway.execution.log_memfd import is_log_memfd
from lambdalet.gateway.http import rawio
from lambdalet.runtime.protocol import FrameError, Ready


async def read_answers(inst: Instance, ancillary: int = socket.CMSG_SPACE(8)) -> tuple[list, list[int]]:
    """The worker's answer to Bootstrap or StartExtensions (past any
    Ready), perhaps followed by its report that the exec failed, and the
    fds that came with them. One read may hold Ready and the answer
    together."""
    fds: list[int] = []
    while True:
        try:
            data, ancdata, _flags, _addr = await rawio.recvmsg(inst.sock, 65536, ancillary)
        except (OSError, trio.ClosedResourceError):
            close_all(fds)
            raise WorkerGone() from None
        fds += _fds_of(ancdata)
        if not data:
            close_all(fds)
            raise WorkerGone()
        try:
            msgs = [m for m in inst.reader.feed(data) if not isinstance(m, Ready)]
        except FrameError:
            close_all(fds)
            raise WorkerGone() from None
        if msgs:
            return msgs, fds


def _fds_of(ancdata) -> list[int]:
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True) for i in range(0, len(payload) - len(payload) % 4, 4)]
    return fds


def close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def log_fd_of(fds: list[int]) -> int:
    """The log memfd alone (the API's socket is the extensions' host's)."""
    if len(fds) != 1 or not is_log_memfd(fds[0]):
        close_all(fds)
        raise WorkerGone()
    return fds[0]


def listener_and_log(fds: list[int]) -> tuple[socket.socket, int]:
    """The listening socket and the log memfd, checked to be what they
    claim before the gateway relies on them."""
    if len(fds) != 2:
        close_all(fds)
        raise WorkerGone()
    try:
        listener = socket.socket(fileno=fds[0])
    except OSError:
        close_all(fds)
        raise WorkerGone() from None
    try:
        listening = listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if listener.family != socket.AF_INET or listener.type != socket.SOCK_STREAM or not listening or not is_log_memfd(fds[1]):
        listener.close()
        os.close(fds[1])
        raise WorkerGone()
    return listener, fds[1]


def is_pidfd(fd: int) -> bool:
    """fd is a pidfd (the extensions' host watches each extension's exit on one)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
    except OSError:
        return False


def listener_of(fd: int, others: list[int]) -> socket.socket:
    """fd as a listening TCP socket; closes it and others if it is not one."""
    try:
        listener = socket.socket(fileno=fd)
        listening = listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        os.close(fd)
        close_all(others)
        raise WorkerGone() from None
    if listener.family != socket.AF_INET or listener.type != socket.SOCK_STREAM or not listening:
        listener.close()
        close_all(others)
        raise WorkerGone()
    return listener
