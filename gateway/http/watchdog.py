"""Deadlines of the connections the listener serves, kept by one task.

Each connection says when it must next make progress (and what to tell the
client if it does not); one task checks every connection once a second,
instead of each request opening its own timeout scope: on the invoke path
a cancel scope per request costs more than the rest of the request's
framing. At the connection cap, the idle connection that would be closed
first makes room for a new one.
"""

from __future__ import annotations

import math
import socket

import trio

from . import rawio
from .handler import Reply


class Watched:
    """A connection as the watchdog sees it: its cancel scope, the time it
    must next make progress by, what to tell the client if it does not,
    and whether it sits idle between requests."""

    __slots__ = ("scope", "deadline", "timeout_reply", "idle", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.scope = trio.CancelScope()
        self.deadline = math.inf
        self.timeout_reply: Reply | None = None
        self.idle = False
        self.sock = sock


class Watchdog:
    """Closes connections that stay silent past their deadline.

    One task checks every connection once a second, instead of each request
    opening its own timeout scope: on the invoke path a cancel scope per
    request costs more than the rest of the request's framing.
    """

    def __init__(self) -> None:
        self.watched: set[Watched] = set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(1.0)
            now = trio.current_time()
            for w in list(self.watched):
                if w.deadline < now:
                    w.scope.cancel()

    def reclaim_idle(self) -> bool:
        """Closes an idle keep-alive connection to make room for a new one:
        the one whose idle timeout would close it first (a new connection
        that has sent nothing comes before one that has been served).
        False when every connection is in the middle of a request."""
        for w in sorted((w for w in self.watched if w.idle), key=lambda w: w.deadline):
            # A request may have arrived that its task has not read yet.
            if rawio.has_pending(w.sock):
                continue
            w.idle = False
            w.scope.cancel()
            return True
        return False
