"""Concurrency slots: how many calls may run at once, account-wide and per
function. Pure bookkeeping, no I/O and no waiting: past a bound a call is
refused with 429 at once, as Lambda throttles.

Reserved concurrency is read live at each call (it changes without a new
revision): a function with a reservation runs up to it and no further; the
functions without one share what the reservations leave of the account's
limit.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import LambdaError


class ConcurrencySlots:
    def __init__(self, limit: int, reserved_for: Callable[[str], int | None] = lambda name: None) -> None:
        self.limit = limit
        self._reserved_for = reserved_for
        self._reserved_total = 0
        self._per_function: dict[str, int] = {}
        self._unreserved = 0
        self.in_flight = 0

    def set_reserved_total(self, total: int) -> None:
        """Sum of every function's reserved concurrency; the rest is shared."""
        self._reserved_total = total

    def admit(self, name: str) -> bool:
        """Takes a slot for one call of function name, or raises 429
        TooManyRequestsException. Returns whether the slot came from the
        shared (unreserved) pool, for leave()."""
        reserved = self._reserved_for(name)
        running = self._per_function.get(name, 0)
        if reserved is not None:
            if running >= reserved:
                raise LambdaError("TooManyRequestsException", "Rate Exceeded.", Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
            shared = False
        else:
            if self._unreserved >= self.limit - self._reserved_total:
                raise LambdaError("TooManyRequestsException", "Rate Exceeded.", Reason="ConcurrentInvocationLimitExceeded")
            self._unreserved += 1
            shared = True
        self._per_function[name] = running + 1
        self.in_flight += 1
        return shared

    def leave(self, name: str, shared: bool) -> None:
        self.in_flight -= 1
        if shared:
            self._unreserved -= 1
        left = self._per_function[name] - 1
        if left:
            self._per_function[name] = left
        else:
            del self._per_function[name]

    def concurrent(self, name: str | None = None) -> int:
        """Calls running now, for one function or for the account."""
        return self.in_flight if name is None else self._per_function.get(name, 0)
