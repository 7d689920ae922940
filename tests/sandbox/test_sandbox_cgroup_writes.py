"""cgroup v1 limits are written only where they change: a staged cgroup
(cgroup_stager.py) already holds a spawn's memory limits, so the spawn's
path writes only its CPU quota (the zygote sat there unthrottled)."""

from __future__ import annotations

import os
import uuid

import pytest

from lambdalet.sandbox import cgroup_v1, cgroups


def _count_writes(monkeypatch) -> list[tuple[str, str]]:
    """The (file name, value) of every cgroup v1 write from here on, each still made."""
    writes: list[tuple[str, str]] = []
    real = cgroup_v1.write_text

    def counted(path: str, value: str) -> None:
        writes.append((os.path.basename(path), value))
        real(path, value)

    monkeypatch.setattr(cgroup_v1, "write_text", counted)
    return writes


def test_limits_already_in_place_are_not_written_again(backend, monkeypatch):
    manager = backend.cgroups
    if not isinstance(manager, cgroup_v1.CgroupV1Manager):
        pytest.skip("cgroup v1 only")
    writes = _count_writes(monkeypatch)
    group = manager.create(f"writes-{uuid.uuid4().hex[:12]}", 128)
    try:
        assert ("memory.limit_in_bytes", str(128 << 20)) in writes
        writes.clear()
        group.set_limits(128, manager.cpu_limit)
        assert writes == []
        # A stage: unthrottled for the zygote, then given a spawn's limits.
        group.unthrottle()
        writes.clear()
        group.set_limits(128, manager.cpu_limit)
        quota = str(cgroups.cpu_quota_us(max(128, cgroups.START_CPU_MB)))
        if "cpu" in group.dirs and manager.cpu_limit:
            assert ("cpu.cfs_quota_us", quota) in writes
        assert {name for name, _ in writes} <= {"cpu.cfs_quota_us", "cpu.cfs_burst_us"}
        # A change is written, and the files hold what the last call set.
        writes.clear()
        group.set_limits(256, manager.cpu_limit)
        assert ("memory.limit_in_bytes", str(256 << 20)) in writes
        mem = group.dirs["memory"]
        assert cgroups.read_text(os.path.join(mem, "memory.limit_in_bytes")).strip() == str(256 << 20)
        if "cpu" in group.dirs and manager.cpu_limit:
            cpu = group.dirs["cpu"]
            want = str(cgroups.cpu_quota_us(max(256, cgroups.START_CPU_MB)))
            assert cgroups.read_text(os.path.join(cpu, "cpu.cfs_quota_us")).strip() == want
            burst = os.path.join(cpu, "cpu.cfs_burst_us")
            if os.path.exists(burst):
                assert cgroups.read_text(burst).strip() == want
    finally:
        group.remove()


def test_a_stage_is_made_unthrottled_and_a_spawn_writes_only_its_quota(backend, monkeypatch):
    manager = backend.cgroups
    if not isinstance(manager, cgroup_v1.CgroupV1Manager) or "cpu" not in manager.roots or not manager.cpu_limit:
        pytest.skip("cgroup v1 with the cpu controller only")
    writes = _count_writes(monkeypatch)
    stage = manager.create(f"stage-{uuid.uuid4().hex[:12]}", 128, throttled=False)
    try:
        cpu = stage.dirs["cpu"]
        # The zygote works there without a quota (the kernel's -1).
        assert cgroups.read_text(os.path.join(cpu, "cpu.cfs_quota_us")).strip() == "-1"
        assert not [name for name, _ in writes if name.startswith("cpu.cfs_")]
        writes.clear()
        stage.set_limits(128, manager.cpu_limit)  # a spawn takes the stage
        quota = str(cgroups.cpu_quota_us(max(128, cgroups.START_CPU_MB)))
        assert {name for name, _ in writes} <= {"cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us"}
        assert cgroups.read_text(os.path.join(cpu, "cpu.cfs_quota_us")).strip() == quota
        assert cgroups.read_text(os.path.join(cpu, "cpu.cfs_period_us")).strip() == str(cgroups.CPU_PERIOD_US)
        burst = os.path.join(cpu, "cpu.cfs_burst_us")
        if os.path.exists(burst):
            assert cgroups.read_text(burst).strip() == quota
    finally:
        stage.remove()
