"""What the HTTP fronts ask of the code that answers requests.

Both fronts (listener.py and tls_front.py) read a request's head, ask the
handler how much body it may carry and whether the head alone is refused,
read the body within the limits, and hand the whole request over. The
handler (api/router.py's Router, and each service surface behind it) knows
nothing of sockets, and the fronts nothing of Lambda.
"""

from __future__ import annotations

from typing import Protocol

from .http1 import Head

# status, headers, body: bytes, or a body.Body the front streams.
Reply = tuple[int, list[tuple[str, str]], object]


class Handler(Protocol):
    def body_limit(self, head: Head) -> int:
        """The largest body this request may carry."""
        ...

    def precheck(self, head: Head) -> Reply | None:
        """The refusal the head alone earns (before the body is read), or None."""
        ...

    def too_large(self, head: Head) -> Reply:
        """The answer to a body over body_limit()."""
        ...

    def busy(self, head: Head) -> Reply:
        """The answer when the server holds as many unauthenticated bytes as it may."""
        ...

    def timed_out(self, head: Head) -> Reply:
        """The answer when the body did not arrive in time."""
        ...

    async def handle(self, head: Head, body: bytes, client: tuple[str, int]) -> Reply:
        """The answer to a whole request."""
        ...
