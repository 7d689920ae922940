"""The plain backend: a worker is an ordinary child process.

No isolation beyond a separate process and session. It exists for hosts
where namespaces are unavailable, and as the reference the isolating
backends are tested against. The server reports it loudly when in use.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
from collections.abc import Mapping

from .runtime_root import RuntimeRoot, worker_argv
from .spec import SandboxSpec

CONTROL_FD = 3


class ProcessSandbox:
    pidfd = -1  # the worker is this process's child: its pid stays its own until reaped

    def __init__(self, pid: int, control: socket.socket, task_root: str) -> None:
        self.pid = pid
        self.control = control
        self.task_root = task_root
        self._reaped = False

    def kill(self) -> None:
        try:
            # The worker leads its own session, so the group holds its children.
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def oom_killed(self) -> bool:
        return False

    def reset_peak_memory(self) -> None:
        # "5" resets the process's VmHWM to its current RSS (Linux 4.0+).
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass

    def peak_memory_bytes(self) -> int | None:
        # Without a cgroup, the worker's own high-water mark is the best we have.
        try:
            with open(f"/proc/{self.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return None

    def task_count(self) -> int:
        return 0

    def freeze(self) -> bool:
        return False  # SIGSTOP would be visible to the worker and its children

    def thaw(self) -> None:
        pass

    def fit(self, memory_mb: int) -> None:
        pass

    def limit_cpu(self, memory_mb: int) -> None:
        pass

    def destroy(self) -> int | None:
        status = None
        if not self._reaped:
            # Let a worker that already exited report its own status before
            # the group is killed; only a live one gets SIGKILL.
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    self.kill()
                    _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                status = None
            self._reaped = True
            self.kill()  # the session's leftovers, if any
        self.control.close()
        return status


class ProcessBackend:
    name = "process"
    zygote_enabled = False  # every worker is an interpreter of its own

    def __init__(self, runtime_root: RuntimeRoot, runtimes: Mapping[str, RuntimeRoot] | None = None) -> None:
        """runtime_root: the default interpreter's; runtimes: the others', by runtime name."""
        self._root = runtime_root
        self._roots = {runtime_root.runtime: runtime_root, **(runtimes or {})}

    def spawn(self, spec: SandboxSpec) -> ProcessSandbox:
        root = self._roots.get(spec.runtime) if spec.runtime else self._root
        if root is None:
            raise OSError(errno.ENOENT, f"no interpreter for {spec.runtime} (this backend runs {', '.join(self._roots)})")
        if spec.layers:
            # A plain process sees the host's /opt: running it without its
            # layers (or with the host's) would be worse than refusing.
            raise OSError(errno.EOPNOTSUPP, "layers are mounted at /opt only in a namespaced sandbox (this server runs --sandbox process)")
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                pid = os.posix_spawn(
                    root.python,
                    worker_argv(root.python, root.path, CONTROL_FD),
                    {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, devnull, 0),
                        (os.POSIX_SPAWN_DUP2, child.fileno(), CONTROL_FD),
                    ],
                    setsid=True,
                )
            finally:
                os.close(devnull)
        except OSError as exc:
            parent.close()
            raise OSError(exc.errno, f"spawn worker: {exc.strerror}") from exc
        finally:
            child.close()
        return ProcessSandbox(pid, parent, spec.code_dir)

    def protections(self) -> dict[str, bool]:
        return {name: False for name in PROTECTIONS}

    def task_usage(self) -> tuple[int, int] | None:
        return None

    def forget_code(self, code_dir: str) -> None:
        pass

    def zygote_running(self, runtime: str = "") -> bool:
        return False

    def close(self) -> None:
        pass


PROTECTIONS = (
    "user_namespace",
    "pid_namespace",
    "mount_namespace",
    "network_namespace",
    "uts_namespace",
    "ipc_namespace",
    "cgroup_namespace",
    "private_root",
    "seccomp_allow_list",
    "socket_family_filter",
    "proc_host_info_masked",
    "no_capabilities",
    "no_new_privs",
    "memory_limit",
    "cpu_limit",
    "pids_limit",
    "host_pids_cap",
    "idle_freeze",
)
