"""Choosing the sandbox backend once, at start-up.

The namespaced backend is used when a probe sandbox starts and runs the
interpreter; otherwise workers are plain processes. Every protection that
ends up weaker than the default is returned as a reason, which the server
prints at start-up and `lambdalet doctor` lists.
"""
from __future__ import annotations

import os
import pathlib
import tempfile
import uuid

from .namespaced import NamespacedBackend
from .process import ProcessBackend
from .runtime_root import RuntimeRoot
from .spec import SandboxBackend, SandboxSpec


def probe(backend: NamespacedBackend, runtime_root: RuntimeRoot) -> None:
    """Start one sandbox that runs the interpreter to completion. Raises
    OSError naming the step that failed."""
    # An empty task root of its own: the sandbox's uid must be able to enter
    # it, whatever the modes of the server's directories.
    task_root = tempfile.mkdtemp(prefix="lambdalet-probe-")
    try:
        os.chmod(task_root, 0o755)
        spec = SandboxSpec(instance_id=f"probe-{uuid.uuid4().hex[:12]}", function_name="probe",
                           code_dir=task_root, memory_mb=128, ephemeral_mb=1)
        sandbox = backend.spawn_command(spec, [runtime_root.python, "-I", "-S", "-c", "import os;os.write(3,b'ok')"])
        try:
            reply = sandbox.control.recv(16)
        finally:
            sandbox.destroy()
    finally:
        os.rmdir(task_root)
    if reply != b"ok":
        raise OSError(0, "probe: the interpreter did not run inside the sandbox")


def choose_backend(runtime_root: RuntimeRoot, data_dir: pathlib.Path | str | None = None, *,
                   required: bool = False, **options) -> tuple[SandboxBackend, list[str]]:
    """(backend, reasons). reasons lists everything weaker than full
    isolation; it is empty on a root host with cgroups. With required=True a
    failing namespaced backend raises OSError instead of falling back.
    options go to NamespacedBackend (pdeathsig=True for a caller that spawns
    from one long-lived thread, cpu_limit, netns_pool)."""
    reasons: list[str] = []
    backend: NamespacedBackend | None = None
    try:
        backend = NamespacedBackend(runtime_root, **options)
        probe(backend, runtime_root)
    except OSError as exc:
        if backend is not None:
            backend.close()
        if required:
            raise
        return ProcessBackend(runtime_root), [
            f"sandbox: plain processes — functions are NOT isolated from this host ({exc.strerror or exc})"]
    reasons.extend(f"sandbox limits: {r}" for r in backend.warnings)
    off = [name for name, on in backend.protections().items() if not on]
    if off:
        reasons.append("sandbox: protections off: " + ", ".join(off))
    if os.geteuid() != 0:
        reasons.append("sandbox: running without root — isolation through an unprivileged user namespace")
    return backend, reasons
