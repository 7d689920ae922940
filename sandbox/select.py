"""Choosing the sandbox backend once, at start-up, and refusing to run
functions unisolated unless told to.

The namespaced backend is used when a probe sandbox starts, runs the
interpreter and finds its walls where they should be (check_walls). When
no sandbox can start, choose_backend raises SandboxUnavailable, saying why
and how to fix it: the server then refuses to start. Plain processes
(process.py) are only ever an explicit choice (`--sandbox process`).
Every protection that ends up weaker than the default is returned as a
reason, which the server prints at start-up and `lambdalet doctor` lists.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import tempfile
import uuid
from typing import NamedTuple

from . import rootfs
from .namespaced import NamespacedBackend
from .runtime_root import RuntimeRoot
from .spec import SandboxBackend, SandboxSpec

UNISOLATED_OPTION = "--sandbox process"


class SandboxUnavailable(Exception):
    """No sandbox can start on this host: why, and what would fix it."""

    def __init__(self, why: str, fix: str) -> None:
        super().__init__(why, fix)
        self.why = why
        self.fix = fix

    def __str__(self) -> str:
        return (
            f"functions cannot be isolated on this host, so they will not run: {self.why}\n"
            f"  to fix it: {self.fix}\n"
            f"  to run functions anyway as plain processes with this server's privileges (no isolation "
            f"at all), start with {UNISOLATED_OPTION}"
        )


class Check(NamedTuple):
    """One wall, as a probe sandbox saw it from inside."""

    name: str
    ok: bool
    seen: str


# Runs in the probe sandbox: what the walls look like from inside.
_LOOK_INSIDE = """\
import json, os, socket
seen = {}
try:
    socket.socket(40, socket.SOCK_STREAM).close()
    seen["vsock"] = 0
except OSError as e:
    seen["vsock"] = e.errno
for name, path in (("cmdline", "/proc/cmdline"), ("mountinfo", "/proc/self/mountinfo"), ("status", "/proc/self/status")):
    with open(path) as f:
        seen[name] = f.read()
os.write(3, json.dumps(seen).encode())
"""

# Disk file systems: a mount of one shows a path of the host inside it.
_HOST_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "nfs", "nfs4", "fuse", "9p", "virtiofs"})


def host_paths_in(mountinfo: str) -> list[str]:
    """Mounts whose source names a host path the sandbox does not see at
    the same place (mountinfo's fourth field against its fifth)."""
    leaks = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        fstype = fields[fields.index("-") + 1]
        if fstype in _HOST_FS and fields[3] != fields[4]:
            leaks.append(f"{fields[4]} <- {fields[3]}")
    return leaks


def _status(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def check_walls(seen: dict, host_cmdline: str) -> list[Check]:
    """What a probe reported, judged from outside."""
    status = _status(seen.get("status", ""))
    leaks = host_paths_in(seen.get("mountinfo", ""))
    vsock = seen.get("vsock")
    return [
        Check(
            "seccomp filter with no_new_privs",
            status.get("Seccomp") == "2" and status.get("NoNewPrivs") == "1",
            f"Seccomp {status.get('Seccomp')}, NoNewPrivs {status.get('NoNewPrivs')}",
        ),
        Check(
            "AF_VSOCK sockets refused",
            vsock in (errno.EAFNOSUPPORT, errno.EPERM),
            "opened" if vsock == 0 else errno.errorcode.get(vsock or 0, str(vsock)),
        ),
        Check(
            "/proc/cmdline is not the host's",
            seen.get("cmdline") not in (None, host_cmdline),
            "the host's" if seen.get("cmdline") == host_cmdline else "fixed text",
        ),
        Check("/proc/self/mountinfo names no host path", not leaks, "; ".join(leaks) or "none named"),
    ]


def probe(backend: NamespacedBackend, runtime_root: RuntimeRoot) -> list[Check]:
    """Start one sandbox that runs the interpreter to completion and looks
    at its walls. Raises OSError naming the step that failed."""
    # An empty task root of its own: the sandbox's uid must be able to enter
    # it, whatever the modes of the server's directories.
    task_root = tempfile.mkdtemp(prefix="lambdalet-probe-")
    try:
        os.chmod(task_root, 0o755)
        spec = SandboxSpec(
            instance_id=f"probe-{uuid.uuid4().hex[:12]}", function_name="probe", code_dir=task_root, memory_mb=128, ephemeral_mb=1
        )
        sandbox = backend.spawn_command(spec, [runtime_root.python, "-I", "-S", "-c", _LOOK_INSIDE])
        reply = b""
        try:
            sandbox.control.settimeout(30)
            while chunk := sandbox.control.recv(65536):
                reply += chunk
        finally:
            sandbox.destroy()
    finally:
        os.rmdir(task_root)
    try:
        seen = json.loads(reply)
    except ValueError:
        raise OSError(0, "probe: the interpreter did not run inside the sandbox") from None
    with open("/proc/cmdline") as f:
        host_cmdline = f.read()
    return check_walls(seen, host_cmdline)


def _fix(exc: OSError, runtime_root: RuntimeRoot) -> str:
    """What to do about a probe that failed, as far as its error tells."""
    text = str(exc)
    if "would be hidden by the sandbox" in text:
        return (
            f"the interpreter ({runtime_root.python}) lives under a directory that every sandbox replaces "
            f"with its own ({', '.join(rootfs.RESERVED)}); install lambdalet into a virtual environment "
            "elsewhere (for example python3 -m venv ~/lambdalet), or create it without --copies so that "
            "its python links to an interpreter the sandbox can mount"
        )
    if (
        exc.errno in (errno.EPERM, errno.EACCES, errno.ENOSPC, errno.EINVAL)
        and os.geteuid() != 0
        and ("clone" in text or "uid_map" in text or "setgroups" in text)
    ):
        return (
            "this user may not create user namespaces: run the server as root, or allow unprivileged "
            "user namespaces (sysctl user.max_user_namespaces=15000; on Debian and Ubuntu also "
            "kernel.unprivileged_userns_clone=1 and kernel.apparmor_restrict_unprivileged_userns=0)"
        )
    return "run `lambdalet doctor` to see what this host supports"


def choose_backend(runtime_root: RuntimeRoot, data_dir: pathlib.Path | str | None = None, **options) -> tuple[SandboxBackend, list[str]]:
    """(backend, reasons). reasons lists everything weaker than full
    isolation; it is empty on a root host with cgroups. Raises
    SandboxUnavailable when no sandbox can start here. options go to
    NamespacedBackend (pdeathsig=True for a caller that spawns from one
    long-lived thread, cpu_limit, netns_pool, runtimes: the
    other interpreters' roots)."""
    reasons: list[str] = []
    backend: NamespacedBackend | None = None
    try:
        backend = NamespacedBackend(runtime_root, **options)
        checks = probe(backend, runtime_root)
    except OSError as exc:
        if backend is not None:
            backend.close()
        raise SandboxUnavailable(exc.strerror or str(exc), _fix(exc, runtime_root)) from exc
    reasons.extend(f"sandbox limits: {r}" for r in backend.warnings)
    off = [name for name, on in backend.protections().items() if not on]
    if off:
        reasons.append("sandbox: protections off: " + ", ".join(off))
    reasons.extend(f"sandbox: {c.name}: NOT so inside a sandbox ({c.seen})" for c in checks if not c.ok)
    if os.geteuid() != 0:
        reasons.append("sandbox: running without root — isolation through an unprivileged user namespace")
    return backend, reasons
