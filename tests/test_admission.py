"""Admission policy on its own (gateway/execution/admission.py): pure, no pool."""

from __future__ import annotations

from types import SimpleNamespace

from lambdalet.gateway.execution import admission
from lambdalet.gateway.execution.admission import TASKS_PER_START, Usage


def test_memory_then_tasks_are_what_a_new_instance_can_lack():
    assert admission.shortfall(128, Usage(0, 1024)) is None
    assert admission.shortfall(128, Usage(1000, 1024)) == "memory"
    assert admission.shortfall(128, Usage(0, 1024, tasks=100, tasks_max=100 + TASKS_PER_START)) is None
    assert admission.shortfall(128, Usage(0, 1024, tasks=101, tasks_max=100 + TASKS_PER_START)) == "tasks"
    # Not capped by the backend (plain processes): tasks never refuse.
    assert admission.shortfall(128, Usage(0, 1024, tasks=10**6, tasks_max=None)) is None


def _idle(last_used: float, tasks: int, memory_mb: int = 128):
    return SimpleNamespace(last_used=last_used, tasks=tasks, memory_mb=memory_mb)


def test_short_of_tasks_the_instances_holding_most_go_first_and_only_as_many_as_needed():
    old_small, new_hog, mid, tie_older = _idle(1.0, 3), _idle(9.0, 900), _idle(5.0, 40), _idle(2.0, 40)
    idle = [old_small, new_hog, mid, tie_older]
    usage = Usage(0, 4096, tasks=1000, tasks_max=1000)
    assert admission.make_room(128, usage, idle, lambda i: i.tasks) == [new_hog]
    usage = Usage(0, 4096, tasks=1000, tasks_max=100)  # 908 over: the hog and the older of the tied
    assert admission.make_room(128, usage, idle, lambda i: i.tasks) == [new_hog, tie_older]
    assert admission.make_room(128, Usage(0, 4096, tasks=10, tasks_max=100), idle, lambda i: i.tasks) == []


def test_short_of_memory_the_least_recently_used_go_first_and_tasks_are_not_read():
    a, b, c = _idle(3.0, 0, 256), _idle(1.0, 0, 128), _idle(2.0, 0, 512)

    def unread(inst):
        raise AssertionError("tasks read though only memory is short")

    assert admission.make_room(256, Usage(1000, 1024, tasks=5, tasks_max=100), [a, b, c], unread) == [b, c]


def test_when_evicting_every_idle_instance_is_not_enough_none_is_evicted():
    idle = [_idle(1.0, 3), _idle(2.0, 5)]
    # Busy calls hold the tasks (or the memory): refuse, keep the warm ones.
    assert admission.make_room(128, Usage(0, 4096, tasks=300, tasks_max=295), idle, lambda i: i.tasks) is None  # 13 over, 8 idle
    assert admission.make_room(512, Usage(4000, 4096), idle, lambda i: i.tasks) is None  # 416 MB over, 256 idle


def test_a_refusal_is_a_throttle_in_lambdas_shape():
    err = admission.refusal("tasks", 128, Usage(0, 1024, tasks=4000, tasks_max=4096))
    assert (err.error_type, err.status) == ("TooManyRequestsException", 429)
    assert err.extra == {"Reason": "ConcurrentInvocationLimitExceeded"}
    assert "4000 of the 4096 tasks" in err.message
    err = admission.refusal("memory", 512, Usage(900, 1024))
    assert err.status == 429 and "another 512 MB instance (900 of 1024 MB in use)" in err.message
