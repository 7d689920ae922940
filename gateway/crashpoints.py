"""Named points where a test can have the server die as by `kill -9`.

Crash safety is a claim about every point between two durable steps; a
test proves it by starting the server with ``LAMBDALET_CRASH_AT=<name>``
(or ``<name>#<n>``: the n-th time that point is reached) and checking what
a restart finds. Unset, as always outside tests, ``reach`` costs one
comparison with None.
"""

from __future__ import annotations

import os
import signal

ENV = "LAMBDALET_CRASH_AT"


def _parse(value: str | None) -> tuple[str | None, int]:
    if not value:
        return None, 0
    name, _, nth = value.partition("#")
    return name, int(nth) if nth.isdigit() else 1


_armed, _countdown = _parse(os.environ.get(ENV))


def reach(name: str) -> None:
    """SIGKILL this process if the test armed ``name`` (and this is the n-th time)."""
    global _countdown
    if _armed is not None and _armed == name:
        _countdown -= 1
        if _countdown <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
