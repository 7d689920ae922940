"""One port, three APIs: which state machine a request on a sandbox's API
socket belongs to. Sans-IO.

The Runtime API (state.py), the Extensions API and the Telemetry API
(extensions.py) share 127.0.0.1:9001, as on AWS. A request's path decides
at its head; its body and end go where its head went (a connection carries
one request at a time). A sandbox whose function has extensions but runs
on the Python fast path has no Runtime API: its runtime speaks msgspec
frames, and the Runtime API's paths answer 404 there.
"""

from __future__ import annotations

from typing import Protocol

from . import extensions, state, wire
from .outputs import Close, Send


class _Reader(Protocol):
    """A state machine that reads requests: the Runtime API's, the Extensions API's, or the refusal."""

    def receive(self, conn: int, event) -> list: ...


class SandboxApi:
    """What server.py drives: receive(), closed(), parked()."""

    def __init__(self, runtime: state.RuntimeApi | None = None, extension_api: extensions.ExtensionsApi | None = None) -> None:
        self.runtime = runtime
        self.extensions = extension_api
        self._owner: dict[int, _Reader] = {}  # connection -> the state machine reading its request
        self._not_here = _NotHere()

    def parked(self, conn: int) -> bool:
        return (self.runtime is not None and self.runtime.parked(conn)) or (self.extensions is not None and self.extensions.parked(conn))

    def receive(self, conn: int, event) -> list:
        if type(event) in (wire.Whole, wire.Request):
            owner = self._route(event.head)
            if owner is None:
                if type(event) is wire.Whole:
                    return [Send(conn, state.NOT_FOUND, close=not event.head.keep_alive)]
                owner = self._not_here
            self._owner[conn] = owner
            if type(event) is wire.Whole:
                del self._owner[conn]
            return owner.receive(conn, event)
        owner = self._owner[conn]
        if type(event) is wire.End:
            del self._owner[conn]
        return owner.receive(conn, event)

    def closed(self, conn: int) -> list:
        self._owner.pop(conn, None)
        out: list = []
        if self.runtime is not None:
            out += self.runtime.closed(conn)
        if self.extensions is not None:
            out += self.extensions.closed(conn)
        return out

    def _route(self, head: wire.Head) -> _Reader | None:
        if extensions.is_extension_path(head.path):
            return self.extensions
        return self.runtime


class _NotHere:
    """A request for an API this sandbox does not serve, arriving in parts:
    its body is read and dropped, and it gets 404."""

    def __init__(self) -> None:
        self._close: dict[int, bool] = {}
        self._size: dict[int, int] = {}

    def receive(self, conn: int, event) -> list:
        if type(event) is wire.Request:
            self._close[conn] = not event.head.keep_alive
            self._size[conn] = 0
            return []
        if type(event) is wire.Data:
            self._size[conn] += len(event.data)
            if self._size[conn] > extensions.MAX_DRAIN:
                self._close.pop(conn, None)
                self._size.pop(conn, None)
                return [Close(conn)]
            return []
        self._size.pop(conn, None)
        return [Send(conn, state.NOT_FOUND, close=self._close.pop(conn, False))]
