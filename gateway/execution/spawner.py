"""Starting sandboxes off the event loop.

A namespaced spawn blocks for 10-20 ms. Done on the trio thread it would
stall every request in flight, so spawns run on one dedicated thread. It
has to be one long-lived thread rather than trio's thread cache: a
sandbox's parent-death signal fires when the *thread* that created it
exits, and cached threads exit when idle.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")


class SpawnerThread:
    def __init__(self, name: str = "lambdalet-spawner") -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()

    async def run(self, fn: Callable[[], T], *, on_abandoned: Callable[[T], object] | None = None) -> T:
        """Runs fn on the spawner thread and returns its result. If the caller
        is cancelled meanwhile, on_abandoned(result) cleans up what fn made."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: dict = {}
        # Who cleans up what fn made if the caller goes away: decided under
        # the lock, by whichever side gets there second.
        state = {"finished": False, "abandoned": False}
        lock = threading.Lock()

        def cleanup() -> None:
            if "value" in box and on_abandoned is not None:
                on_abandoned(box["value"])

        def job() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed back to the caller
                box["error"] = exc
            with lock:
                state["finished"] = True
                abandoned = state["abandoned"]
            if abandoned:
                cleanup()
                return
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                cleanup()

        self._jobs.put(job)
        try:
            await done.wait()
        except BaseException:
            with lock:
                finished = state["finished"]
                state["abandoned"] = True
            if finished:
                cleanup()  # the job is done and will not clean up itself
            raise
        if "error" in box:
            raise box["error"]
        return box["value"]

    def close(self) -> None:
        self._jobs.put(None)
