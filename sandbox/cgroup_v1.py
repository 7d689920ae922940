"""cgroup v1: one directory per controller (memory, cpu, pids, freezer).

Each sandbox gets <controller mount>/<server's own cgroup>/lambdalet.<pid>.
<start>/<name> in every controller. The parent writes the child's pid into
each cgroup.procs before it releases the child (csrc/spawn.c), so the
sandbox never runs a single instruction outside its limits.
"""
from __future__ import annotations

import errno
import os
import signal
import time

from . import cgroups
from .cgroups import read_text, write_text

REQUIRED = ("memory", "pids", "freezer")
OPTIONAL = ("cpu",)


class CgroupV1:
    def __init__(self, name: str, dirs: dict[str, str], spared: set[int] | frozenset[int] = frozenset()) -> None:
        self.name = name
        self.dirs = dirs  # controller -> directory
        # Processes that may pass through but are not the sandbox's: never
        # killed here (cgroup_stager.py's zygote).
        self._spared = spared

    def attach_handles(self) -> tuple[list[int], int]:
        fds: list[int] = []
        try:
            # One write per hierarchy: controllers mounted together share a dir.
            for path in dict.fromkeys(self.dirs.values()):
                fds.append(os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return fds, -1

    def oom_kill_count(self) -> int:
        try:
            text = read_text(os.path.join(self.dirs["memory"], "memory.oom_control"))
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def peak_memory_bytes(self) -> int | None:
        try:
            return int(read_text(os.path.join(self.dirs["memory"], "memory.max_usage_in_bytes")))
        except OSError:
            return None

    def pids(self) -> list[int]:
        pids: set[int] = set()
        for path in set(self.dirs.values()):
            try:
                pids.update(int(p) for p in read_text(os.path.join(path, "cgroup.procs")).split())
            except FileNotFoundError:
                pass
        return sorted(pids)

    def unthrottle(self) -> None:
        cpu = self.dirs.get("cpu")
        if cpu is not None:
            try:
                write_text(os.path.join(cpu, "cpu.cfs_quota_us"), "-1")
            except OSError:
                pass

    def kill_all(self) -> None:
        self.unthrottle()
        # Freezing first stops a fork bomb from outrunning the kill loop;
        # SIGKILL is delivered to frozen tasks once they are thawed.
        freezer = self.dirs.get("freezer")
        if freezer is None or not os.path.isdir(freezer):
            return self._kill_listed()
        state = os.path.join(freezer, "freezer.state")
        try:
            write_text(state, "FROZEN")
            deadline = time.monotonic() + 1.0
            while read_text(state).strip() != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.0005)
            self._kill_listed()
        finally:
            try:
                write_text(state, "THAWED")
            except FileNotFoundError:
                pass

    def _kill_listed(self) -> None:
        for pid in self.pids():
            if pid in self._spared:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def set_limits(self, memory_mb: int, cpu_limit: bool = True) -> None:
        """Memory = memory_mb with no swap, CPU in proportion. Also used to
        resize a spare sandbox when it is handed to a function."""
        mem = self.dirs["memory"]
        limit = str(memory_mb * 1024 * 1024)
        limit_file = os.path.join(mem, "memory.limit_in_bytes")
        memsw_file = os.path.join(mem, "memory.memsw.limit_in_bytes")
        # memsw may never be below the memory limit: raise it first when
        # growing, lower it last when shrinking.
        has_memsw = os.path.exists(memsw_file)
        try:
            write_text(limit_file, limit)
            if has_memsw:
                write_text(memsw_file, limit)
        except OSError:
            if not has_memsw:
                raise
            write_text(memsw_file, limit)
            write_text(limit_file, limit)
        try:
            write_text(os.path.join(mem, "memory.swappiness"), "0")
        except OSError:
            pass
        if cpu_limit and "cpu" in self.dirs:
            cpu = self.dirs["cpu"]
            write_text(os.path.join(cpu, "cpu.shares"), str(cgroups.cpu_shares(memory_mb)))
            quota = cgroups.cpu_quota_us(memory_mb)
            burst = os.path.join(cpu, "cpu.cfs_burst_us")
            has_burst = os.path.exists(burst)
            # The kernel refuses a burst above the quota, so a resize clears
            # the burst before changing the quota.
            if has_burst:
                write_text(burst, "0")
            write_text(os.path.join(cpu, "cpu.cfs_period_us"), str(cgroups.CPU_PERIOD_US))
            write_text(os.path.join(cpu, "cpu.cfs_quota_us"), str(quota))
            # Unused quota carries over up to one period's worth, so a
            # small function's short bursts (a cold start) are not cut
            # into 100 ms slices.
            if has_burst:
                write_text(burst, str(quota))

    def remove(self) -> None:
        for path in dict.fromkeys(self.dirs.values()):
            if os.path.isdir(path):
                cgroups.rmdir_retrying(path, self.kill_all)


class CgroupV1Manager:
    version = 1

    def __init__(self, roots: dict[str, str], cpu_limit: bool) -> None:
        self.roots = roots  # controller -> this server's root directory
        self.root_paths = list(dict.fromkeys(roots.values()))
        self.cpu_limit = cpu_limit and "cpu" in roots
        self.spared_pids: set[int] = set()  # see CgroupV1._spared

    @classmethod
    def open(cls, *, cpu_limit: bool = True) -> "CgroupV1Manager":
        mounts, _v2 = cgroups.mountinfo_cgroups()
        own, _own_v2 = cgroups.own_cgroups()
        missing = [c for c in REQUIRED if c not in mounts or c not in own]
        if missing:
            raise OSError(errno.ENOENT, f"controllers not mounted: {', '.join(missing)}")
        name = cgroups.root_name()
        roots: dict[str, str] = {}
        for c in REQUIRED + OPTIONAL:
            if c in mounts and c in own:
                parent = os.path.join(mounts[c], own[c].lstrip("/"))
                cleanup_stale(parent)
                roots[c] = os.path.join(parent, name)
        manager = cls(roots, cpu_limit)
        try:
            for c, path in roots.items():
                os.makedirs(path, exist_ok=True)
        except OSError as exc:
            manager.close()
            raise OSError(exc.errno, f"create cgroup root {exc.filename}: {exc.strerror}") from exc
        return manager

    def create(self, name: str, memory_mb: int) -> CgroupV1:
        dirs = {c: os.path.join(root, name) for c, root in self.roots.items()}
        group = CgroupV1(name, dirs, self.spared_pids)

        def configure() -> None:
            for path in dict.fromkeys(dirs.values()):
                os.mkdir(path)
            write_text(os.path.join(dirs["pids"], "pids.max"), str(cgroups.PIDS_MAX))
            group.set_limits(memory_mb, self.cpu_limit)

        return cgroups.configure_or_remove(group, name, configure)

    def enforced(self) -> dict[str, bool]:
        return {"memory_limit": True, "cpu_limit": self.cpu_limit, "pids_limit": True}

    def close(self) -> None:
        for path in self.root_paths:
            remove_tree(path)


def remove_tree(root: str) -> None:
    """Kill and remove every cgroup beneath root, then root itself."""
    cgroups.remove_tree(root, lambda path: CgroupV1(os.path.basename(path), {"any": path})._kill_listed())


def cleanup_stale(parent: str) -> list[str]:
    """Remove roots left by servers that no longer run (a kill -9, a crash)."""
    return cgroups.remove_stale_roots(parent, remove_tree)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and cgroups.is_stale_root(entry.name):
            try:
                remove_tree(entry.path)
                removed.append(entry.path)
            except OSError:
                pass
    return removed
