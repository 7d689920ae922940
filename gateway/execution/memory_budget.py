"""The host's budget for instances, as the pool spends it: the MemorySize
of every live or starting instance against the memory budget, and the
tasks of all sandboxes against their cap. admission.py is the policy (which
idle instances make room, what a refusal says); this is its bookkeeping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from lambdalet.sandbox.spec import SandboxBackend

from . import admission

if TYPE_CHECKING:
    from .instance import Instance


class MemoryBudget:
    def __init__(self, backend: SandboxBackend, budget_mb: int | None = None) -> None:
        self.backend = backend
        self.budget_mb = budget_mb if budget_mb is not None else default_memory_budget_mb()
        self.in_use_mb = 0  # MemorySize summed over every live or starting instance
        self.starting_tasks = 0  # tasks reserved for spawns under way (admission.TASKS_PER_START each)

    def usage(self) -> admission.Usage:
        tasks = self.backend.task_usage()
        if tasks is None:
            return admission.Usage(self.in_use_mb, self.budget_mb)
        return admission.Usage(self.in_use_mb, self.budget_mb, tasks[0] + self.starting_tasks, tasks[1])

    async def make_room(self, memory_mb: int, idle: dict[str, list[Instance]], destroy: Callable[[Instance], Awaitable[object]]) -> None:
        """Evicts idle instances (taken out of idle, then destroyed) until a
        new instance of memory_mb fits the memory budget and the cap on
        tasks, then reserves what it takes; or raises 429 without evicting
        any when that cannot be done."""
        usage = self.usage()
        candidates = [i for insts in idle.values() for i in insts]
        evict = admission.make_room(memory_mb, usage, candidates, lambda i: i.sandbox.task_count())
        if evict is None:
            raise admission.refusal(admission.shortfall(memory_mb, usage) or "memory", memory_mb, usage)
        for inst in evict:
            # The list goes stale across each await: a call may have taken
            # this instance, or the reaper removed it.
            siblings = idle.get(inst.revision)
            if not siblings or inst not in siblings:
                continue
            siblings.remove(inst)
            if not siblings:
                del idle[inst.revision]
            await destroy(inst)
        if evict:
            usage = self.usage()
            short = admission.shortfall(memory_mb, usage)
            if short is not None:
                raise admission.refusal(short, memory_mb, usage)
        # Reserved now, not when the sandbox exists: spawns overlap, and
        # each must see the memory (and tasks) the others are about to take.
        self.in_use_mb += memory_mb
        self.starting_tasks += admission.TASKS_PER_START

    def spawned(self) -> None:
        """A spawn ended (its tasks are the backend's to count now, or never)."""
        self.starting_tasks -= admission.TASKS_PER_START

    def released(self, memory_mb: int) -> None:
        """An instance is gone, or never started: its MemorySize is free."""
        self.in_use_mb -= memory_mb


def default_memory_budget_mb() -> int:
    """What the host can give instances: MemAvailable at start-up, less a
    reserve for the server and the rest of the system."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return max(256, int(line.split()[1]) // 1024 - 512)
    except (OSError, ValueError):
        pass
    return 4096
