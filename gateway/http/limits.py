"""What a client may hold on the server before it has proved who it is.

Both HTTP fronts (the lean listener and hypercorn's TLS port) share one
``HttpLimits``, one ``ByteBudget`` and one ``ConnectionSlots``, so that the
bound on the server's memory holds whichever port an attacker uses.

- ``ByteBudget`` counts the bytes buffered for requests that nobody has
  authenticated yet: request heads that are still arriving and request
  bodies on their way in. A SigV4 signature covers the body's hash, so a
  signed request cannot be verified before its whole body is here; what
  can be checked from the head alone (a signature's presence and shape, the
  access key id, the credential scope, the clock) is checked first, and
  the body still counts against the budget until it is complete. A
  function URL with AuthType NONE is never authenticated: its bodies count
  too, and so does a response waiting on a client that reads it slowly.
  Past the budget a request is refused with 429 TooManyRequestsException
  before its body is read (the client retries, as botocore does for 429),
  and a slow reader's connection is closed. The budget counts bytes
  received or waiting to be sent; handing a complete body over costs one
  more copy of it for a moment, so memory peaks near twice the budget.
- ``ConnectionSlots`` caps open connections. Past the cap the server stops
  accepting (see ``ConnectionSlots``) after first closing an idle keep-alive
  connection, if there is one.

Sans-IO except ``ConnectionSlots.acquire``, which waits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec
import trio

MiB = 1024 * 1024


class HttpLimits(msgspec.Struct, frozen=True, kw_only=True):
    # Open connections on both ports together. Each costs a task, a parser
    # and kernel socket buffers; 1024 matches the listen backlog.
    max_connections: int = 1024
    # Bytes held for unauthenticated heads and bodies, all connections
    # together. One Invoke body is at most 6 MB and one control-plane body
    # (a 50 MB zip, base64 inside JSON) at most 80 MB: the default lets one
    # of the largest deploys and a dozen large invokes arrive at once.
    unauthenticated_buffer_bytes: int = 128 * MiB
    # A request head must be complete this long after its first byte, and a
    # body must make progress (any byte) at least this often.
    head_timeout_s: float = 30.0
    # A whole request body must arrive within this. 60 s carries an 80 MB
    # deploy at 11 Mbit/s; slower links need a larger value.
    body_timeout_s: float = 60.0
    # A keep-alive connection with no request in progress is closed after this.
    idle_timeout_s: float = 75.0
    # A response must be taken by the client within this.
    send_timeout_s: float = 30.0
    # After an early refusal the server reads and drops what the client is
    # still sending, for at most this long, so that the client reads the
    # refusal instead of a connection reset. Dropped bytes cost no memory.
    linger_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.unauthenticated_buffer_bytes < 0:
            raise ValueError("unauthenticated_buffer_bytes must not be negative")
        for name in ("head_timeout_s", "body_timeout_s", "idle_timeout_s", "send_timeout_s", "linger_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds")


class BudgetStatistics(msgspec.Struct, frozen=True):
    limit: int
    used: int
    refused: int  # requests refused because the budget was spent


class ByteBudget:
    """A count of unauthenticated bytes held, against a limit."""

    __slots__ = ("limit", "used", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.refused = 0

    def try_take(self, n: int) -> bool:
        """Counts n more bytes, or returns False (and counts nothing) if
        they would pass the limit."""
        if self.used + n > self.limit:
            self.refused += 1
            return False
        self.used += n
        return True

    def give_back(self, n: int) -> None:
        self.used -= n
        if self.used < 0:  # a bug, not a client: never let it widen the budget
            raise RuntimeError(f"budget released more than it held ({self.used})")

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(self.limit, self.used, self.refused)


class SlotStatistics(msgspec.Struct, frozen=True):
    limit: int
    open: int
    reclaimed: int  # idle keep-alive connections closed to make room
    waiters: int  # accept loops waiting for a slot


class ConnectionSlots:
    """At most ``limit`` connections open at once.

    Past the limit the accept loops stop accepting instead of accepting and
    closing: a connection waits in the kernel's listen backlog (bounded,
    1024) and is served as soon as a slot frees, where accept-and-close
    would turn a short burst of honest clients into errors and could not
    even send them an HTTP answer without reading their requests first.
    Waiting costs the server no memory. Before it waits, the loop asks
    ``reclaim`` to close one idle keep-alive connection (HTTP lets a server
    close those at any time), so idle connections cannot keep new clients
    out; connections in the middle of a request are bounded by the head,
    body and send timeouts instead.
    """

    def __init__(self, limit: int, reclaim: Callable[[], bool] | None = None) -> None:
        self.limit = limit
        self.open = 0
        self.reclaimed = 0
        self.reclaim = reclaim
        self._lot = trio.lowlevel.ParkingLot()

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def acquire_nowait(self) -> None:
        if self.open >= self.limit:
            raise trio.WouldBlock
        self.open += 1

    async def acquire(self) -> None:
        while self.open >= self.limit:
            if self.reclaim is not None and self.reclaim():
                self.reclaimed += 1
            # Recheck at least once a second: a busy connection may have
            # become idle (and reclaimable) without freeing its slot.
            with trio.move_on_after(1.0):
                await self._lot.park()
        self.open += 1

    def release(self) -> None:
        self.open -= 1
        self._lot.unpark()

    def statistics(self) -> SlotStatistics:
        return SlotStatistics(self.limit, self.open, self.reclaimed, len(self._lot))
