"""A call's answer as it streams out of its runtime (response streaming).

The pool's call fills it: the runtime's streamed POST opens it (with the
content type the function chose) and brings its chunks as they arrive
(runtime_api/session.py), and the call's outcome closes it. The HTTP side
(InvokeWithResponseStream, a RESPONSE_STREAM function URL) waits until it
opens or closes, answers with a head, then sends what comes, as it comes.

A function that does not stream (Python, or a Node.js handler without
streamifyResponse) never opens it: its whole answer comes with the
outcome. Everything here is the function's output, bounded by the Runtime
API's response limit before it gets here.
"""

from __future__ import annotations

import collections

import trio

from ..errors import LambdaError


class CallStream:
    def __init__(self) -> None:
        self.content_type: str | None = None  # set when the runtime opens its streamed answer
        self.streamed = 0  # bytes passed on so far
        self.outcome = None  # the pool's CallOutcome, once the call is over
        self.error: LambdaError | None = None  # the platform refused the call (throttled, not found, ...)
        self._chunks: collections.deque[bytes] = collections.deque()
        self._changed = trio.Event()

    # -- the call's side --------------------------------------------------------

    @property
    def opened(self) -> bool:
        return self.content_type is not None

    def open(self, content_type: str) -> None:
        if self.content_type is None and self.done is False:
            self.content_type = content_type
            self._changed.set()

    def feed(self, data: bytes) -> None:
        if self.content_type is not None and not self.done and data:
            self._chunks.append(data)
            self.streamed += len(data)
            self._changed.set()

    def finish(self, outcome) -> None:
        self.outcome = outcome
        self._changed.set()

    def fail(self, error: LambdaError) -> None:
        self.error = error
        self._changed.set()

    @property
    def done(self) -> bool:
        return self.outcome is not None or self.error is not None

    # -- the HTTP side ----------------------------------------------------------

    async def _wait(self) -> None:
        await self._changed.wait()
        self._changed = trio.Event()

    async def started(self) -> None:
        """Until the answer opens, or the call is over."""
        while not self.opened and not self.done:
            await self._wait()

    async def chunks(self):
        """The streamed bytes as they arrive, until the call is over."""
        while True:
            while self._chunks:
                yield self._chunks.popleft()
            if self.done:
                return
            await self._wait()
