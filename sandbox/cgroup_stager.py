"""Sandboxes born in their cgroup on cgroup v1, with no migration on the way.

On v1 a new process is placed by writing its pid to cgroup.procs. That
takes the kernel's cgroup_threadgroup_rwsem for writing, and when no such
write happened in the last few milliseconds the kernel first waits for an
RCU grace period: 8-15 ms on these hosts, most of a cold start. (v2 has
CLONE_INTO_CGROUP instead and never migrates; the mount option
favordynmods also avoids the wait.)

A child is born in its parent's cgroups. So the zygote waits in a fresh,
empty cgroup ahead of time: a spawn gives that cgroup the function's limits
and clones the sandbox into it, and the zygote then moves on to the next
fresh cgroup in the background, off the cold start's path. Until it has
left, the sandbox's cgroup holds the zygote too; the manager's spared_pids
keeps kills of that cgroup away from it, and removal waits for it to leave.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator

from .cgroup_v1 import CgroupV1, CgroupV1Manager

log = logging.getLogger("lambdalet.sandbox")

STAGE_MEMORY_MB = 128  # limits while nobody is born there; a spawn resizes
RETIRE_WAIT_S = 2.0  # a move takes one RCU grace period, ~10 ms


class CgroupStager:
    def __init__(self, manager: CgroupV1Manager, pid: int) -> None:
        self._manager = manager
        self._pid = pid
        manager.spared_pids.add(pid)
        # Held by a spawn from taking the stage until its clone is done, and
        # by the background move: the zygote never moves during a clone.
        self._lock = threading.Lock()
        self._ready: CgroupV1 | None = None
        self._holding: CgroupV1 | None = None  # the stage the zygote sits in now
        # Stages to remove once the zygote has left them: those of failed
        # spawns, and those of destroyed sandboxes (retire()).
        self._dirty: list[CgroupV1] = []
        self._dirty_lock = threading.Lock()
        self._moved = threading.Condition(self._dirty_lock)  # _holding changed
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lambdalet-cgroup-stager", daemon=True)
        self._thread.start()
        self._wake.set()

    @property
    def ready(self) -> bool:
        return self._ready is not None

    @contextlib.contextmanager
    def spawning(self, memory_mb: int) -> Iterator[CgroupV1 | None]:
        """For one spawn: the cgroup the zygote sits in, with memory_mb's
        limits, or None when no stage is ready (then place as usual). The
        clone must happen inside the with block."""
        with self._lock:
            stage, self._ready = self._ready, None
            if stage is not None:
                try:
                    stage.set_limits(memory_mb, self._manager.cpu_limit)
                except OSError as exc:
                    log.warning("cgroup stage %s: %s", stage.name, exc)
                    self._defer(stage)
                    stage = None
            try:
                yield stage
            except BaseException:
                if stage is not None:
                    # Whatever the failed spawn left there dies with it,
                    # once the zygote has moved out. Not retire(): the move
                    # needs the lock this spawn holds.
                    self._defer(stage)
                raise
            finally:
                self._wake.set()

    def _defer(self, stage: CgroupV1) -> None:
        with self._moved:
            self._dirty.append(stage)
        self._wake.set()

    def holds(self, stage: CgroupV1) -> bool:
        """True while the zygote may still sit in stage. Once it has left,
        it never returns (it only ever moves into a fresh stage); once the
        stager is closed (the zygote gone), it is nowhere."""
        return stage is self._holding and not self._closed

    def retire(self, stage: CgroupV1) -> None:
        """Remove a sandbox's cgroup that began as a stage. The zygote has
        usually moved on long before; a sandbox destroyed right after its
        spawn waits the few milliseconds until it has, so that a destroy
        still returns with its cgroup gone."""
        self._wake.set()
        with self._moved:
            left = self._moved.wait_for(lambda: stage is not self._holding or self._closed, RETIRE_WAIT_S)
            if not left or not self._remove(stage):
                self._dirty.append(stage)  # the stager removes it once it can

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
                if self._ready is None:
                    try:
                        self._ready = self._stage()
                        with self._moved:
                            self._holding = self._ready
                            self._moved.notify_all()
                    except ProcessLookupError:
                        self._closed = True  # the zygote is gone: nothing left to stage
                        return
                    except OSError as exc:
                        log.warning("cannot stage a cgroup for the next sandbox: %s", exc)
            with self._dirty_lock:
                # Never the stage the zygote still sits in (its move failed):
                # removal would freeze it along with the sandbox's leftovers.
                dirty = [st for st in self._dirty if st is not self._holding]
                self._dirty = [st for st in self._dirty if st is self._holding]
            for stage in dirty:
                self._remove(stage)

    def _stage(self) -> CgroupV1:
        # The zygote works here between spawns: no CPU quota (128 MB's
        # would be 72 ms a second, which its spawns use up in a burst). A
        # spawn sets the function's limits before the clone; those of
        # STAGE_MEMORY_MB are in place already and not written again.
        stage = self._manager.create(f"stage-{uuid.uuid4().hex[:12]}", STAGE_MEMORY_MB, throttled=False)
        try:
            fds, _ = stage.attach_handles()
            try:
                for fd in fds:
                    os.write(fd, str(self._pid).encode())
            finally:
                for fd in fds:
                    os.close(fd)
        except OSError:
            self._remove(stage)
            raise
        return stage

    def _remove(self, stage: CgroupV1) -> bool:
        try:
            stage.remove()
            return True
        except OSError as exc:
            log.warning("cgroup stage %s: %s", stage.name, exc)
            return False

    def stop(self) -> None:
        """Stop moving the zygote; call before stopping it."""
        with self._lock:
            self._closed = True
        with self._moved:
            self._moved.notify_all()
        self._wake.set()
        self._thread.join(timeout=5)

    def close(self) -> None:
        """Stop staging and remove what is left; call once the zygote has
        exited (it may sit in the last stage)."""
        self.stop()
        with self._lock:
            ready, self._ready = self._ready, None
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, []
        for stage in ([ready] if ready else []) + dirty:
            self._remove(stage)
        self._manager.spared_pids.discard(self._pid)
