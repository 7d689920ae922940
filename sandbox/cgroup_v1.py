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
from .freezer_state import FreezerState
from .memory_peak import PeakCounter
from .thaw_guard import ThawGuard

REQUIRED = ("memory", "pids", "freezer")
OPTIONAL = ("cpu",)
FREEZER_ANCHOR = "keep-frozen"  # see CgroupV1Manager._keep_freezer_on


class CgroupV1:
    def __init__(
        self, name: str, dirs: dict[str, str], spared: set[int] | frozenset[int] = frozenset(), guard: ThawGuard | None = None
    ) -> None:
        self.name = name
        self.dirs = dirs  # controller -> directory
        self._guard = guard  # started before the first freeze: see thaw_guard.py
        # Processes that may pass through but are not the sandbox's: never
        # killed here (cgroup_stager.py's zygote).
        self._spared = spared
        self._cpu_limit = False  # set_limits() decides
        # What this object last wrote to each limit file (nothing else writes
        # them): a stage made with a spawn's limits (cgroup_stager.py) needs
        # only its CPU quota written again on the spawn's path.
        self._written: dict[str, str] = {}
        self._exists: dict[str, bool] = {}
        self._state = FreezerState(os.path.join(dirs["freezer"], "freezer.state"), b"FROZEN", b"THAWED") if "freezer" in dirs else None

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

    def peak_counter(self) -> PeakCounter | None:
        return PeakCounter.open(os.path.join(self.dirs["memory"], "memory.max_usage_in_bytes"), b"0")

    def pids(self) -> list[int]:
        pids: set[int] = set()
        for path in set(self.dirs.values()):
            try:
                pids.update(int(p) for p in read_text(os.path.join(path, "cgroup.procs")).split())
            except FileNotFoundError:
                pass
        return sorted(pids)

    def task_count(self) -> int:
        return cgroups.read_int(os.path.join(self.dirs["pids"], "pids.current"))

    def freeze(self) -> None:
        # The legacy freezer stops each task at its next return to user
        # space (a spinning thread is interrupted); the state reads FREEZING
        # until the last one has stopped. Nothing here needs to wait for it.
        if self._guard is not None:
            self._guard.ensure_started()
        if self._state is None:
            raise OSError(errno.ENOENT, f"cgroup {self.name} has no freezer")
        self._state.freeze()

    def thaw(self) -> None:
        if self._state is None:
            raise OSError(errno.ENOENT, f"cgroup {self.name} has no freezer")
        self._state.thaw()

    def close(self) -> None:
        if self._state is not None:
            self._state.close()

    def _write(self, path: str, value: str) -> None:
        """write_text, unless value is what this object last wrote there."""
        if self._written.get(path) != value:
            self._written.pop(path, None)  # unknown if the write fails
            write_text(path, value)
            self._written[path] = value

    def _has(self, path: str) -> bool:
        """Whether a limit file exists (memsw and burst depend on the kernel's
        configuration), asked once."""
        found = self._exists.get(path)
        if found is None:
            found = self._exists[path] = os.path.exists(path)
        return found

    def unthrottle(self) -> None:
        cpu = self.dirs.get("cpu")
        if cpu is not None:
            try:
                self._write(os.path.join(cpu, "cpu.cfs_quota_us"), "-1")
            except OSError:
                pass

    def kill_all(self) -> None:
        self.unthrottle()
        # Freezing first stops a fork bomb from outrunning the kill loop;
        # SIGKILL is delivered to frozen tasks once they are thawed. The
        # same steps kill a sandbox frozen between calls.
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

    def created(self) -> None:
        """Just made: its burst is the kernel's 0, which a first quota need
        not clear."""
        cpu = self.dirs.get("cpu")
        if cpu is not None:
            self._written[os.path.join(cpu, "cpu.cfs_burst_us")] = "0"

    def set_limits(self, memory_mb: int, cpu_limit: bool = True, *, quota: bool = True) -> None:
        """Memory = memory_mb with no swap; CPU weighted by memory_mb, with
        at least START_CPU_MB's quota until set_cpu_share() (quota=False:
        the quota is left as it is). Also used to resize a spare sandbox
        when it is handed to a function."""
        mem = self.dirs["memory"]
        limit = str(memory_mb * 1024 * 1024)
        limit_file = os.path.join(mem, "memory.limit_in_bytes")
        memsw_file = os.path.join(mem, "memory.memsw.limit_in_bytes")
        # memsw may never be below the memory limit: raise it first when
        # growing, lower it last when shrinking.
        has_memsw = self._has(memsw_file)
        try:
            self._write(limit_file, limit)
            if has_memsw:
                self._write(memsw_file, limit)
        except OSError:
            if not has_memsw:
                raise
            self._write(memsw_file, limit)
            self._write(limit_file, limit)
        try:
            self._write(os.path.join(mem, "memory.swappiness"), "0")
        except OSError:
            pass
        self._cpu_limit = cpu_limit and "cpu" in self.dirs
        if self._cpu_limit:
            self._write(os.path.join(self.dirs["cpu"], "cpu.shares"), str(cgroups.cpu_shares(memory_mb)))
            if quota:
                self._set_quota(max(memory_mb, cgroups.START_CPU_MB))

    def set_cpu_share(self, memory_mb: int) -> None:
        if self._cpu_limit:
            self._set_quota(memory_mb)

    def _set_quota(self, memory_mb: int) -> None:
        cpu = self.dirs["cpu"]
        quota = str(cgroups.cpu_quota_us(memory_mb))
        burst = os.path.join(cpu, "cpu.cfs_burst_us")
        quota_file = os.path.join(cpu, "cpu.cfs_quota_us")
        has_burst = self._has(burst)
        # The kernel refuses a burst above the quota, so a resize clears
        # the burst before changing the quota.
        if has_burst and self._written.get(quota_file) != quota:
            self._write(burst, "0")
        self._write(os.path.join(cpu, "cpu.cfs_period_us"), str(cgroups.CPU_PERIOD_US))
        self._write(quota_file, quota)
        # Unused quota carries over up to one quota's worth, so the first
        # call after a quiet spell may use twice the share in one period.
        if has_burst:
            self._write(burst, quota)

    def remove(self) -> None:
        self.close()
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
        self.tasks_max: int | None = None
        self.thaw_guard = ThawGuard(roots["freezer"])

    @classmethod
    def open(cls, *, cpu_limit: bool = True, tasks_max: int | None = None) -> CgroupV1Manager:
        mounts, _v2 = cgroups.mountinfo_cgroups()
        own, _own_v2 = cgroups.own_cgroups()
        missing = [c for c in REQUIRED if c not in mounts or c not in own]
        if missing:
            raise OSError(errno.ENOENT, f"controllers not mounted: {', '.join(missing)}")
        name = cgroups.root_name()
        roots: dict[str, str] = {}
        # The freezer's first: a dead server's frozen sandboxes die only
        # once thawed (if its thaw guard did not get to it).
        for c in sorted(REQUIRED + OPTIONAL, key=lambda c: c != "freezer"):
            if c in mounts and c in own:
                parent = os.path.join(mounts[c], own[c].lstrip("/"))
                cleanup_stale(parent)
                roots[c] = os.path.join(parent, name)
        manager = cls(roots, cpu_limit)
        try:
            for path in roots.values():
                os.makedirs(path, exist_ok=True)
        except OSError as exc:
            manager.close()
            raise OSError(exc.errno, f"create cgroup root {exc.filename}: {exc.strerror}") from exc
        try:
            manager.set_tasks_max(cgroups.default_tasks_max() if tasks_max is None else tasks_max)
        except OSError as exc:
            manager.close()
            raise OSError(exc.errno, f"cap the tasks of {roots['pids']}: {exc.strerror}") from exc
        manager._keep_freezer_on()
        return manager

    def _keep_freezer_on(self) -> None:
        """The kernel patches its code (a static key, ~50 us) whenever the
        first v1 cgroup starts freezing or the last one thaws, so thawing
        the only frozen instance cost twice what it does with another one
        frozen. An empty cgroup kept frozen under the root keeps the key on."""
        anchor = os.path.join(self.roots["freezer"], FREEZER_ANCHOR)
        try:
            os.mkdir(anchor)
            write_text(os.path.join(anchor, "freezer.state"), "FROZEN")
        except OSError:
            pass  # only slower

    def set_tasks_max(self, tasks_max: int) -> None:
        write_text(os.path.join(self.roots["pids"], "pids.max"), str(tasks_max))
        self.tasks_max = tasks_max

    def tasks_in_use(self) -> int:
        return cgroups.read_int(os.path.join(self.roots["pids"], "pids.current"))

    def create(self, name: str, memory_mb: int, *, throttled: bool = True) -> CgroupV1:
        """throttled=False: no CPU quota yet (a stage, where the zygote works
        until a spawn sets the function's), the kernel's -1."""
        dirs = {c: os.path.join(root, name) for c, root in self.roots.items()}
        group = CgroupV1(name, dirs, self.spared_pids, self.thaw_guard)

        def configure() -> None:
            for path in dict.fromkeys(dirs.values()):
                os.mkdir(path)
            group.created()
            write_text(os.path.join(dirs["pids"], "pids.max"), str(cgroups.PIDS_MAX))
            group.set_limits(memory_mb, self.cpu_limit, quota=throttled)

        return cgroups.configure_or_remove(group, name, configure)

    def enforced(self) -> dict[str, bool]:
        return {
            "memory_limit": True,
            "cpu_limit": self.cpu_limit,
            "pids_limit": True,
            "host_pids_cap": self.tasks_max is not None,
            "idle_freeze": True,
        }

    def close(self) -> None:
        # The freezer's tree first: a frozen sandbox's processes die only
        # once thawed, and the other hierarchies cannot be removed before.
        freezer = self.roots.get("freezer")
        for path in sorted(self.root_paths, key=lambda p: p != freezer):
            remove_tree(path)
        self.thaw_guard.close()


def remove_tree(root: str) -> None:
    """Kill and remove every cgroup beneath root, then root itself."""
    cgroups.remove_tree(root, _kill_in)


def _kill_in(path: str) -> None:
    """SIGKILL what is in one directory of any hierarchy; in the freezer's,
    thaw it too, or killed processes of a frozen sandbox never die."""
    CgroupV1(os.path.basename(path), {"any": path})._kill_listed()
    state = os.path.join(path, "freezer.state")
    if os.path.exists(state):
        try:
            write_text(state, "THAWED")
        except OSError:
            pass


def cleanup_stale(parent: str) -> list[str]:
    """Remove roots left by servers that no longer run (a kill -9, a crash)."""
    return cgroups.remove_stale_roots(parent, remove_tree)
