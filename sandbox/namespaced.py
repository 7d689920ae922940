"""The isolating backend: each worker in its own namespaces, cgroup and root.

As root: user, pid, mount, net (lo only), uts, ipc and cgroup namespaces; a
read-only root assembled from binds (rootfs.py); cgroup limits; no
capabilities, no_new_privs and seccomp. Without root the same sandbox runs
through an unprivileged user namespace, with cgroup limits only where a
delegated subtree is writable.

spawn() blocks for a few milliseconds with the GIL released (it returns
once the worker has exec'd, not once it is ready) and is safe to call from
several threads. PR_SET_PDEATHSIG follows the spawning thread: see the
pdeathsig argument. destroy() blocks until PID 1 is reaped (about a
millisecond, at most INIT_EXIT_TIMEOUT_S); call it off the event loop.

Every sandbox's PID 1 is this process's child, whether spawned here or by
the runtime zygote (which clones it with CLONE_PARENT), and is signalled and
reaped through a pidfd that came with its clone: a sandbox depends on
nothing but this process, and a zygote that dies is simply started again by
the next spawn.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import logging
import os
import select
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import NamedTuple

from . import cgroups as cgroups_mod
from . import interpreters, memory_peak, nsspawn, rootfs, spawn_wire
from .cgroup_stager import CgroupStager
from .cgroup_v1 import CgroupV1Manager
from .egress import Egress, host_nameservers
from .memory_peak import PeakCounter
from .netns_pool import NetnsPool
from .netns_pool import create as netns_create
from .prepared_roots import PreparedRoots, Tree
from .runtime_root import RuntimeRoot, worker_argv
from .spec import SandboxSpec
from .zygote_client import ZygoteClient, ZygoteGone

log = logging.getLogger("lambdalet.sandbox")

CONTROL_FD = 3
KILL_ALL_SIGNAL = signal.SIGRTMAX  # LL_SIG_KILL_ALL in csrc/spawn.h
INIT_EXIT_TIMEOUT_S = 2.0
# A zygote that keeps dying is not started again for a while: at most this
# many starts per window, then sandboxes exec their own interpreter.
ZYGOTE_STARTS_PER_WINDOW = 5
ZYGOTE_START_WINDOW_S = 60.0
PLAN_CACHE_SIZE = 1024  # distinct (code, layers, /tmp size) combinations kept compiled
# Host ids the sandbox's ids map to. Far above any real account, so that a
# sandboxed process that somehow reached the host would own nothing there.
HOST_ID_BASE = 2_000_000_000

BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
    "LANG": "C.UTF-8",
    "LAMBDA_TASK_ROOT": rootfs.TASK_ROOT,
    "LAMBDA_RUNTIME_DIR": rootfs.RUNTIME_DIR,
}

ALL_NAMESPACES = (
    nsspawn.CLONE_NEWUSER | nsspawn.CLONE_NEWPID | nsspawn.CLONE_NEWNS | nsspawn.CLONE_NEWNET | nsspawn.CLONE_NEWUTS | nsspawn.CLONE_NEWIPC
)


class NamespacedSandbox:
    task_root = rootfs.TASK_ROOT

    def __init__(
        self,
        pid: int,
        control: socket.socket,
        cgroup: cgroups_mod.Cgroup | None,
        release=None,
        pidfd: int = -1,
        remove_cgroup=None,
        forget=None,
        shares_cgroup=None,
        cpu_limit: bool = True,
        netns_back=None,
    ) -> None:
        # PID 1 of the sandbox, this process's child, and a pidfd for it
        # (owned here): signals and the reaping go through the pidfd, which
        # no reused pid can redirect.
        self.pid = pid
        self.control = control
        self.cgroup = cgroup
        self._release = release  # frees what outlives the processes (an egress lease)
        self._pidfd = pidfd
        self._remove_cgroup = remove_cgroup  # instead of cgroup.remove() (a stage: the stager's)
        self._forget = forget  # tells the backend PID 1 has been reaped
        # True while a process that is not the sandbox's (the zygote, in a
        # stage) may still be in its cgroup: freezing would stop it too.
        self._shares_cgroup = shares_cgroup
        self._cpu_limit = cpu_limit  # whether the backend limits CPU at all
        # Hands the pooled network namespace back once every process that
        # could use it is gone (the pool decides whether it is reused).
        self._netns_back = netns_back
        self._frozen = False
        self._reaped = False
        self._peak: PeakCounter | None = None  # opened on the first call's reset

    @property
    def pidfd(self) -> int:
        """A pidfd for PID 1 until destroy() (then -1)."""
        return self._pidfd

    def kill(self) -> None:
        if self._reaped:
            return
        if self._frozen and self.cgroup is not None:
            # A frozen PID 1 would act on the kill signal only once thawed,
            # and the function's threads would run meanwhile: SIGKILL every
            # process while frozen, then thaw (kill_all does both).
            self.cgroup.kill_all()
            self._frozen = False
            return
        # PID 1 SIGKILLs every other process (none can leave the pid
        # namespace, daemonised or not) and exits with the worker's status;
        # destroy() falls back to SIGKILL on PID 1, which ends them all too.
        if self.cgroup is not None:
            self.cgroup.unthrottle()
        self._signal(KILL_ALL_SIGNAL)

    def _signal(self, sig: int) -> None:
        try:
            signal.pidfd_send_signal(self._pidfd, sig)
        except OSError:
            pass  # gone already (or reaped, the pidfd closed)

    def oom_killed(self) -> bool:
        return self.cgroup is not None and self.cgroup.oom_kill_count() > 0

    def reset_peak_memory(self) -> None:
        if self._peak is None:
            if self.cgroup is None:
                return
            self._peak = self.cgroup.peak_counter()
            if self._peak is None:
                return
        self._peak.reset()

    def peak_memory_bytes(self) -> int | None:
        if self._peak is not None:
            return self._peak.read()
        return None if self.cgroup is None else self.cgroup.peak_memory_bytes()

    def task_count(self) -> int:
        if self.cgroup is None:
            return 0
        try:
            return self.cgroup.task_count()
        except OSError:
            return 0

    def freeze(self) -> bool:
        if self._frozen:
            return True
        if self.cgroup is None or self._reaped or (self._shares_cgroup is not None and self._shares_cgroup()):
            return False
        try:
            self.cgroup.freeze()
        except OSError as exc:
            log.warning("sandbox %s: cannot freeze: %s", self.cgroup.name, exc)
            return False
        self._frozen = True
        return True

    def thaw(self) -> None:
        if self._frozen and self.cgroup is not None:
            self.cgroup.thaw()
            self._frozen = False

    def fit(self, memory_mb: int) -> None:
        if self.cgroup is not None:
            self.cgroup.set_limits(memory_mb, self._cpu_limit)

    def limit_cpu(self, memory_mb: int) -> None:
        if self.cgroup is not None:
            self.cgroup.set_cpu_share(memory_mb)

    def destroy(self) -> int | None:
        status = None
        if not self._reaped:
            raw = self._reap(0)
            if raw is None:
                self.kill()
                raw = self._reap(INIT_EXIT_TIMEOUT_S)
                if raw is None:
                    self._signal(signal.SIGKILL)
                    raw = self._reap(None)
            status = None if raw is None else worker_status(raw)
            self._reaped = True
            if self._netns_back is not None:
                netns_back, self._netns_back = self._netns_back, None
                # Reaped here: PID 1 outlived every process of its pid
                # namespace, so none is left in the network namespace. Reaped
                # elsewhere (never expected): no such proof, no reuse.
                netns_back(raw is not None)
            if self._forget is not None:
                self._forget(self.pid)
            if self._pidfd >= 0:
                pidfd, self._pidfd = self._pidfd, -1
                os.close(pidfd)
        if self._peak is not None:
            self._peak.close()
            self._peak = None
        if self.cgroup is not None:
            cgroup, self.cgroup = self.cgroup, None
            cgroup.close()  # a stage is removed later, by the stager
            try:
                if self._remove_cgroup is not None:
                    self._remove_cgroup(cgroup)
                else:
                    cgroup.remove()
            except OSError as exc:
                # Every process is gone (PID 1 was reaped), so this is the
                # kernel still tearing down; the manager's close() removes
                # whatever is left under its root. Not the caller's problem.
                log.warning("sandbox %s: %s", cgroup.name, exc)
        if self._release is not None:
            release, self._release = self._release, None
            release()
        self.control.close()
        return status

    def _reap(self, timeout_s: float | None) -> int | None:
        """PID 1's raw wait status once it has exited (waiting up to
        timeout_s; None: as long as it takes), else None. None too if it was
        reaped elsewhere (it never should be)."""
        try:
            if timeout_s:
                poller = select.poll()
                poller.register(self._pidfd, select.POLLIN)
                if not poller.poll(int(timeout_s * 1000)):
                    return None
            info = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | (0 if timeout_s is None else os.WNOHANG))
        except ChildProcessError:
            return None
        return None if info is None else _raw_status(info)


def _give_back_netns(pool: NetnsPool, fd: int, reusable: bool) -> None:
    if reusable:
        pool.give_back(fd)
    else:
        pool.drop(fd)


def _raw_status(info: os.waitid_result) -> int:
    """os.waitid's answer as the raw status os.waitpid would give."""
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    if info.si_code == os.CLD_DUMPED:
        return info.si_status | 0x80
    return info.si_status  # CLD_KILLED


def worker_status(init_status: int) -> int:
    """The worker's wait status, from PID 1's. PID 1 exits with the worker's
    exit code, or 128 + the signal that killed it (csrc/spawn.c)."""
    if os.WIFEXITED(init_status):
        code = os.WEXITSTATUS(init_status)
        if 128 < code < 128 + 65:
            return code - 128  # a raw status whose WTERMSIG is that signal
    return init_status


class _Plan:
    """A root's mount plan: its ops (only the sandbox's own when it has a
    prepared root, tree), and their C and wire forms, each made on first
    use. Never changed but for those two forms, so threads may share one."""

    __slots__ = ("ops", "tree", "_compiled", "_packed")

    def __init__(self, ops: list[nsspawn.MountOp], tree: Tree | None) -> None:
        self.ops = ops
        self.tree = tree
        self._compiled: nsspawn.CompiledOps | None = None
        self._packed: spawn_wire.PackedOps | None = None

    def compiled_ops(self) -> nsspawn.CompiledOps:
        if self._compiled is None:
            self._compiled = nsspawn.CompiledOps(self.ops)
        return self._compiled

    def packed_ops(self) -> spawn_wire.PackedOps:
        if self._packed is None:
            self._packed = spawn_wire.PackedOps(self.ops)
        return self._packed


class _HeldRoot(NamedTuple):
    """A prepared root as one spawn holds it: its own duplicate of the
    tree's fd (or -1: none), and the tree's root's st_dev and st_ino."""

    fd: int
    dev: int
    ino: int


_NO_ROOT = _HeldRoot(-1, 0, 0)


class _Interpreter:
    """One interpreter's part of the backend: what its sandboxes bind, and
    its own runtime zygote (a fork carries its parent's interpreter, so
    every Python version needs a zygote of its own), started by its first
    spawn and started again if it dies."""

    def __init__(self, root: RuntimeRoot, zygote_wanted: bool) -> None:
        self.root = root
        self.runtime = root.runtime
        # From the executable a worker runs: <prefix>/bin/python3.X.
        self.prefix = interpreters.install_prefix(root.python)
        self.hidden = rootfs.host_site_dirs(self.prefix)
        self.sources = {rel: os.path.realpath(src) for rel, src in root.sources.items()}
        self.zygote: ZygoteClient | None = None
        # An interpreter that cannot run one (the start-up lines say why)
        # execs its workers from the start.
        self.zygote_wanted = zygote_wanted and root.zygote_unavailable() is None
        self.zygote_starts: collections.deque[float] = collections.deque(maxlen=ZYGOTE_STARTS_PER_WINDOW)
        self.stager: CgroupStager | None = None  # v1 only: see cgroup_stager.py


class NamespacedBackend:
    name = "namespaced"

    def __init__(
        self,
        runtime_root: RuntimeRoot,
        *,
        cgroups: cgroups_mod.CgroupManager | None | str = "auto",
        seccomp: bool = True,
        host_id_base: int = HOST_ID_BASE,
        netns_pool: int = 8,
        netns_reuse: bool = False,
        pdeathsig: bool | None = None,
        cpu_limit: bool = True,
        exec_init: bool = True,
        zygote: bool = True,
        tasks_max: int | None = None,
        runtimes: Mapping[str, RuntimeRoot] | None = None,
        prepared_root: bool = True,
    ) -> None:
        """runtime_root: the default interpreter's (a spec whose runtime is
        empty runs there); runtimes: the other interpreters', by runtime name.
        prepared_root: build what the sandboxes of a runtime share once and
        clone it into each (off: each builds its whole root itself)."""
        self._root = runtime_root
        self._seccomp = seccomp
        # PR_SET_PDEATHSIG fires when the *thread* that spawned a sandbox
        # exits, not the process. None: only sandboxes spawned on the main
        # thread get it; True: the caller promises a thread that lives as
        # long as the server (a dedicated spawner thread). Either way a dead
        # server's control sockets close and the workers exit.
        self.pdeathsig = pdeathsig
        self._privileged = os.geteuid() == 0
        self.warnings: list[str] = []
        if cgroups == "auto":
            manager, reasons = cgroups_mod.detect(cpu_limit=cpu_limit, tasks_max=tasks_max)
            self.warnings.extend(reasons)
            self._cgroups = manager
        else:
            self._cgroups = cgroups  # type: ignore[assignment]
        if self._cgroups is None:
            self.warnings.append(
                "no cgroups: memory and processes bounded by RLIMIT_DATA and RLIMIT_NPROC only, CPU unlimited, OOM kills not detected"
            )
        elif not memory_peak.per_call_peak(self._cgroups.version):
            self.warnings.append(
                "Max Memory Used is each instance's peak since it started, not each call's: memory.peak cannot be reset before Linux 6.12"
            )
        try:
            if not exec_init:
                raise OSError(errno.ENOENT, "turned off by the caller")
            self._init_fd = nsspawn.init_memfd()
        except OSError as exc:
            # Still isolated, but PID 1 stays a copy of the server process.
            self._init_fd = -1
            self.warnings.append(f"PID 1 runs in a copy of the server: {exc.strerror}")
        # Only root can make namespaces the sandbox's user namespace does
        # not own; without root every sandbox creates its own.
        # netns_reuse: whether a pooled namespace may serve a second sandbox
        # (off: netns_pool.py says why it cannot be proved safe).
        self._netns_pool = NetnsPool(netns_pool, reuse=netns_reuse) if netns_pool > 0 and self._privileged else None
        # The lifeline: every sandbox's PID 1 holds the read end, only this
        # process the write end (close-on-exec, so no child inherits it).
        # When this process dies, by kill -9 or any other way, the pipe hangs
        # up and each PID 1 ends its sandbox: unlike PR_SET_PDEATHSIG this
        # does not depend on which thread spawned the sandbox.
        self._lifeline_r, self._lifeline_w = os.pipe()
        # Read-only even for its owner: where a sandbox runs as the server's
        # own uid (no root), a process there that reached the pipe through
        # /proc could otherwise open a write end of it, and keep its sandbox
        # alive after the server or end every sandbox with one byte. Each
        # PID 1 reopens it for reading only (spawn.c's own_lifeline).
        os.fchmod(self._lifeline_r, 0o400)
        # Python workers fork from a runtime zygote instead of starting an
        # interpreter each (zygote.py), one per Python version; without one
        # they are exec'd. Each is started by its interpreter's first spawn:
        # a server nobody calls runs no process.
        self.zygote_enabled = zygote
        self._interpreters: dict[str, _Interpreter] = {}
        for root in (runtime_root, *(runtimes or {}).values()):
            self._interpreters.setdefault(root.runtime, _Interpreter(root, zygote))
        self._default = self._interpreters[runtime_root.runtime]
        self._zygote_lock = threading.Lock()
        self.zygote_restarts = 0
        # PID 1s of live sandboxes: any other child of ours in a pid
        # namespace of its own is a stray (see _reap_strays).
        self._pid1s: set[int] = set()
        self._egress: Egress | None = None
        # The root's mount plan per distinct (code, layers, /tmp size, resolv.conf):
        # the ops, and their C form (for spawns here) or wire form (for the
        # zygote), each built on first use.
        # With its prepared root (or None): the ops are then only the
        # sandbox's own (rootfs.split).
        self._plans: dict[tuple, _Plan] = {}
        self._plans_lock = threading.Lock()
        # One per runtime (and resolv.conf). Only root can build them (a new
        # tmpfs in the host's user namespace).
        self._prepared_roots = PreparedRoots(host_id_base, enabled=prepared_root and self._privileged)
        self._resolv_conf = ""
        self._boot_id = str(uuid.uuid4())  # what /proc/sys/kernel/random/boot_id says inside
        if self._privileged:
            base = host_id_base
            self._uid_map = f"0 {base} 1\n{rootfs.SANDBOX_UID} {base + 1} 1\n"
            self._gid_map = f"0 {base} 1\n{rootfs.SANDBOX_GID} {base + 1} 1\n"
        else:
            # An unprivileged process may map exactly one id: its own.
            self._uid_map = f"{rootfs.SANDBOX_UID} {os.geteuid()} 1\n"
            self._gid_map = f"{rootfs.SANDBOX_GID} {os.getegid()} 1\n"

    @property
    def cgroups(self) -> cgroups_mod.CgroupManager | None:
        return self._cgroups

    def _interpreter(self, spec: SandboxSpec) -> _Interpreter:
        if not spec.runtime:
            return self._default
        slot = self._interpreters.get(spec.runtime)
        if slot is None:
            raise OSError(errno.ENOENT, f"no interpreter for {spec.runtime} (this backend runs {', '.join(self._interpreters)})")
        return slot

    def layout(self, spec: SandboxSpec, resolv_conf: str = "") -> rootfs.RootLayout:
        slot = self._interpreter(spec)
        return rootfs.RootLayout(
            python_prefix=slot.prefix,
            runtime_sources=slot.sources,
            code_dir=spec.code_dir,
            layers=spec.layers,
            ephemeral_mb=spec.ephemeral_mb,
            hidden_dirs=slot.hidden,
            resolv_conf=resolv_conf,
            boot_id=self._boot_id,
        )

    @property
    def zygote(self) -> ZygoteClient | None:
        """The default interpreter's zygote, if one was started."""
        return self._default.zygote

    @property
    def _stager(self) -> CgroupStager | None:
        return self._default.stager

    def zygotes(self) -> dict[str, ZygoteClient]:
        """Every running zygote, by runtime name."""
        return {name: slot.zygote for name, slot in self._interpreters.items() if slot.zygote is not None and slot.zygote.alive}

    def zygote_running(self, runtime: str = "") -> bool:
        slot = self._interpreters.get(runtime) if runtime else self._default
        return slot is not None and self._running_zygote(slot) is not None

    def _running_zygote(self, slot: _Interpreter) -> ZygoteClient | None:
        zygote = slot.zygote
        return zygote if zygote is not None and zygote.alive else None

    def _started_zygote(self, slot: _Interpreter) -> ZygoteClient | None:
        """The interpreter's running zygote, started (or started again) if
        need be; None when its sandboxes exec their own interpreter."""
        zygote = self._running_zygote(slot)
        if zygote is not None or not slot.zygote_wanted:
            return zygote
        with self._zygote_lock:
            if slot.zygote is not None and not slot.zygote.alive:
                self._retire_zygote(slot)
            if slot.zygote is None and slot.zygote_wanted:
                self._start_zygote(slot)
            return slot.zygote

    def _start_zygote(self, slot: _Interpreter) -> None:
        now = time.monotonic()
        starts = slot.zygote_starts
        if len(starts) == starts.maxlen and now - starts[0] < ZYGOTE_START_WINDOW_S:
            slot.zygote_wanted = False
            log.warning(
                "runtime zygote for %s died %d times within %.0f s: its sandboxes now start their own interpreter",
                slot.runtime,
                len(starts),
                ZYGOTE_START_WINDOW_S,
            )
            return
        restart = bool(starts)
        starts.append(now)
        try:
            slot.zygote = ZygoteClient(slot.root.python, slot.root.zygote_root(), self._lifeline_r, BASE_ENV)
        except OSError as exc:
            slot.zygote_wanted = False
            log.warning("no runtime zygote for %s, each of its sandboxes starts its own interpreter: %s", slot.runtime, exc.strerror or exc)
            return
        if restart:
            self.zygote_restarts += 1
            log.warning("runtime zygote for %s started again (pid %d); running sandboxes were not affected", slot.runtime, slot.zygote.pid)
        if isinstance(self._cgroups, CgroupV1Manager) and self._privileged:
            slot.stager = CgroupStager(self._cgroups, slot.zygote.pid)

    def _retire_zygote(self, slot: _Interpreter) -> None:
        """A zygote that has gone: its stager and client go too. Sandboxes it
        forked do not depend on it; a stage that still holds a sandbox is
        removed when that sandbox is destroyed (CgroupStager.retire)."""
        zygote, slot.zygote = slot.zygote, None
        stager, slot.stager = slot.stager, None
        if stager is not None:
            stager.stop()
        if zygote is not None:
            log.warning("runtime zygote for %s (pid %d) is gone; the next spawn starts another", slot.runtime, zygote.pid)
            zygote.close()
        if stager is not None:
            stager.close()
        self._reap_strays()

    def _reap_strays(self) -> None:
        """Reap sandbox PID 1s nobody owns: a zygote that died in the middle
        of a spawn leaves its clone (our child, by CLONE_PARENT) without a
        pidfd here. Such a stray exits at once (its handshake hangs up) or as
        soon as its worker finds its control socket closed; only exited
        ones (zombies) are reaped, so no pid here can have been reused."""
        for pid in _zombie_children_in_own_pid_namespace():
            if pid not in self._pid1s:
                try:
                    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
                except ChildProcessError:
                    pass

    def spawn(self, spec: SandboxSpec) -> NamespacedSandbox:
        slot = self._interpreter(spec)
        argv = worker_argv(slot.root.python, rootfs.RUNTIME_DIR, CONTROL_FD)
        for attempt in range(2):
            zygote = self._started_zygote(slot)
            try:
                if zygote is not None:
                    return self._spawn(spec, argv, None, None, zygote=zygote, stager=slot.stager, fork=True)
                # No zygote of its own: an exec'd interpreter, cloned from
                # the default one's zygote when that runs (a smaller process
                # to copy than this one).
                return self._spawn(spec, argv, None, None, zygote=self._running_zygote(self._default), fork=False)
            except ZygoteGone:
                # It died under this spawn (killed, say): a new one (or an
                # exec'd interpreter) serves the retry, with fresh resources.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def spawn_command(
        self, spec: SandboxSpec, argv: list[str], env: dict[str, str] | None = None, path: str | None = None
    ) -> NamespacedSandbox:
        """Run any program in a sandbox built for spec, with the control
        socket on fd 3 and /dev/null on 0-2. Tests, doctor and the hostile
        suite use it to run probes. Cloned from the default interpreter's
        zygote when it is running (a smaller process to copy than this
        one), never starting it."""
        return self._spawn(spec, argv, env, path, zygote=self._running_zygote(self._default), fork=False)

    def _spawn(
        self,
        spec: SandboxSpec,
        argv: list[str],
        env: dict[str, str] | None,
        path: str | None,
        *,
        zygote: ZygoteClient | None,
        fork: bool,
        stager: CgroupStager | None = None,
    ) -> NamespacedSandbox:
        """zygote: the one that clones the sandbox (fork: and forks its
        worker; stager: that zygote's), or None to clone from this process."""
        if spec.network not in ("none", "egress"):
            raise OSError(errno.EINVAL, f"network {spec.network!r}: expected 'none' or 'egress'")
        lease = None
        netns_fd = self._netns_pool.take() if self._netns_pool else None
        if spec.network == "egress":
            if not self._privileged:
                raise OSError(errno.ENOTSUP, "network 'egress' needs root (a veth pair and NAT)")
            if netns_fd is None:
                netns_fd = netns_create()
            try:
                lease = self._egress_for_spawn().attach(netns_fd)
            except BaseException:
                self._close_netns(netns_fd)
                raise
        # Staged cgroups for workers only: a probe's sandbox is placed the
        # usual way (attached after the clone) and so removed at once.
        stager = stager if zygote is not None and fork else None
        # With reuse on, a pooled namespace with nothing attached goes back
        # to the pool when the sandbox is destroyed (netns_pool.py says when
        # it is reused); otherwise it dies with the sandbox.
        pool = self._netns_pool
        recycle_to = pool if pool is not None and pool.reuse and netns_fd is not None and lease is None else None
        with stager.spawning(spec.memory_mb) if stager else contextlib.nullcontext() as staged:
            return self._spawn_placed(spec, argv, env, path, zygote, fork, netns_fd, lease, staged, stager, recycle_to)

    def _spawn_placed(
        self,
        spec: SandboxSpec,
        argv: list[str],
        env: dict[str, str] | None,
        path: str | None,
        zygote: ZygoteClient | None,
        fork: bool,
        netns_fd: int | None,
        lease,
        staged,
        stager: CgroupStager | None,
        recycle_to: NetnsPool | None = None,
    ) -> NamespacedSandbox:
        """spawn_command, once the network is chosen. staged: a cgroup the
        zygote sits in, to be born in, or None to create and attach one;
        recycle_to: the pool netns_fd goes back to after the sandbox."""
        try:
            if staged is not None:
                cgroup = staged
            else:
                cgroup = self._cgroups.create(spec.instance_id, spec.memory_mb) if self._cgroups else None
        except BaseException:
            if netns_fd is not None:
                self._close_netns(netns_fd)
            self._release_lease(lease)
            raise
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Born in a staged cgroup: nothing to attach.
            procs_fds, v2_fd = cgroup.attach_handles() if cgroup and staged is None else ([], -1)
            spawned = False
            held = _NO_ROOT
            try:
                # The ops and the prepared root from one plan, the root's fd
                # this spawn's own (see prepared_roots.py).
                plan, held = self._held_plan(spec)
                cfg = self._config(spec, argv, env, path, child.fileno(), procs_fds, v2_fd, netns_fd, held)
                if zygote is not None:
                    pid, pidfd = self._spawn_zygote(zygote, cfg, plan.packed_ops(), fork)
                else:
                    result = nsspawn.spawn(cfg, plan.compiled_ops())
                    pid, pidfd = result.pid, result.pidfd
                self._pid1s.add(pid)
                spawned = True
            finally:
                for fd in procs_fds + ([v2_fd] if v2_fd >= 0 else []):
                    os.close(fd)
                if held.fd >= 0:
                    os.close(held.fd)
                if netns_fd is not None and not (spawned and recycle_to is not None):
                    # The sandbox's processes keep it alive. After a failed
                    # spawn a stray clone may hold it: never reused.
                    self._close_netns(netns_fd)
        except BaseException:
            parent.close()
            if cgroup is not None and staged is None:
                cgroup.remove()  # a stage is the stager's to remove
            self._release_lease(lease)
            raise
        finally:
            child.close()
        release = None
        if lease is not None:
            assert self._egress is not None  # a lease comes from it
            release = functools.partial(self._egress.release, lease)
        # A staged cgroup comes from the stager, which retires it.
        placed_by = stager if staged is not None else None
        return NamespacedSandbox(
            pid,
            parent,
            cgroup,
            release,
            pidfd,
            placed_by.retire if placed_by is not None else None,
            self._pid1s.discard,
            functools.partial(placed_by.holds, staged) if placed_by is not None else None,
            cpu_limit=self._cgroups.cpu_limit if self._cgroups is not None else True,
            netns_back=functools.partial(_give_back_netns, recycle_to, netns_fd)
            if recycle_to is not None and netns_fd is not None
            else None,
        )

    def _close_netns(self, fd: int) -> None:
        """Closes a namespace fd that will not go back to the pool (the
        pool forgets it, if it was one of its own)."""
        if self._netns_pool is not None:
            self._netns_pool.drop(fd)
        else:
            os.close(fd)

    def _release_lease(self, lease) -> None:
        if lease is not None:
            assert self._egress is not None  # a lease comes from it
            self._egress.release(lease)

    def _spawn_zygote(self, zygote: ZygoteClient, cfg: nsspawn.SpawnConfig, ops: spawn_wire.PackedOps, fork: bool) -> tuple[int, int]:
        """(pid, pidfd) of a sandbox whose worker the zygote forked. If the
        zygote goes during the spawn, the spawn fails with ZygoteGone (its
        socket, cgroup and namespace may already be in a stray clone's
        hands, so a retry starts from fresh ones)."""
        try:
            return zygote.spawn(cfg, ops, fork=fork)
        except ZygoteGone as exc:
            log.warning("runtime zygote gone during a spawn: %s", exc)
            raise

    def _plan(self, spec: SandboxSpec) -> _Plan:
        """The root's mount plan, built once per distinct plan (see _plans)."""
        key = self._plan_key(spec)
        if self._prepared_roots.due():
            replaced = self._prepared_roots.recheck()
            if replaced:
                with self._plans_lock:
                    for stale in [k for k, p in self._plans.items() if p.tree in replaced]:
                        del self._plans[stale]
        plan = self._plans.get(key)
        if plan is None:
            resolv = key[-1]
            try:
                ops = rootfs.plan(self.layout(spec, resolv_conf=resolv))
            except ValueError as exc:
                raise OSError(errno.ENOTSUP, f"root plan: {exc}") from exc
            shared, own = rootfs.split(ops)
            tree = self._prepared_roots.get(shared)
            plan = _Plan(own if tree is not None else ops, tree)
            with self._plans_lock:  # spawns may run on several threads
                if key not in self._plans and len(self._plans) >= PLAN_CACHE_SIZE:
                    self._plans.pop(next(iter(self._plans)))  # the oldest
                self._plans[key] = plan
        return plan

    def _plan_key(self, spec: SandboxSpec) -> tuple:
        resolv = self._resolv_conf if spec.network == "egress" else ""
        return (spec.runtime or self._default.runtime, spec.code_dir, spec.layers, spec.ephemeral_mb, resolv)

    def _held_plan(self, spec: SandboxSpec) -> tuple[_Plan, _HeldRoot]:
        """The root's mount plan and the prepared root it was made for, its
        fd a duplicate that the caller closes after the spawn. A plan whose
        root was replaced since it was made is made again."""
        for _ in range(3):
            plan = self._plan(spec)
            if plan.tree is None:
                return plan, _NO_ROOT
            fd = self._prepared_roots.hold(plan.tree)
            if fd >= 0:
                return plan, _HeldRoot(fd, plan.tree.dev, plan.tree.ino)
            with self._plans_lock:
                for stale in [k for k, p in self._plans.items() if p is plan]:
                    del self._plans[stale]
        raise OSError(errno.EAGAIN, "prepared root: replaced while every plan for it was made")

    def forget_code(self, code_dir: str) -> None:
        """The code at code_dir was removed: its plans can never be used again."""
        with self._plans_lock:
            for key in [k for k in self._plans if code_dir in k]:  # see _plan_key
                del self._plans[key]

    def _egress_for_spawn(self) -> Egress:
        # Created on first use: it changes the host (nftables, ip_forward).
        if self._egress is None:
            self._egress = Egress()
            self._resolv_conf = host_nameservers()
        return self._egress

    def _config(
        self,
        spec: SandboxSpec,
        argv: list[str],
        env: dict[str, str] | None,
        path: str | None,
        control_fd: int,
        procs_fds: list[int],
        v2_fd: int,
        netns_fd: int | None = None,
        held: _HeldRoot | None = None,
    ) -> nsspawn.SpawnConfig:
        namespaces = ALL_NAMESPACES
        if netns_fd is not None:
            namespaces &= ~nsspawn.CLONE_NEWNET  # cloned into the pooled one
        late_cgroup_ns = v2_fd < 0
        if not late_cgroup_ns:
            # Born in its cgroup, so the new cgroup namespace is rooted there.
            namespaces |= nsspawn.CLONE_NEWCGROUP
        return nsspawn.SpawnConfig(
            path=path or argv[0],
            argv=argv,
            env={**BASE_ENV, **(env or {})},
            control_fd=control_fd,
            ops=[],  # passed compiled, see _held_plan
            cwd=rootfs.TASK_ROOT,
            hostname=rootfs.HOSTNAME,
            namespaces=namespaces,
            # v1 places the child after the clone: only then may it create
            # its cgroup namespace, which is rooted wherever it stands.
            unshare_cgroup_late=late_cgroup_ns,
            cgroup_v2_fd=v2_fd,
            cgroup_procs_fds=procs_fds,
            uid_map=self._uid_map,
            gid_map=self._gid_map,
            deny_setgroups=not self._privileged,
            setup_uid=0 if self._privileged else nsspawn.NO_ID,
            setup_gid=0 if self._privileged else nsspawn.NO_ID,
            sandbox_uid=rootfs.SANDBOX_UID,
            sandbox_gid=rootfs.SANDBOX_GID,
            loopback_up=netns_fd is None,  # a pooled namespace comes with lo up
            seccomp=self._seccomp,
            nofile=1024,
            # Without cgroups, rlimits bound what they can (docs/architecture.md).
            rlimit_data_bytes=0 if self._cgroups else spec.memory_mb * 1024 * 1024,
            rlimit_nproc=0 if self._cgroups else cgroups_mod.PIDS_MAX,
            pdeathsig=(threading.current_thread() is threading.main_thread() if self.pdeathsig is None else self.pdeathsig),
            init_fd=self._init_fd,
            netns_fd=-1 if netns_fd is None else netns_fd,
            lifeline_fd=self._lifeline_r,
            root_template_fd=held.fd if held is not None else -1,
            root_template_dev=held.dev if held is not None else 0,
            root_template_ino=held.ino if held is not None else 0,
        )

    def protections(self) -> dict[str, bool]:
        limits = self._cgroups.enforced() if self._cgroups else {}
        return {
            "user_namespace": True,
            "pid_namespace": True,
            "mount_namespace": True,
            "network_namespace": True,
            "uts_namespace": True,
            "ipc_namespace": True,
            "cgroup_namespace": True,
            "private_root": True,
            # csrc/seccomp.c: calls nobody listed are refused, and sockets
            # only of the families the runtimes use.
            "seccomp_allow_list": self._seccomp,
            "socket_family_filter": self._seccomp,
            # rootfs.py: /proc's host facts masked or fixed, and no host path
            # named in /proc/self/mountinfo.
            "proc_host_info_masked": True,
            "no_capabilities": True,
            "no_new_privs": True,
            # Without cgroups these are approximated by RLIMIT_DATA and
            # RLIMIT_NPROC, which is weaker and so reported as off.
            "memory_limit": limits.get("memory_limit", False),
            "cpu_limit": limits.get("cpu_limit", False),
            "pids_limit": limits.get("pids_limit", False),
            "host_pids_cap": limits.get("host_pids_cap", False),
            "idle_freeze": limits.get("idle_freeze", False),
        }

    def task_usage(self) -> tuple[int, int] | None:
        manager = self._cgroups
        if manager is None or manager.tasks_max is None:
            return None
        return manager.tasks_in_use(), manager.tasks_max

    def statistics(self) -> dict[str, int]:
        """A snapshot for doctor, bench and /metrics."""
        pool = self._netns_pool
        return {
            "netns_ready": pool.ready() if pool else 0,
            "netns_created": pool.created if pool else 0,
            "netns_pool_misses": pool.misses if pool else 0,
            "netns_recycled": pool.recycled if pool else 0,
            "netns_discarded": pool.discarded if pool else 0,
            "compiled_plans": len(self._plans),
            "zygote": len(self.zygotes()),
            "zygote_restarts": self.zygote_restarts,
            "cgroup_stage_ready": sum(int(s.stager is not None and s.stager.ready) for s in self._interpreters.values()),
        }

    @property
    def netns_pool(self) -> NetnsPool | None:
        return self._netns_pool

    def close(self) -> None:
        slots = list(self._interpreters.values())
        for slot in slots:
            slot.zygote_wanted = False
            if slot.stager is not None:
                slot.stager.stop()
        for slot in slots:
            if slot.zygote is not None:
                # Its sandboxes are not its children: they end with the lifeline.
                slot.zygote.close()
                slot.zygote = None
        for slot in slots:
            if slot.stager is not None:
                slot.stager.close()
                slot.stager = None
        if self._egress is not None:
            self._egress.close()
            self._egress = None
        if self._netns_pool is not None:
            self._netns_pool.close()
            self._netns_pool = None
        if self._init_fd >= 0:
            os.close(self._init_fd)
            self._init_fd = -1
        with self._plans_lock:
            self._plans.clear()  # they hold the prepared roots
        self._prepared_roots.close()
        if self._lifeline_w >= 0:
            # Any sandbox still running ends with it.
            os.close(self._lifeline_w)
            os.close(self._lifeline_r)
            self._lifeline_w = self._lifeline_r = -1
        if self._cgroups is not None:
            self._cgroups.close()
            self._cgroups = None


def _zombie_children_in_own_pid_namespace() -> list[int]:
    """This process's exited children that were a pid namespace's PID 1:
    the only children of the server that live in a nested pid namespace
    are sandboxes'."""
    found: list[int] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                children = f.read().split()
        except OSError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            if status.get("State", "").strip().startswith("Z") and len(status.get("NSpid", "").split()) > 1:
                found.append(int(child))
    return found
