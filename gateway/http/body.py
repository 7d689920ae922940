"""Response bodies that are not held in memory.

A handler may answer with a FileBody instead of bytes: the length is
known up front (it is the Content-Length), and the bytes are read from
already-open file descriptors as they are sent, so a GET of a large S3
object costs the server a chunk of memory, not the object. The fds were
opened when the request was answered, so a file unlinked in the meantime
(an object overwritten) still reads whole.

The sender must call ``close()`` once done, sent or not.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Protocol

import trio

CHUNK = 256 * 1024


class StreamAborted(Exception):
    """A body of unknown length (sent chunked) cannot be finished: the
    sender closes the connection without ending the chunked body, so the
    client sees it cut short."""


class StreamedBody(Protocol):
    """What the fronts need of a reply body that is not bytes (a FileBody,
    or a call's stream): its length (None: unknown, sent chunked), its
    chunks as they come, and close()."""

    @property
    def length(self) -> int | None: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class FileBody:
    """``segments``: (fd, offset, length) in order; this object owns the fds."""

    __slots__ = ("segments", "length", "_closed")

    def __init__(self, segments: list[tuple[int, int, int]]) -> None:
        self.segments = segments
        self.length = sum(n for _, _, n in segments)
        self._closed = False

    @classmethod
    def declared(cls, length: int) -> FileBody:
        """No bytes, only a length: the answer to a HEAD request, whose
        Content-Length is the size a GET would send."""
        body = cls([])
        body.length = length
        return body

    def __len__(self) -> int:
        return self.length

    async def chunks(self):
        """Yields the bytes in pieces of at most CHUNK. Reads of a page-cached
        file are short enough to run on the event loop; a read that may wait
        on the disk goes to a thread."""
        for fd, offset, length in self.segments:
            done = 0
            while done < length:
                want = min(CHUNK, length - done)
                if want >= CHUNK:
                    data = await trio.to_thread.run_sync(os.pread, fd, want, offset + done)
                else:
                    data = os.pread(fd, want, offset + done)
                if not data:
                    raise OSError(f"file ended {length - done} bytes early")
                done += len(data)
                yield data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd, _, _ in self.segments:
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        # Belt and braces: a body dropped without close() must not leak fds.
        self.close()
