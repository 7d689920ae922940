"""A cgroup's freeze switch (v1 freezer.state, v2 cgroup.freeze), held open.

Idle instances are frozen between calls, so with many functions called in
turn nearly every call thaws one on the gateway's thread, and the idle
freezer freezes it again after. Opening the file by its path for each
write walks the whole cgroup path in the kernel; a descriptor opened on the
first freeze and written at offset 0 skips that (a freeze and a thaw: ~15
us with open and close each time, ~3 us on a held descriptor, measured on
this project's hosts).

One descriptor per sandbox that has been frozen, closed with its cgroup.
The lock keeps a write from going to a descriptor number that a close on
another thread (a sandbox destroyed off the event loop) has just freed and
something else reused. After close() a write opens the file by its path
once, as before, and so fails the same way on a removed cgroup.
"""

from __future__ import annotations

import os
import threading

from .cgroups import write_text


class FreezerState:
    __slots__ = ("_closed", "_fd", "_frozen", "_lock", "_thawed", "path")

    def __init__(self, path: str, frozen: bytes, thawed: bytes) -> None:
        self.path = path
        self._frozen = frozen
        self._thawed = thawed
        self._fd = -1  # opened on the first write
        self._closed = False
        self._lock = threading.Lock()

    def freeze(self) -> None:
        self._write(self._frozen)

    def thaw(self) -> None:
        self._write(self._thawed)

    def _write(self, value: bytes) -> None:
        with self._lock:
            if self._closed:
                write_text(self.path, value.decode())
                return
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            os.pwrite(self._fd, value, 0)

    @property
    def held(self) -> bool:
        """Whether a descriptor is open now."""
        return self._fd >= 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                os.close(fd)
