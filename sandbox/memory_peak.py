"""A sandbox's memory high-water mark, per call, read from outside it.

REPORT's Max Memory Used and the usage ledger take it from the sandbox's
memory cgroup, which nothing inside the sandbox can write, never from the
worker (whose figures the function can forge). One descriptor is held per
sandbox and read with pread: ~2.5 us a call, where opening the file each
time costs ~24 us.

- cgroup v1: memory.max_usage_in_bytes; writing 0 resets it to the current
  usage, so each call reports its own peak.
- cgroup v2: memory.peak (Linux 5.19+). From Linux 6.12 a write resets it
  for reads through the same descriptor. Before that it cannot be reset:
  each call reports its instance's peak since it started, which is never
  below the call's own, and per_call_peak() says so.
"""

from __future__ import annotations

import os
import re


class PeakCounter:
    __slots__ = ("_fd", "_reset_value", "per_call")

    def __init__(self, fd: int, reset_value: bytes | None) -> None:
        self._fd = fd
        self._reset_value = reset_value
        self.per_call = reset_value is not None  # False once a reset is refused

    @classmethod
    def open(cls, path: str, reset_value: bytes) -> PeakCounter | None:
        """A counter on `path`, or None when the file cannot be opened."""
        try:
            return cls(os.open(path, os.O_RDWR | os.O_CLOEXEC), reset_value)
        except OSError:
            pass
        try:
            return cls(os.open(path, os.O_RDONLY | os.O_CLOEXEC), None)
        except OSError:
            return None

    def reset(self) -> None:
        """Starts a new window; a kernel that refuses is not asked again."""
        if self._reset_value is None:
            return
        try:
            os.write(self._fd, self._reset_value)
        except OSError:
            self._reset_value = None
            self.per_call = False

    def read(self) -> int | None:
        try:
            return int(os.pread(self._fd, 32, 0))
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def per_call_peak(cgroup_version: int | None, release: str | None = None) -> bool:
    """Whether Max Memory Used can be one call's peak on this host."""
    if cgroup_version == 1:
        return True
    if cgroup_version != 2:
        return False
    m = re.match(r"(\d+)\.(\d+)", release if release is not None else os.uname().release)
    return m is not None and (int(m[1]), int(m[2])) >= (6, 12)
