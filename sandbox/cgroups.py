"""Resource limits for sandboxes: one interface, a module per cgroup version.

A `CgroupManager` owns a directory created beneath the server's own cgroup
(never beside it: that is what systemd delegation and containers expect)
and creates one `Cgroup` per sandbox under it. The names embed the server's
pid and start time, so a restarted server can tell its own leftovers from
those of a server that is still running and remove only the former.

Limits follow Lambda: memory is MemorySize with no swap, CPU is
proportional to memory (1,769 MB = 1 vCPU), and pids.max is 1024. The
root itself has a pids.max too (tasks_max): 1,024 tasks per sandbox times
a few dozen sandboxes is the whole host's pid space, and the host must keep
forking whatever the functions do.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from . import proc_stat

if TYPE_CHECKING:
    from .memory_peak import PeakCounter

PIDS_MAX = 1024
MB_PER_VCPU = 1769
# The quota per period is what the memory size buys; the period decides how
# long a function that has used its share waits. With a 1 s period a 128 MB
# function that used its 72 ms waited up to 0.93 s (a 231 ms p99 under
# sustained load); with 20 ms it waits at most ~18.5 ms, so a small function
# slows down smoothly. 20 ms is the shortest period at which 128 MB's share
# (1.45 ms) is still above the kernel's 1 ms minimum quota, so every size
# keeps its exact share. Start-up is not stretched by the short period: a
# sandbox starts with at least START_CPU_MB's share (set_limits) and gets
# its own once init is over (set_cpu_share).
CPU_PERIOD_US = 20_000
START_CPU_MB = MB_PER_VCPU  # one vCPU while the runtime starts and the handler is imported
ROOT_PREFIX = "lambdalet."


class Cgroup(Protocol):
    """The cgroup(s) of one sandbox."""

    name: str

    def attach_handles(self) -> tuple[list[int], int]:
        """Fresh fds for placing a process before it runs: cgroup.procs files
        to write its pid to (v1), and a directory fd for CLONE_INTO_CGROUP
        (v2, else -1). The caller closes them."""

    def oom_kill_count(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup."""

    def peak_memory_bytes(self) -> int | None:
        """High-water mark of memory use, or None where the kernel has none."""

    def peak_counter(self) -> PeakCounter | None:
        """A held descriptor on the high-water mark that can be reset per
        call where the kernel allows it (memory_peak.py); the caller closes it."""

    def pids(self) -> list[int]:
        """Every live process in the cgroup, as host pids."""

    def kill_all(self) -> None:
        """SIGKILL every process, including ones forking as we go. Works on
        a frozen cgroup too: the processes die, nothing of theirs runs."""

    def freeze(self) -> None:
        """Stop every process where it stands (the cgroup freezer) until
        thaw(). Returns at once; stragglers stop within microseconds."""

    def thaw(self) -> None:
        """Let the processes of a frozen cgroup run again."""

    def close(self) -> None:
        """Release the descriptors held for freeze() and thaw() (remove()
        does it too); both still work after, opening the file each time."""

    def task_count(self) -> int:
        """Processes and threads in the cgroup now."""

    def set_limits(self, memory_mb: int, cpu_limit: bool = True) -> None:
        """Memory = memory_mb, and CPU weighted by it with START_CPU_MB's
        quota at least until set_cpu_share(); also resizes a spare."""

    def set_cpu_share(self, memory_mb: int) -> None:
        """CPU as memory_mb buys it (set_limits gives START_CPU_MB's at least)."""

    def unthrottle(self) -> None:
        """Lift the CPU limit so that killed processes exit promptly: a
        thousand processes dying at 7% of a CPU take minutes."""

    def remove(self) -> None:
        """Kill what is left and remove the directories, retrying EBUSY."""


class CgroupManager(Protocol):
    version: int
    root_paths: list[str]
    tasks_max: int | None  # the root's pids.max; None: not capped
    cpu_limit: bool  # whether sandboxes' CPU is limited at all

    def create(self, name: str, memory_mb: int) -> Cgroup:
        """A new cgroup with the limits for memory_mb applied."""

    def tasks_in_use(self) -> int:
        """Processes and threads beneath the root now (its pids.current)."""

    def enforced(self) -> dict[str, bool]:
        """memory_limit, cpu_limit, pids_limit, host_pids_cap and idle_freeze, each on or off."""

    def close(self) -> None:
        """Remove this server's root (and anything left in it)."""


def cpu_quota_us(memory_mb: int) -> int:
    """CPU time per CPU_PERIOD_US that memory_mb buys, as on Lambda (above
    1,769 MB that is more than one CPU's worth per period). 1 ms is the
    kernel's minimum quota."""
    return max(1000, CPU_PERIOD_US * memory_mb // MB_PER_VCPU)


def default_tasks_max() -> int:
    """Half of what the kernel allows (kernel.pid_max, kernel.threads-max):
    the host keeps the other half whatever the functions do."""
    limits = []
    for path in ("/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"):
        try:
            limits.append(int(read_text(path)))
        except (OSError, ValueError):
            pass
    return max(PIDS_MAX, min(limits, default=32768) // 2)


def read_int(path: str) -> int:
    """A cgroup file holding one number ("max" reads as -1)."""
    text = read_text(path).strip()
    return -1 if text == "max" else int(text)


def cpu_shares(memory_mb: int) -> int:
    return max(2, 1024 * memory_mb // MB_PER_VCPU)


def process_start_time(pid: int) -> int | None:
    """Tells a pid apart from its reuse (None: the process is gone)."""
    stat = proc_stat.read(pid)
    return stat.starttime if stat is not None else None


_root_seq = itertools.count()


def root_name() -> str:
    """lambdalet.<pid>.<start time>.<n>: the process that owns the root, and
    which of its managers (doctor, a probe and the server may each hold one
    in the same process; closing one must not remove another's)."""
    pid = os.getpid()
    return f"{ROOT_PREFIX}{pid}.{process_start_time(pid)}.{next(_root_seq)}"


def is_stale_root(name: str) -> bool:
    """True for a root left behind by a server process that no longer runs."""
    if not name.startswith(ROOT_PREFIX):
        return False
    try:
        pid_s, start_s = name[len(ROOT_PREFIX) :].split(".")[:2]
        pid, start = int(pid_s), int(start_s)
    except ValueError:
        return False
    return process_start_time(pid) != start


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def write_text(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def configure_or_remove(group, name: str, configure: Callable[[], None]):
    """Runs configure() on a new cgroup; if it fails, removes the cgroup and
    raises an OSError naming it. Returns group."""
    try:
        configure()
    except OSError as exc:
        try:
            group.remove()
        except OSError:
            pass
        raise OSError(exc.errno, f"configure cgroup {name}: {exc.strerror}") from exc
    return group


def rmdir_retrying(path: str, kill, timeout_s: float = 5.0) -> None:
    """rmdir a cgroup. EBUSY means processes are still exiting (or were
    just forked); kill again and retry with a short back-off."""
    deadline = time.monotonic() + timeout_s
    delay = 0.0005
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != 16 or time.monotonic() > deadline:  # EBUSY
                raise OSError(exc.errno, f"remove cgroup {path}: {exc.strerror}") from exc
        kill()
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def mountinfo_cgroups() -> tuple[dict[str, str], str | None]:
    """v1 controller -> mount point, and the cgroup2 mount point if any."""
    v1: dict[str, str] = {}
    v2: str | None = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype, _source, super_opts = (right.split() + ["", "", ""])[:3]
            mount_point = fields[4].replace("\\040", " ")
            if fstype == "cgroup2" and v2 is None:
                v2 = mount_point
            elif fstype == "cgroup":
                for opt in super_opts.split(","):
                    if opt in ("memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "devices", "blkio"):
                        v1.setdefault(opt, mount_point)
    return v1, v2


def own_cgroups() -> tuple[dict[str, str], str | None]:
    """The server's own cgroup path per v1 controller, and its v2 path."""
    v1: dict[str, str] = {}
    v2: str | None = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers == "":
                v2 = path
            for c in controllers.split(","):
                if c:
                    v1[c] = path
    return v1, v2


def detect(*, cpu_limit: bool = True, tasks_max: int | None = None) -> tuple[CgroupManager | None, list[str]]:
    """The best cgroup manager this host allows, and why anything is missing.
    tasks_max caps the tasks of all sandboxes together (default_tasks_max()
    when None).

    v1 wins where its memory controller is mounted (as on this project's
    machines); v2 is used where it holds the controllers itself."""
    from . import cgroup_v1, cgroup_v2

    reasons: list[str] = []
    try:
        return cgroup_v1.CgroupV1Manager.open(cpu_limit=cpu_limit, tasks_max=tasks_max), []
    except OSError as exc:
        reasons.append(f"cgroup v1: {exc.strerror or exc}")
    try:
        return cgroup_v2.CgroupV2Manager.open(cpu_limit=cpu_limit, tasks_max=tasks_max), []
    except OSError as exc:
        reasons.append(f"cgroup v2: {exc.strerror or exc}")
    return None, reasons


def remove_stale_roots(parent: str, remove_tree: Callable[[str], None]) -> list[str]:
    """Remove roots under parent left by servers that no longer run (a kill
    -9, a crash), with the version-specific remove_tree."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and is_stale_root(entry.name):
            try:
                remove_tree(entry.path)
                removed.append(entry.path)
            except OSError:
                pass
    return removed


def remove_tree(root: str, kill_in: Callable[[str], None]) -> None:
    """Kill and remove every cgroup beneath root, then root itself, deepest
    first; kill_in(path) empties one directory the version's way."""
    if not os.path.isdir(root):
        return
    with os.scandir(root) as entries:
        children = [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    for child in children:
        remove_tree(child, kill_in)
    rmdir_retrying(root, lambda: kill_in(root))
