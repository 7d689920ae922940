"""A feedback edge of the composition root, made explicit.

The parts are built in dependency order, each given what it needs in its
constructor. A few parts must also tell parts built after them that
something happened (the function service that a function changed, the
function versions that provisioned concurrency changed, event source
mappings that a poller must start): the listener cannot exist yet when the
teller is built. The teller gets a Relay, built before both; each listener
is connected once, as soon as it exists, in the root and nowhere else, and
nothing is told before the root has finished (the parts are not started
until then), so no message can be lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")


class Relay(Generic[P]):
    def __init__(self, name: str) -> None:
        self.name = name  # for the error when it is called unconnected
        self._targets: list[Callable[P, None]] = []

    def connect(self, target: Callable[P, None]) -> None:
        self._targets.append(target)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        if not self._targets:
            raise RuntimeError(f"the {self.name} relay was called before anything was connected to it")
        for target in self._targets:
            target(*args, **kwargs)
