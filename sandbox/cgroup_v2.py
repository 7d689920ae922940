"""cgroup v2: one unified directory per sandbox.

The child is born inside its cgroup through clone3's CLONE_INTO_CGROUP
(csrc/spawn.c), so there is no window in which it runs unlimited. v2 forbids
processes in a cgroup that hands controllers to its children, so when the
server's own cgroup holds the server itself, the server first moves into a
leaf beside its sandboxes (what systemd's delegation documentation asks).
"""

from __future__ import annotations

import errno
import os
import signal
import time

from . import cgroups
from .cgroups import read_text, write_text
from .freezer_state import FreezerState
from .memory_peak import PeakCounter
from .thaw_guard import ThawGuard

WANTED = ("memory", "pids", "cpu")


def _read_keyed(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in read_text(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


class CgroupV2:
    def __init__(self, name: str, path: str, guard: ThawGuard | None = None) -> None:
        self.name = name
        self.path = path
        self._guard = guard  # started before the first freeze: see thaw_guard.py
        self._cpu_limit = False  # set_limits() decides
        self._state = FreezerState(os.path.join(path, "cgroup.freeze"), b"1", b"0")

    def attach_handles(self) -> tuple[list[int], int]:
        return [], os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def oom_kill_count(self) -> int:
        return _read_keyed(os.path.join(self.path, "memory.events")).get("oom_kill", 0)

    def peak_memory_bytes(self) -> int | None:
        try:  # memory.peak exists from Linux 5.19
            return int(read_text(os.path.join(self.path, "memory.peak")))
        except OSError:
            return None

    def peak_counter(self) -> PeakCounter | None:
        return PeakCounter.open(os.path.join(self.path, "memory.peak"), b"reset\n")

    def pids(self) -> list[int]:
        try:
            return sorted(int(p) for p in read_text(os.path.join(self.path, "cgroup.procs")).split())
        except FileNotFoundError:
            return []

    def task_count(self) -> int:
        try:
            return cgroups.read_int(os.path.join(self.path, "pids.current"))
        except FileNotFoundError:  # no pids controller here: count them
            return len(read_text(os.path.join(self.path, "cgroup.threads")).split())

    def freeze(self) -> None:
        # Every cgroup but the root has cgroup.freeze (Linux 5.2+), with or
        # without controllers. cgroup.events says "frozen 1" once the last
        # task has stopped; nothing here needs to wait for it.
        if self._guard is not None:
            self._guard.ensure_started()
        self._state.freeze()

    def thaw(self) -> None:
        self._state.thaw()

    def close(self) -> None:
        self._state.close()

    def unthrottle(self) -> None:
        try:
            write_text(os.path.join(self.path, "cpu.max"), "max")
        except OSError:
            pass

    def kill_all(self) -> None:
        self.unthrottle()
        try:
            # Frozen processes die too: v2 lets a fatal signal through.
            write_text(os.path.join(self.path, "cgroup.kill"), "1")  # Linux 5.14+
            return
        except FileNotFoundError:
            if not os.path.isdir(self.path):
                return
        except OSError:
            pass
        freeze = os.path.join(self.path, "cgroup.freeze")
        try:
            write_text(freeze, "1")
            deadline = time.monotonic() + 1.0
            while "frozen 1" not in read_text(os.path.join(self.path, "cgroup.events")):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.0005)
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        finally:
            try:
                write_text(freeze, "0")
            except OSError:
                pass

    def set_limits(self, memory_mb: int, cpu_limit: bool = True) -> None:
        """Memory = memory_mb with no swap; CPU at least START_CPU_MB's
        until set_cpu_share(). Also used to resize a spare sandbox when it
        is handed to a function."""
        write_text(os.path.join(self.path, "memory.max"), str(memory_mb * 1024 * 1024))
        if os.path.exists(os.path.join(self.path, "memory.swap.max")):
            write_text(os.path.join(self.path, "memory.swap.max"), "0")
        self._cpu_limit = cpu_limit
        if cpu_limit:
            self._set_quota(max(memory_mb, cgroups.START_CPU_MB))

    def set_cpu_share(self, memory_mb: int) -> None:
        if self._cpu_limit:
            self._set_quota(memory_mb)

    def _set_quota(self, memory_mb: int) -> None:
        quota = cgroups.cpu_quota_us(memory_mb)
        burst = os.path.join(self.path, "cpu.max.burst")
        has_burst = os.path.exists(burst)
        # The kernel refuses a burst above the quota: clear it first.
        if has_burst:
            write_text(burst, "0")
        write_text(os.path.join(self.path, "cpu.max"), f"{quota} {cgroups.CPU_PERIOD_US}")
        if has_burst:
            write_text(burst, str(quota))

    def remove(self) -> None:
        self.close()
        if os.path.isdir(self.path):
            cgroups.rmdir_retrying(self.path, self.kill_all)


class CgroupV2Manager:
    version = 2

    def __init__(self, root: str, controllers: set[str], cpu_limit: bool) -> None:
        self.root = root
        self.root_paths = [root]
        self.controllers = controllers
        self.cpu_limit = cpu_limit and "cpu" in controllers
        self.tasks_max: int | None = None
        self.thaw_guard = ThawGuard(root)

    @classmethod
    def open(cls, *, cpu_limit: bool = True, tasks_max: int | None = None) -> CgroupV2Manager:
        _v1, mount = cgroups.mountinfo_cgroups()
        _own_v1, own = cgroups.own_cgroups()
        if mount is None or own is None:
            raise OSError(errno.ENOENT, "no cgroup2 mount")
        parent = os.path.join(mount, own.lstrip("/"))
        available = set(read_text(os.path.join(parent, "cgroup.controllers")).split())
        if "memory" not in available or "pids" not in available:
            raise OSError(errno.ENOTSUP, f"memory and pids controllers not delegated to {parent}")
        cleanup_stale(parent)
        wanted = [c for c in WANTED if c in available]
        _enable(parent, wanted)
        root = os.path.join(parent, cgroups.root_name())
        os.makedirs(root, exist_ok=True)
        manager = cls(root, set(wanted), cpu_limit)
        try:
            _enable(root, wanted)
            manager.set_tasks_max(cgroups.default_tasks_max() if tasks_max is None else tasks_max)
        except OSError as exc:
            remove_tree(root)
            raise OSError(exc.errno, f"set up cgroup root {root}: {exc.strerror}") from exc
        return manager

    def set_tasks_max(self, tasks_max: int) -> None:
        write_text(os.path.join(self.root, "pids.max"), str(tasks_max))
        self.tasks_max = tasks_max

    def tasks_in_use(self) -> int:
        return cgroups.read_int(os.path.join(self.root, "pids.current"))

    def create(self, name: str, memory_mb: int) -> CgroupV2:
        path = os.path.join(self.root, name)
        group = CgroupV2(name, path, self.thaw_guard)
        os.mkdir(path)

        def configure() -> None:
            # One OOM kill takes the whole sandbox, as Lambda ends the instance.
            if os.path.exists(os.path.join(path, "memory.oom.group")):
                write_text(os.path.join(path, "memory.oom.group"), "1")
            write_text(os.path.join(path, "pids.max"), str(cgroups.PIDS_MAX))
            group.set_limits(memory_mb, self.cpu_limit)

        return cgroups.configure_or_remove(group, name, configure)

    def enforced(self) -> dict[str, bool]:
        return {
            "memory_limit": True,
            "cpu_limit": self.cpu_limit,
            "pids_limit": True,
            "host_pids_cap": self.tasks_max is not None,
            "idle_freeze": os.path.exists(os.path.join(self.root, "cgroup.freeze")),
        }

    def close(self) -> None:
        remove_tree(self.root)
        self.thaw_guard.close()


def _enable(path: str, controllers: list[str]) -> None:
    control = os.path.join(path, "cgroup.subtree_control")
    enabled = set(read_text(control).split())
    missing = [c for c in controllers if c not in enabled]
    if not missing:
        return
    try:
        write_text(control, " ".join("+" + c for c in missing))
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        # "No internal processes": move this server into a leaf first.
        leaf = os.path.join(path, "lambdalet.server")
        os.makedirs(leaf, exist_ok=True)
        write_text(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
        write_text(control, " ".join("+" + c for c in missing))


def remove_tree(root: str) -> None:
    """Kill and remove every cgroup beneath root, then root itself."""
    cgroups.remove_tree(root, lambda path: CgroupV2(os.path.basename(path), path).kill_all())


def cleanup_stale(parent: str) -> list[str]:
    """Remove roots left by servers that no longer run (a kill -9, a crash)."""
    return cgroups.remove_stale_roots(parent, remove_tree)
