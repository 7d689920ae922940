"""`lambdalet doctor`: what this host supports, and what a server would use."""

from __future__ import annotations

import os
import pathlib
import platform
import sys
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lambdalet.sandbox.runtime_root import RuntimeRoot
    from lambdalet.sandbox.spec import SandboxBackend


def _cgroup_mode() -> str:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2 (unified)"
    if os.path.isdir("/sys/fs/cgroup/memory"):
        return "v1"
    return "none"


def _own_cgroups() -> list[str]:
    try:
        return pathlib.Path("/proc/self/cgroup").read_text().split()
    except OSError:
        return []


def _async_lines(data_dir: pathlib.Path) -> list[str]:
    import time

    from ..events.async_store import read_statistics

    stats = read_statistics(data_dir / "queue.db", time.time())
    if stats is None:
        return ["async queue: none yet (no queue.db)"]
    queues = ", ".join(f"{q} {n}" for q, n in stats["queues"].items()) or "empty"
    return [
        f"async queue: {stats['depth']} event(s) waiting, oldest {stats['oldest_age_s']:.0f} s old, {stats['retries']} retries so far",
        f"  destination queues: {queues}; schedules: {stats['schedules']}",
    ]


def report(data_dir: pathlib.Path) -> str:
    lines = [
        f"host: {platform.system()} {platform.release()} {platform.machine()}",
        f"python: {sys.version.split()[0]} at {os.path.realpath(sys.executable)}",
        f"running as uid {os.getuid()}",
        f"cgroups: {_cgroup_mode()}; this process: {', '.join(_own_cgroups()) or 'unknown'}",
    ]
    if not data_dir.is_dir():
        # Looking must not create it: `lambdalet serve` does, with its modes.
        lines.append(f"data dir: {data_dir} (does not exist yet; `lambdalet serve` creates it)")
        lines.append("server: none (no data dir)")
        with tempfile.TemporaryDirectory(prefix="lambdalet-doctor-") as scratch:
            return "\n".join(lines + _sandbox_lines(pathlib.Path(scratch)))
    lines.append(f"data dir: {data_dir}")
    lines.append(_server_line(data_dir))
    lines.extend(_async_lines(data_dir))
    return "\n".join(lines + _sandbox_lines(data_dir))


def _server_line(data_dir: pathlib.Path) -> str:
    from ..app.datadir import running_server

    holder = running_server(data_dir)
    if holder is None:
        return "server: none running on this data dir"
    return f"server: running, pid {holder.pid}" + (f", serving {holder.url}" if holder.url else "")


def _sandbox_lines(data_dir: pathlib.Path) -> list[str]:
    from lambdalet.sandbox.runtime_root import RuntimeRoot

    from ..app.config import ServerConfig
    from ..app.server import ConfigError, choose_backend

    lines: list[str] = []
    root = RuntimeRoot(data_dir / "runtime")
    try:
        backend, warnings = choose_backend(ServerConfig(data_dir=str(data_dir)), root, data_dir)
    except ConfigError as exc:
        lines.append("sandbox: NONE — `lambdalet serve` refuses to start here")
        lines.extend(f"  {line.strip()}" for line in str(exc).splitlines())
        return lines
    except Exception as exc:  # doctor reports; it never crashes on a bad host
        lines.append(f"sandbox: unavailable ({exc})")
        return lines
    lines.append(f"sandbox backend: {backend.name}")
    for name, on in backend.protections().items():
        lines.append(f"  {'on ' if on else 'OFF'}  {name}")
    for w in warnings:
        lines.append(f"WARNING {w}")
    tasks = backend.task_usage()
    if tasks is not None:
        from ..execution.pool import FREEZE_AFTER_S

        lines.append(
            f"host share: all functions' processes and threads together capped at {tasks[1]} by default "
            f"(`serve --tasks-max`; 1024 per sandbox), idle instances frozen after "
            f"{FREEZE_AFTER_S * 1000:g} ms (`serve --freeze-idle-ms`)"
        )
    try:
        lines.extend(_walls(backend, root))
        lines.append(_worker_start(backend))
        lines.extend(_runtime_lines(data_dir, backend))
    finally:
        backend.close()
    return lines


def _walls(backend, root: RuntimeRoot) -> list[str]:
    """The filter's policy, read from the filter, and what a probe sandbox
    saw of the walls from inside just now."""
    from lambdalet.sandbox import rootfs, seccomp, select

    if not backend.protections().get("seccomp_allow_list"):
        return []
    lines = [
        seccomp.summary(),
        f"/proc: hidden {', '.join(rootfs.PROC_MASKED)}; fixed text over "
        f"{', '.join([*rootfs.PROC_FIXED, rootfs.BOOT_ID])}; no host path in /proc/self/mountinfo",
    ]
    try:
        checks = select.probe(backend, root)
    except OSError as exc:
        return [*lines, f"checked inside a sandbox: could not start one ({exc})"]
    lines.append("checked inside a sandbox just now:")
    lines.extend(f"  {'ok ' if c.ok else 'NOT'}  {c.name} ({c.seen})" for c in checks)
    return lines


def _runtime_lines(data_dir: pathlib.Path, backend: SandboxBackend) -> list[str]:
    """Which Python versions run here, which are mapped onto others, and
    which functions use each (gateway/execution/runtime_setup.py)."""
    from ..app.config import default_cache_dir
    from ..execution.runtime_setup import doctor_lines

    try:
        return doctor_lines(data_dir, default_cache_dir(), backend)
    except Exception as exc:  # doctor reports; it never crashes on a bad host
        return [f"runtimes: could not be listed ({exc})"]


def _worker_start(backend: SandboxBackend) -> str:
    """Start one Python worker the way a cold start does and say how it
    came to be: forked from the runtime zygote, or an interpreter of its own."""
    import time
    import uuid

    from lambdalet.sandbox.spec import SandboxSpec

    with tempfile.TemporaryDirectory(prefix="lambdalet-doctor-") as task:
        os.chmod(task, 0o755)
        spec = SandboxSpec(instance_id=f"doctor-{uuid.uuid4().hex[:12]}", function_name="doctor", code_dir=task)
        started = time.perf_counter()
        try:
            sandbox = backend.spawn(spec)
        except OSError as exc:
            return f"workers: could not start one ({exc})"
        try:
            sandbox.control.settimeout(10)
            ready = sandbox.control.recv(64)
        except OSError:
            ready = b""
        finally:
            sandbox.destroy()
    if not ready:
        return "workers: a worker started but never reported ready"
    ms = (time.perf_counter() - started) * 1000
    how = "forked from the runtime zygote" if backend.zygote_running() else "an interpreter started per sandbox"
    return f"workers: {how}; the first one was ready in {ms:.0f} ms"
