"""Whether one more instance fits this host, and which idle ones make room.

Pure policy, no I/O: the pool measures (MemorySize it has handed out, the
tasks of all sandboxes from the backend's cgroup) and acts (evicts, spawns,
refuses). Two resources are admitted:
  - memory: the MemorySize of every live or starting instance, against the
    budget (what the host had free at start-up);
  - tasks: processes and threads of all sandboxes together, against the cap
    on Lambdalet's cgroup (pids.max of its root). Each sandbox may have
    1,024, so a few dozen busy ones would otherwise take the host's whole
    pid space and stop it from forking.

Past either bound a call that needs a new instance is refused with 429
TooManyRequestsException, Reason ConcurrentInvocationLimitExceeded: what
AWS answers when no more concurrent execution environments can be had. It
is a throttle (the SDKs retry it with back-off, the async queue retries it)
and nothing is wrong with the function or its state, which a 409
ResourceConflictException would say; a call that can use a warm instance is
never refused by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol, TypeVar

from ..errors import LambdaError

# Tasks a new instance needs to start: PID 1, the worker, and a few threads
# a runtime may start. Less than this left under the cap and a spawn would
# fail half-way.
TASKS_PER_START = 8


class Usage(NamedTuple):
    memory_mb: int  # MemorySize of every live or starting instance
    memory_budget_mb: int
    tasks: int = 0  # tasks of all sandboxes now, plus what starting ones will need
    tasks_max: int | None = None  # None: not capped by this backend


class IdleInstance(Protocol):
    last_used: float
    memory_mb: int


Idle = TypeVar("Idle", bound=IdleInstance)


def shortfall(memory_mb: int, usage: Usage) -> str | None:
    """What a new instance of memory_mb lacks: "memory", "tasks" or None."""
    if usage.memory_mb + memory_mb > usage.memory_budget_mb:
        return "memory"
    if usage.tasks_max is not None and usage.tasks + TASKS_PER_START > usage.tasks_max:
        return "tasks"
    return None


def make_room(memory_mb: int, usage: Usage, idle: Iterable[Idle], tasks_of: Callable[[Idle], int]) -> list[Idle] | None:
    """The idle instances to evict, in order, so that a new instance of
    memory_mb fits; [] when it fits already, None when evicting every idle
    instance would not be enough (then none is evicted for nothing).

    Short of tasks, those holding the most go first (a function that left a
    thousand threads behind goes before a hundred that left none); short of
    memory only, the least recently used first. tasks_of is called only
    when tasks are short."""
    memory_over = usage.memory_mb + memory_mb - usage.memory_budget_mb
    tasks_over = 0 if usage.tasks_max is None else usage.tasks + TASKS_PER_START - usage.tasks_max
    if memory_over <= 0 and tasks_over <= 0:
        return []
    if tasks_over > 0:
        counted = [(tasks_of(inst), inst) for inst in idle]
        counted.sort(key=lambda pair: (-pair[0], pair[1].last_used))
    else:
        counted = [(0, inst) for inst in sorted(idle, key=lambda inst: inst.last_used)]
    chosen: list[Idle] = []
    for tasks, inst in counted:
        if memory_over <= 0 and tasks_over <= 0:
            break
        chosen.append(inst)
        memory_over -= inst.memory_mb
        tasks_over -= tasks
    return chosen if memory_over <= 0 and tasks_over <= 0 else None


def refusal(short: str, memory_mb: int, usage: Usage) -> LambdaError:
    if short == "tasks":
        detail = (
            f"This host has no room for another instance's processes "
            f"({usage.tasks} of the {usage.tasks_max} tasks allowed to all functions are in use)."
        )
    else:
        detail = f"This host has no memory for another {memory_mb} MB instance ({usage.memory_mb} of {usage.memory_budget_mb} MB in use)."
    return LambdaError("TooManyRequestsException", f"Rate Exceeded. {detail}", Reason="ConcurrentInvocationLimitExceeded")
