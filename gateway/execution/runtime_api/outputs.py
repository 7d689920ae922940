"""What the sandbox API's state machines hand back. Sans-IO.

state.py (the Runtime API) and extensions.py (the Extensions and Telemetry
APIs) answer each event with a list of outputs. server.py carries out Send
and Close on the connections (both machines return them); every other
output goes to the server's sink (the session's, or the extensions'
host's), which acts on what it means for the call or the environment.
"""

from __future__ import annotations

from . import telemetry, wire

# -- what the server does on a connection ---------------------------------------


class Send:
    """Write data on connection conn. delivers: the request id whose event
    this hands out for the first time (the call's Duration starts as it is
    sent), else "". close: close the connection after it."""

    __slots__ = ("conn", "data", "delivers", "close")

    def __init__(self, conn: int, data: bytes, delivers: str = "", close: bool = False) -> None:
        self.conn = conn
        self.data = wire.closing(data) if close else data
        self.delivers = delivers
        self.close = close

    def __repr__(self) -> str:
        return f"Send({self.conn}, {self.data[:60]!r}, delivers={self.delivers!r}, close={self.close})"


class Close:
    """Close connection conn without a reply (it broke HTTP, or sends on and
    on past every limit)."""

    __slots__ = ("conn",)

    def __init__(self, conn: int) -> None:
        self.conn = conn


# -- what the Runtime API tells its session ----------------------------------------


class InitDone:
    """The runtime asked for its first event: init is over."""

    __slots__ = ()


class InitFailed:
    """The runtime posted init/error: payload goes to the caller."""

    __slots__ = ("error_type", "payload")

    def __init__(self, error_type: str, payload: bytes) -> None:
        self.error_type = error_type
        self.payload = payload


class Answered:
    """A call's outcome: payload for the caller; error_type None on success."""

    __slots__ = ("request_id", "payload", "error_type")

    def __init__(self, request_id: str, payload: bytes, error_type: str | None) -> None:
        self.request_id = request_id
        self.payload = payload
        self.error_type = error_type

    def __repr__(self) -> str:
        return f"Answered({self.request_id!r}, {self.payload[:60]!r}, {self.error_type!r})"


class StreamOpened:
    """A streamed response has begun (its head arrived): what it says it is."""

    __slots__ = ("request_id", "content_type")

    def __init__(self, request_id: str, content_type: str) -> None:
        self.request_id = request_id
        self.content_type = content_type


class StreamData:
    """Part of a streamed response, as it arrived."""

    __slots__ = ("request_id", "data")

    def __init__(self, request_id: str, data: bytes) -> None:
        self.request_id = request_id
        self.data = data


# -- what the Extensions API tells the extensions' host ----------------------------


class Registered:
    """An extension registered (the platform.extension record's content)."""

    __slots__ = ("name", "events")

    def __init__(self, name: str, events: tuple[str, ...]) -> None:
        self.name = name
        self.events = events


class Subscribed:
    """An extension subscribed to telemetry."""

    __slots__ = ("name", "subscription")

    def __init__(self, name: str, subscription: telemetry.Subscription) -> None:
        self.name = name
        self.subscription = subscription


class AgentFailed:
    """An extension reported a failure (init/error, exit/error): the
    environment is reset, with error_type (the platform's) in REPORT."""

    __slots__ = ("name", "error_type", "reported")

    def __init__(self, name: str, error_type: str, reported: str) -> None:
        self.name = name
        self.error_type = error_type
        self.reported = reported  # the type the extension sent


class Progress:
    """Something that done-conditions look at has changed."""

    __slots__ = ()


PROGRESS = Progress()
