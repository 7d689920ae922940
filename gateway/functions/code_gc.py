"""Removing function code that nothing needs any more.

Code (a blob and its unpacked tree, codestore.py) is needed by
  - durable records: $LATEST and every published version in lambdalet.db
    (and layers, once they exist), given by ``references()``;
  - the running server: a call that took a record before it was replaced,
    an instance whose sandbox has the tree mounted (from its start until it
    is destroyed), a GetFunction download link until it expires. These are
    counted in CodeHolds, by tree path, which is all the pool knows.

Crash safety rests on two orders and one sweep:
  - code is stored and fsynced before a record names it, and a record stops
    naming it (committed) before it is removed, so a kill at any point
    leaves at worst code that no record names, never a record without code;
  - at start, before any call, everything that no record names is removed
    (``sweep``), so what a kill left behind is collected then.

A collection decides and detaches (renames away) while holding the
function service's lock, the lock every put-then-persist holds too: a put
that finds an unreferenced blob already in place must not lose it to a
collection that decided before the record naming it was written.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import trio

from .codestore import CodeError, CodeStore

log = logging.getLogger("lambdalet.code_gc")


class CodeHolds:
    """In-memory claims on code trees, by path: counted (calls, instances),
    or until a wall-clock time on behalf of a function (download links)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._until: dict[str, dict[str, float]] = {}  # path -> function -> deadline
        # Called when the last counted hold on a path goes.
        self.on_released: Callable[[str], None] = lambda path: None

    def hold(self, path: str) -> None:
        counts = self._counts
        counts[path] = counts.get(path, 0) + 1

    def release(self, path: str) -> None:
        left = self._counts[path] - 1
        if left:
            self._counts[path] = left
        else:
            del self._counts[path]
            self.on_released(path)

    def hold_until(self, path: str, deadline: float, function: str) -> None:
        owners = self._until.setdefault(path, {})
        if deadline > owners.get(function, 0.0):
            owners[function] = deadline

    def revoke(self, function: str) -> None:
        """Drop the timed holds taken for a function (it was deleted)."""
        for path, owners in list(self._until.items()):
            if owners.pop(function, None) is not None:
                if not owners:
                    del self._until[path]
                self.on_released(path)

    def held(self, path: str, now: float) -> bool:
        return path in self._counts or self.expiry(path) > now

    def count(self, path: str) -> int:
        return self._counts.get(path, 0)

    def expiry(self, path: str) -> float:
        """When the last timed hold on path ends (0.0: none)."""
        return max(self._until.get(path, {}).values(), default=0.0)

    def prune(self, now: float) -> None:
        """Forget expired timed holds, so the table stays as small as the
        links that can still be used."""
        for path, owners in list(self._until.items()):
            for function in [f for f, t in owners.items() if t <= now]:
                del owners[function]
            if not owners:
                del self._until[path]

    def statistics(self) -> dict[str, int]:
        return {"counted": len(self._counts), "timed": len(self._until)}


class CodeCollector:
    """Removes code once no record names it and nothing holds it.

    ``suspect`` names code that may have become garbage (the old code of an
    update, a deleted function's or version's code, a put nobody kept);
    ``run`` collects suspects as soon as they are neither referenced nor
    held, waking on each suspicion, on each last release of a hold, and when
    a download link's hold expires.
    """

    def __init__(
        self,
        codes: CodeStore,
        holds: CodeHolds,
        references: Callable[[], set[str]],
        lock: trio.Lock,
        *,
        wall: Callable[[], float] = time.time,
        on_removed: Callable[[str], None] = lambda path: None,
    ) -> None:
        self.codes = codes
        self.holds = holds
        self.references = references
        self.lock = lock
        self.wall = wall
        # Told each removed tree's path, for caches kept per code (the
        # sandbox backend's mount plans).
        self.on_removed = on_removed
        self.collected = 0  # digests removed since start, sweep included
        self._suspects: set[str] = set()
        self._wake = trio.Event()
        holds.on_released = self._released

    def path(self, sha256_hex: str) -> str:
        return str(self.codes.tree_path(sha256_hex))

    def sweep(self) -> list[str]:
        """At start, before anything is served: remove all code that no record
        names, and rebuild any referenced tree that is missing."""
        keep = self.references()
        removed = self.codes.delete_unreferenced(keep)
        self.collected += len(removed)
        for sha in keep:
            try:
                self.codes.ensure_tree(sha)
            except (OSError, ValueError, CodeError) as exc:
                log.error("code %s named by a function cannot be unpacked: %s", sha, exc)
        return removed

    def suspect(self, *digests: str) -> None:
        self._suspects.update(digests)
        self._wake.set()

    def pending(self) -> set[str]:
        """Suspects not collected yet (held, or referenced again)."""
        return set(self._suspects)

    def _released(self, path: str) -> None:
        if self._suspects:
            self._wake.set()

    async def collect(self) -> list[str]:
        """One pass over the suspects; returns the digests removed."""
        async with self.lock:
            referenced = self.references()
            now = self.wall()
            self.holds.prune(now)
            doomed: list[str] = []
            waiting: set[str] = set()
            for sha in self._suspects:
                if sha in referenced:
                    continue  # named again; a later change suspects it anew
                if self.holds.held(self.path(sha), now):
                    waiting.add(sha)
                else:
                    doomed.append(sha)
            self._suspects = waiting
            if not doomed:
                return []
            try:
                detached = await trio.to_thread.run_sync(self.codes.detach, doomed)
            except OSError as exc:
                # Try again at the next wake-up rather than lose track.
                log.warning("could not remove unused code: %s", exc)
                self._suspects.update(doomed)
                return []
        await trio.to_thread.run_sync(self.codes.purge, detached)
        self.collected += len(doomed)
        for sha in doomed:
            self.on_removed(self.path(sha))
        return sorted(doomed)

    def _next_expiry(self) -> float:
        """Wall time when a waiting suspect's link hold ends, or inf."""
        ends = [self.holds.expiry(self.path(sha)) for sha in self._suspects]
        return min((t for t in ends if t > 0.0), default=math.inf)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            wait_s = self._next_expiry() - self.wall()
            with trio.move_on_after(max(0.0, wait_s) if wait_s != math.inf else math.inf):
                await self._wake.wait()
            # A new event before collecting: a wake-up that arrives while we
            # collect is then seen by the next wait, not lost.
            self._wake = trio.Event()
            await self.collect()
