"""Admission policy on its own (gateway/admission.py): pure, no pool."""
from __future__ import annotations

from types import SimpleNamespace

from lambdalet.gateway import admission
from lambdalet.gateway.admission import TASKS_PER_START, Usage


def test_memory_then_tasks_are_what_a_new_instance_can_lack():
    assert admission.shortfall(128, Usage(0, 1024)) is None
    assert admission.shortfall(128, Usage(1000, 1024)) == "memory"
    assert admission.shortfall(128, Usage(0, 1024, tasks=100, tasks_max=100 + TASKS_PER_START)) is None
    assert admission.shortfall(128, Usage(0, 1024, tasks=101, tasks_max=100 + TASKS_PER_START)) == "tasks"
    # Not capped by the backend (plain processes): tasks never refuse.
    assert admission.shortfall(128, Usage(0, 1024, tasks=10**6, tasks_max=None)) is None


def test_short_of_tasks_the_instance_holding_most_goes_first():
    old_small = SimpleNamespace(last_used=1.0, tasks=3)
    new_hog = SimpleNamespace(last_used=9.0, tasks=900)
    mid = SimpleNamespace(last_used=5.0, tasks=40)
    tie_older = SimpleNamespace(last_used=2.0, tasks=40)
    idle = [old_small, new_hog, mid, tie_older]
    assert admission.eviction_order(idle, "tasks", lambda i: i.tasks) == [new_hog, tie_older, mid, old_small]
    # Short of memory: least recently used first, whatever the tasks.
    assert admission.eviction_order(idle, "memory", lambda i: i.tasks) == [old_small, tie_older, mid, new_hog]


def test_a_refusal_is_a_throttle_in_lambdas_shape():
    err = admission.refusal("tasks", 128, Usage(0, 1024, tasks=4000, tasks_max=4096))
    assert (err.error_type, err.status) == ("TooManyRequestsException", 429)
    assert err.extra == {"Reason": "ConcurrentInvocationLimitExceeded"}
    assert "4000 of the 4096 tasks" in err.message
    err = admission.refusal("memory", 512, Usage(900, 1024))
    assert err.status == 429 and "another 512 MB instance (900 of 1024 MB in use)" in err.message
