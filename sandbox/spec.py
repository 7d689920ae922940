"""What the gateway asks of a sandbox backend, as typing.Protocols.

The pool only ever talks to these two protocols, so a new way of starting
workers (namespaces as root, user namespaces without root, zygote forks)
is a new backend and nothing else changes.
"""

from __future__ import annotations

import socket
from typing import Protocol

import msgspec


class SandboxSpec(msgspec.Struct, frozen=True):
    """Everything a backend needs to start one instance of a function."""

    instance_id: str
    function_name: str
    code_dir: str  # host path of the unpacked code; the worker sees it at task_root
    memory_mb: int = 128
    ephemeral_mb: int = 512
    timeout_s: float = 3.0
    layers: tuple[str, ...] = ()  # host paths, seen under /opt in order
    network: str = "none"  # "none": loopback only; "egress": NAT to the outside
    runtime: str = ""  # the interpreter, by Lambda runtime name ("python3.12"); "" the backend's default


class Sandbox(Protocol):
    """One running instance. The pool owns it from spawn to destroy."""

    pid: int
    control: socket.socket  # the gateway's end of the control socketpair
    task_root: str  # where the worker sees the function's code

    @property
    def pidfd(self) -> int:
        """A pidfd for PID 1 (owned by the sandbox) until destroy(), then
        -1; -1 where the backend keeps none (plain processes: the pid is
        the gateway's own child, not reaped before destroy())."""

    def kill(self) -> None:
        """SIGKILL every process of this sandbox, daemonised ones included."""

    def oom_killed(self) -> bool:
        """True if the kernel OOM-killed something in this sandbox."""

    def reset_peak_memory(self) -> None:
        """Starts a new window for peak_memory_bytes: the next call's own,
        where the kernel can reset the counter (see memory_peak.py)."""

    def peak_memory_bytes(self) -> int | None:
        """High-water mark of memory use since the last reset, or None
        where it cannot be read."""

    def task_count(self) -> int:
        """Processes and threads in this sandbox now; 0 where not counted."""

    def freeze(self) -> bool:
        """Stop every process of this sandbox where it stands, until thaw():
        between calls, as Lambda freezes an idle execution environment.
        False (and nothing stopped) where it cannot be frozen now: no
        freezer, or a process that is not the sandbox's still shares its
        cgroup. kill() and destroy() work on a frozen sandbox."""

    def thaw(self) -> None:
        """Let a frozen sandbox run again; its processes are runnable when
        this returns. A no-op when not frozen. Raises OSError if it cannot."""

    def fit(self, memory_mb: int) -> None:
        """Give a sandbox started before its function was known (a spare)
        that function's memory limit, and the start-up CPU a new sandbox
        has until limit_cpu(). A no-op where there is no cgroup. Raises
        OSError if the cgroup refuses."""

    def limit_cpu(self, memory_mb: int) -> None:
        """Cut CPU to the share memory_mb buys. A sandbox starts with at
        least one vCPU, so that the runtime's start and the handler's
        import are not stretched by a small function's share; the pool
        calls this once init is over (or has run too long)."""

    def destroy(self) -> int | None:
        """Kill, reap and release every resource. Idempotent; may block briefly.

        Returns the worker's raw wait status (as os.waitpid gives it) the
        first time it is reaped, so the pool can tell "exit status 1" from
        "signal: killed"; None when unknown or already reaped."""


class SandboxBackend(Protocol):
    name: str
    # Python workers fork from a runtime zygote (zygote.py) instead of each
    # starting an interpreter; an interpreter that cannot run one still
    # starts its own (RuntimeRoot.zygote_unavailable says why).
    zygote_enabled: bool

    def spawn(self, spec: SandboxSpec) -> Sandbox:
        """Start a worker. Raises OSError naming the step that failed
        (EAGAIN: the cap on all sandboxes' tasks is reached)."""

    def task_usage(self) -> tuple[int, int] | None:
        """(tasks in use, cap) over every sandbox together, or None where
        this backend does not cap them."""

    def protections(self) -> dict[str, bool]:
        """Each isolation feature and whether this backend enforces it."""

    def forget_code(self, code_dir: str) -> None:
        """The code tree at code_dir was removed: drop what the backend
        keeps for it (mount plans)."""

    def zygote_running(self, runtime: str = "") -> bool:
        """Whether the zygote of a runtime's interpreter ("" the default's)
        is running now: a spawn since it started was forked from it."""

    def close(self) -> None:
        """Release backend-wide resources (cgroup roots, pooled netns)."""
