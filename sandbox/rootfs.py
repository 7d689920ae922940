"""The plan of a sandbox's root file system, as a list of mount operations.

Pure: it reads nothing but the host paths it is given (to tell symlinks
from directories) and returns `MountOp`s that csrc/mounts.c applies in
order inside the new mount namespace. Keeping the plan here makes it easy
to read, test and print (`lambdalet doctor`).

The layout follows Lambda's: code at /var/task, the runtime at
/var/runtime, layers at /opt, a writable /tmp sized by EphemeralStorage,
and nothing else writable. The host's /etc, /root, /home, the data
directory and other functions' code are simply never bound.
"""

from __future__ import annotations

import glob
import os

import msgspec

from .nsspawn import (
    BIND_DEV,
    BIND_RO,
    FIXED_FILE,
    MASK,
    MKDIR,
    OVERLAY_RO,
    PROC,
    READONLY,
    STAGE_BIND,
    SYMLINK,
    TMPFS,
    VIEW_RO,
    WRITE_FILE,
    MountOp,
)

SANDBOX_USER = "sbx_user1051"  # Lambda's own names and ids for the function's user
SANDBOX_UID = 993
SANDBOX_GID = 990
HOSTNAME = "lambdalet"

TASK_ROOT = "/var/task"
RUNTIME_DIR = "/var/runtime"
LAYERS_DIR = "/opt"

# The top-level entries of a merged-/usr system; each is recreated as the
# same symlink, or bound read-only when it is a real directory.
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
# runc's defaults: what a process may not read from /proc, and what it may
# read but never write.
PROC_MASKED = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    # and the whole host's activity and hardware, which no runtime reads:
    # interrupt, softirq and pressure-stall counts (a view of other
    # tenants' work), disks, swap devices, consoles and kernel modules.
    "/proc/interrupts",
    "/proc/softirqs",
    "/proc/pressure",
    "/proc/diskstats",
    "/proc/partitions",
    "/proc/swaps",
    "/proc/consoles",
    "/proc/modules",
)
PROC_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# Host facts a function has no business reading, covered by fixed text that
# still parses: the host's kernel command line (its boot configuration),
# and the load and thread count of the whole host. The boot id is one per
# server (RootLayout.boot_id), not the host's.
PROC_FIXED = {
    "/proc/cmdline": "ro quiet\n",
    "/proc/loadavg": "0.00 0.00 0.00 1/1 1\n",
}
BOOT_ID = "/proc/sys/kernel/random/boot_id"
# Public host files the loader, TLS and name lookups read (getaddrinfo with
# a service name such as "https" needs /etc/services). Nothing private.
ETC_BINDS = (
    "/etc/ld.so.cache",
    "/etc/ssl/certs",
    "/etc/ca-certificates.conf",
    "/etc/ssl/openssl.cnf",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust",
    "/etc/services",
    "/etc/protocols",
    "/etc/mime.types",
)
# Language runtimes' own configuration, which Debian keeps in /etc: a JDK's
# conf/ links into /etc/java-N-openjdk (java.security among it), and Mono
# reads its dllmap and machine.config from /etc/mono. Public files.
ETC_GLOBS = ("/etc/java-*", "/etc/mono")


class RootLayout(msgspec.Struct, frozen=True):
    """What one sandbox's root is made of, as host paths."""

    python_prefix: str  # bound at the same path, so the interpreter finds itself
    runtime_sources: dict[str, str]  # path under /var/runtime -> host directory
    code_dir: str
    layers: tuple[str, ...] = ()
    ephemeral_mb: int = 512
    hidden_dirs: tuple[str, ...] = ()  # inside bound trees; site-packages
    resolv_conf: str = ""
    hostname: str = HOSTNAME
    boot_id: str = "00000000-0000-4000-8000-000000000000"


def host_site_dirs(python_prefix: str) -> tuple[str, ...]:
    """Every site-packages the bound trees would otherwise expose. Only the
    worker's own dependencies, bound under /var/runtime, stay importable."""
    patterns = (
        f"{python_prefix}/lib/python3*/site-packages",
        f"{python_prefix}/lib/python3*/dist-packages",
        "/usr/lib/python3/dist-packages",
        "/usr/lib/python3*/site-packages",
        "/usr/lib/python3*/dist-packages",
        "/usr/local/lib/python3*/site-packages",
        "/usr/local/lib/python3*/dist-packages",
    )
    found: list[str] = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if os.path.isdir(path) and not os.path.islink(path) and path not in found:
                found.append(path)
    return tuple(found)


def _etc_files(layout: RootLayout) -> dict[str, str]:
    return {
        "/etc/passwd": (
            "root:x:0:0:root:/root:/sbin/nologin\n"
            f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}::/tmp:/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        ),
        "/etc/group": (f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_GID}:\nnobody:x:65534:\n"),
        "/etc/hosts": (
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{layout.hostname}\n"
            # Where extensions' Telemetry API listeners bind, as on AWS: the
            # sandbox's own loopback.
            "127.0.0.1\tsandbox.localdomain sandbox\n"
        ),
        "/etc/resolv.conf": layout.resolv_conf or "# no network: loopback only\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    }


RESERVED = (TASK_ROOT, RUNTIME_DIR, "/tmp", "/proc", "/dev", "/etc")


def plan(layout: RootLayout) -> list[MountOp]:
    """The mount operations, in order. Raises ValueError for a layout that
    cannot be honoured (an interpreter that the sandbox's own mounts would
    hide)."""
    prefix = layout.python_prefix
    # The interpreter is bound at its own path (its libraries are found by
    # absolute paths baked in at build time), so that path must stay visible.
    for reserved in RESERVED:
        if prefix == reserved or prefix.startswith(reserved + "/"):
            raise ValueError(f"the interpreter at {prefix} would be hidden by the sandbox's {reserved}")
    if layout.layers and (prefix == LAYERS_DIR or prefix.startswith(LAYERS_DIR + "/")):
        raise ValueError(f"the interpreter at {prefix} would be hidden by the function's layers at /opt")
    ops: list[MountOp] = [MountOp(BIND_RO, "/usr", src="/usr")]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            ops.append(MountOp(SYMLINK, path, data=os.readlink(path)))
        elif os.path.isdir(path):
            ops.append(MountOp(BIND_RO, path, src=path))
    if not any(prefix == d or prefix.startswith(d + "/") for d in ("/usr", *SYSTEM_DIRS)):
        ops.append(MountOp(BIND_RO, prefix, src=prefix))
    for hidden in layout.hidden_dirs:
        ops.append(MountOp(MASK, hidden))

    # /etc: synthesised, plus the few host files the loader and TLS need.
    for path, text in _etc_files(layout).items():
        ops.append(MountOp(WRITE_FILE, path, data=text, mode=0o644))
    for path in (*ETC_BINDS, *(p for pattern in ETC_GLOBS for p in sorted(glob.glob(pattern)))):
        if os.path.islink(path):
            ops.append(MountOp(SYMLINK, path, data=os.readlink(path)))
        elif os.path.exists(path):
            ops.append(MountOp(BIND_RO, path, src=path))
    if os.path.islink("/etc/localtime"):
        ops.append(MountOp(SYMLINK, "/etc/localtime", data=os.readlink("/etc/localtime")))

    # /dev before /proc: masking /proc binds /dev/null over files.
    ops.append(MountOp(TMPFS, "/dev", data="mode=0755,size=16k,nr_inodes=64"))
    for dev in DEVICES:
        ops.append(MountOp(BIND_DEV, f"/dev/{dev}", src=f"/dev/{dev}"))
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        ops.append(MountOp(SYMLINK, f"/dev/{name}", data=target))
    ops.append(MountOp(READONLY, "/dev"))

    ops.append(MountOp(PROC, "/proc"))
    ops.extend(MountOp(MASK, p) for p in PROC_MASKED)
    ops.extend(MountOp(READONLY, p) for p in PROC_READONLY)
    ops.extend(MountOp(FIXED_FILE, p, data=text) for p, text in PROC_FIXED.items())
    ops.append(MountOp(FIXED_FILE, BOOT_ID, data=layout.boot_id + "\n"))

    ops.append(MountOp(TMPFS, "/tmp", data=f"mode=1777,size={max(1, layout.ephemeral_mb)}m"))

    # Views, not binds, wherever the host path differs from the sandbox's:
    # a bind would name the data directory and the server's install in
    # /proc/self/mountinfo.
    ops.append(MountOp(VIEW_RO, TASK_ROOT, src=layout.code_dir))
    for rel, src in sorted(layout.runtime_sources.items()):
        ops.append(MountOp(VIEW_RO, f"{RUNTIME_DIR}/{rel}", src=src))
    if len(layout.layers) == 1:
        ops.append(MountOp(VIEW_RO, LAYERS_DIR, src=layout.layers[0]))
    elif layout.layers:
        # Lambda extracts layers in order, later ones overwriting earlier
        # ones; overlayfs lists the uppermost lower directory first. Each
        # layer is staged outside the new root first: the overlay's paths are
        # resolved with the sandbox's credentials, which cannot traverse a
        # private host directory (csrc/mounts.c opens bind sources early).
        staged = [f"/layers/{i}" for i in range(len(layout.layers))]
        ops.extend(MountOp(STAGE_BIND, dst, src=src) for dst, src in zip(staged, layout.layers))
        lower = ":".join(reversed(staged))
        ops.append(MountOp(OVERLAY_RO, LAYERS_DIR, data=f"lowerdir={lower}"))
    else:
        ops.append(MountOp(MKDIR, LAYERS_DIR, mode=0o755))
    _refuse_below_function_files(ops, bool(layout.layers))
    return ops


def _refuse_below_function_files(ops: list[MountOp], layers: bool) -> None:
    """The function's code (and its layers, when it has some) are the user's
    zips, symlinks and all: an op of the plan below them would be walked
    through the user's symlinks. Raises ValueError for one (its path
    normalised: a runtime source's `..` counts)."""
    below = (TASK_ROOT, LAYERS_DIR) if layers else (TASK_ROOT,)
    for op in ops:
        if op.kind == STAGE_BIND:
            continue  # the staging root's, outside the new root
        dst = os.path.normpath(op.dst)
        for top in below:
            if dst.startswith(top + "/"):
                raise ValueError(f"{op.dst} would be made inside {top}, the function's own files")


# Each sandbox's own mounts: a /proc of its pid namespace, its writable /tmp,
# its function's code and layers. The rest of a plan is the same for every
# sandbox of a runtime and goes into its prepared root (csrc/mounts.c).
OWN_MOUNTS = ("/proc", "/tmp", TASK_ROOT, LAYERS_DIR)


def _own(op: MountOp) -> bool:
    # A read-only remount too: inside a detached tree only its root's mount
    # flags can change.
    return op.kind in (STAGE_BIND, READONLY) or any(op.dst == d or op.dst.startswith(d + "/") for d in OWN_MOUNTS)


def split(ops: list[MountOp]) -> tuple[list[MountOp], list[MountOp]]:
    """(shared, own): a plan cut into its prepared root and what each
    sandbox mounts on a clone of it, in their order. The prepared root is
    read-only, so it holds the own mounts' mountpoints (the plan's empty
    /opt, without layers, is one of them)."""
    mountpoints = [MountOp(MKDIR, d, mode=0o555 if d == "/proc" else 0o755) for d in OWN_MOUNTS]
    shared = [op for op in ops if not _own(op)] + mountpoints
    own = [op for op in ops if _own(op) and not (op.kind == MKDIR and op.dst in OWN_MOUNTS)]
    return shared, own
